//! NATS JetStream as the change fan-out. After a write is committed, applied and its
//! membership changes logged, its owner publishes it (`wire::Change`: the log range it
//! made and, for contacts and events, the slices it applied) to
//! `segmentd.changes.<account>` with the message id `account:seq` (JetStream drops a
//! repeat). Every node reads the stream with an ordered consumer and hands each message
//! to its follower of the account, which applies the slices as they are when they
//! start where its index is, and reads the log from PostgreSQL otherwise.
//!
//! NATS is an accelerator, never the record: a message lost, late, too large or never
//! published (NATS down) only sends a follower to the log, at the next message or at
//! the agent's next look at the placements (`agent::TICK`), which compares each
//! `write_seq` with what the index has applied.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use segmentd_store::AccountId;

use super::Cluster;
use super::wire::Change;

const STREAM: &str = "SEGMENTD_CHANGES";
const SUBJECTS: &str = "segmentd.changes.>";

/// One write, on its way to the stream.
pub struct Outgoing {
    pub account: AccountId,
    pub change: Change,
}

/// Connects (retrying in the background while NATS is down) and starts the publisher
/// and the subscriber. Never fails: without NATS the cluster runs on the log.
pub async fn start(cluster: Arc<Cluster>) {
    let replicas = cluster.settings.nats.len().clamp(1, 3);
    // A consumer lives on one server: after the client moves to another (its server
    // died), the consumer is made again at once rather than after missed heartbeats.
    let reconnected = Arc::new(tokio::sync::Notify::new());
    let on_event = reconnected.clone();
    let client = match async_nats::ConnectOptions::new()
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move {
                if matches!(event, async_nats::Event::Connected) {
                    on_event.notify_one();
                }
            }
        })
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .connect(cluster.settings.nats.as_slice())
        .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "NATS unreachable: followers read the log");
            return;
        }
    };
    let js = jetstream::new(client.clone());
    tokio::spawn(publish(
        cluster.clone(),
        client.clone(),
        js.clone(),
        replicas,
    ));
    tokio::spawn(subscribe(cluster, client, js, replicas, reconnected));
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
            // Messages only spare followers a read of the log: a minute of them, and
            // at most 256 MiB, is plenty.
            max_age: Duration::from_secs(60),
            max_bytes: 256 << 20,
            duplicate_window: Duration::from_secs(30),
            ..Default::default()
        })
        .await?)
}

/// Publishes each write in the order they were made. Acknowledgements are awaited
/// aside, so that a round trip to the stream's replicas does not hold the next write.
async fn publish(
    cluster: Arc<Cluster>,
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
) {
    let Some(mut rx) = cluster.outgoing_rx.lock().take() else {
        return;
    };
    let stream_ok = Arc::new(AtomicBool::new(false));
    while let Some(Outgoing {
        account,
        mut change,
    }) = rx.recv().await
    {
        if !stream_ok.load(Ordering::Acquire) {
            stream_ok.store(
                ensure_stream(&js, replicas).await.is_ok(),
                Ordering::Release,
            );
        }
        let mut body = serde_json::to_vec(&change).unwrap_or_default();
        // Leave room for the headers; a larger write travels as its range alone.
        if body.len() + 1024 > client.server_info().max_payload {
            change.slices = None;
            body = serde_json::to_vec(&change).unwrap_or_default();
        }
        let sent = js
            .send_publish(
                format!("segmentd.changes.{account}"),
                jetstream::context::Publish::build()
                    .payload(body.into())
                    .message_id(format!("{account}:{}", change.to)),
            )
            .await;
        let ack = match sent {
            Ok(ack) => ack,
            Err(e) => {
                tracing::debug!(error = %e, "fan-out publish failed");
                stream_ok.store(false, Ordering::Release);
                continue;
            }
        };
        let stream_ok = stream_ok.clone();
        tokio::spawn(async move {
            if !matches!(
                tokio::time::timeout(Duration::from_secs(2), ack).await,
                Ok(Ok(_))
            ) {
                tracing::debug!(account, "fan-out publish not acknowledged");
                stream_ok.store(false, Ordering::Release);
            }
        });
    }
}

/// Reads the stream with an ordered consumer (re-created after any error) and hands
/// each message to the follower of the account it names.
async fn subscribe(
    cluster: Arc<Cluster>,
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
    reconnected: Arc<tokio::sync::Notify>,
) {
    loop {
        // Made again at once after a reconnection, after a pause after an error.
        if let Err(e) = consume(&cluster, &client, &js, replicas, &reconnected).await {
            tracing::debug!(error = %e, "fan-out consumer stopped; starting again");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn consume(
    cluster: &Cluster,
    client: &async_nats::Client,
    js: &jetstream::Context,
    replicas: usize,
    reconnected: &tokio::sync::Notify,
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
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = reconnected.notified() => return Ok(()),
        };
        let Some(message) = message else {
            return Ok(());
        };
        let message = message?;
        if let Some(account) = account_of(message.subject.as_str()) {
            cluster.deliver(account, message.payload.clone());
        }
    }
}

fn account_of(subject: &str) -> Option<AccountId> {
    subject.strip_prefix("segmentd.changes.")?.parse().ok()
}
