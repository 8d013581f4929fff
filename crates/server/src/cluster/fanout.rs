//! NATS JetStream as the change fan-out. After a write is acknowledged, its owner
//! publishes `{"account", "seq"}` to `segmentd.changes.<account>` with the message id
//! `account:seq` (JetStream drops a repeat); every node reads the stream with an ordered
//! consumer and wakes its follower of the account, which reads the log from PostgreSQL.
//!
//! NATS is an accelerator, never the record: a message lost, late or never published
//! (NATS down) only delays a follower until the agent's next look at the placements
//! (`agent::TICK`), which compares each `write_seq` with what the index has applied.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use segmentd_store::AccountId;

use super::Cluster;

const STREAM: &str = "SEGMENTD_CHANGES";
const SUBJECTS: &str = "segmentd.changes.>";

/// Connects (retrying in the background while NATS is down) and starts the publisher
/// and the subscriber. Never fails: without NATS the cluster runs on polling.
pub async fn start(cluster: Arc<Cluster>) {
    let urls = cluster.settings.nats.join(",");
    let replicas = cluster.settings.nats.len().clamp(1, 3);
    let client = match async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(urls.as_str())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "NATS unreachable: followers poll PostgreSQL");
            return;
        }
    };
    let js = jetstream::new(client.clone());
    tokio::spawn(publish(cluster.clone(), js.clone(), replicas));
    tokio::spawn(subscribe(cluster, client, js, replicas));
}

async fn ensure_stream(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<jetstream::stream::Stream, async_nats::Error> {
    Ok(js
        .get_or_create_stream(jetstream::stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![SUBJECTS.to_owned()],
            num_replicas: replicas,
            // Messages only wake followers; a minute of them is plenty.
            max_age: Duration::from_secs(60),
            duplicate_window: Duration::from_secs(30),
            ..Default::default()
        })
        .await?)
}

/// Publishes a message per account written, as seq numbers come: a burst of writes to
/// one account is one message.
async fn publish(cluster: Arc<Cluster>, js: jetstream::Context, replicas: usize) {
    let Some(mut rx) = cluster.written_rx.lock().take() else {
        return;
    };
    let mut ensured = false;
    while let Some(first) = rx.recv().await {
        let mut accounts = vec![first];
        while let Ok(more) = rx.try_recv() {
            accounts.push(more);
        }
        accounts.sort_unstable();
        accounts.dedup();
        if !ensured {
            ensured = ensure_stream(&js, replicas).await.is_ok();
        }
        let seqs = match cluster.store.write_seqs(&accounts).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reading write sequences failed");
                continue;
            }
        };
        for (account, seq) in seqs {
            let body = serde_json::json!({ "account": account, "seq": seq }).to_string();
            let sent = js
                .send_publish(
                    format!("segmentd.changes.{account}"),
                    jetstream::context::Publish::build()
                        .payload(body.into())
                        .message_id(format!("{account}:{seq}")),
                )
                .await;
            let acked = match sent {
                Ok(ack) => tokio::time::timeout(Duration::from_secs(2), ack).await,
                Err(e) => {
                    tracing::debug!(error = %e, "fan-out publish failed");
                    continue;
                }
            };
            if !matches!(acked, Ok(Ok(_))) {
                tracing::debug!(account, seq, "fan-out publish not acknowledged");
                ensured = false;
            }
        }
    }
}

/// Reads the stream with an ordered consumer (re-created after any error) and wakes
/// the follower of each account a message names.
async fn subscribe(
    cluster: Arc<Cluster>,
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
) {
    loop {
        if let Err(e) = consume(&cluster, &client, &js, replicas).await {
            tracing::debug!(error = %e, "fan-out consumer stopped; starting again");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn consume(
    cluster: &Cluster,
    client: &async_nats::Client,
    js: &jetstream::Context,
    replicas: usize,
) -> Result<(), async_nats::Error> {
    let stream = ensure_stream(js, replicas).await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: SUBJECTS.to_owned(),
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        if let Some(account) = account_of(message.subject.as_str()) {
            cluster.wake(account);
        }
    }
    Ok(())
}

fn account_of(subject: &str) -> Option<AccountId> {
    subject.strip_prefix("segmentd.changes.")?.parse().ok()
}
