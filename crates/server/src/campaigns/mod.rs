//! Campaign sending: the audience computed from segments, frozen in the store, then
//! delivered through the channel's adapter (SMTP for e-mail, a signed JSON POST for
//! SMS and push), several messages at once.
//!
//! - [`render`]: one recipient's message, personalised, its links tracked.
//! - [`smtp`]: pooled SMTP connections and the classified transaction.
//! - [`webhook`]: the signed, idempotent provider POST.
//! - [`run`]: one campaign's delivery: claims, concurrency, retries, pausing.
//! - [`pace`]: messages-per-second limits.
//! - [`lifecycle`]: edit, cancel, pause, resume, duplicate, delete, test, resend.
//! - [`stats`]: a campaign's statistics.
//! - [`feedback`]: bounces, complaints and SMS replies coming back.
//!
//! Delivery is **at most once**. A batch of recipients becomes `sending` (committed)
//! before any of them is tried; each outcome is then recorded with the batch. One whose
//! outcome never came back (a timeout after the message went out, a crash mid-batch)
//! is `unknown` and never retried blindly: nobody gets a message twice, at the price of
//! possibly missing the few in flight. See docs/semantics.md, "Campaigns".

pub mod feedback;
pub mod lifecycle;
pub mod pace;
pub mod render;
pub mod run;
pub mod smtp;
pub mod stats;
pub mod webhook;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use segmentd_store::{
    Account, AccountId, Campaign, CampaignId, CampaignStatus, Channel, ContactId,
};
use serde::Serialize;
use tokio::sync::Semaphore;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::settings::DeliverySettings;
use crate::state::AppState;

pub use render::{Links, Rendered, personalise, render};

/// How often due scheduled campaigns (and sending ones this process is not running)
/// are looked for.
const SCHEDULE_TICK: Duration = Duration::from_secs(1);

/// What one delivery attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Sent,
    /// Not accepted, for now (a 4xx, a connection that failed before the message went
    /// out, a provider's 429/5xx): tried again later, after `after` when the other side
    /// said how long.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good.
    Failed(String),
    /// The address does not exist (a 5xx to RCPT): a hard bounce.
    Bounced(String),
    /// The message may or may not have gone out: never retried blindly.
    Unknown(String),
}

impl Attempt {
    pub fn retry(reason: String) -> Self {
        Attempt::Retry {
            reason,
            after: None,
        }
    }
}

/// Delivery settings and adapters, the limits shared by all campaigns, and the
/// campaigns being delivered by this process (so one campaign never runs twice at once
/// here), each with its stop flag.
pub struct Delivery {
    pub settings: DeliverySettings,
    pub smtp: smtp::SmtpPool,
    webhook: webhook::Webhook,
    /// Messages in flight across campaigns.
    in_flight: Arc<Semaphore>,
    /// The global messages-per-second limit.
    pace: Option<pace::Pace>,
    running: Mutex<HashMap<(AccountId, CampaignId), Arc<AtomicBool>>>,
}

impl Delivery {
    pub fn new(settings: DeliverySettings) -> Self {
        Delivery {
            smtp: smtp::SmtpPool::new(&settings),
            webhook: webhook::Webhook::new(&settings),
            in_flight: Arc::new(Semaphore::new(settings.send_concurrency.max(1))),
            pace: settings.send_rate.map(pace::Pace::per_second),
            running: Mutex::new(HashMap::new()),
            settings,
        }
    }

    /// The stop flag of a delivery starting now; `None` if it is already running here.
    fn claim(&self, key: (AccountId, CampaignId)) -> Option<Arc<AtomicBool>> {
        let mut running = self.running.lock().ok()?;
        if running.contains_key(&key) {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        running.insert(key, stop.clone());
        Some(stop)
    }

    fn release(&self, key: (AccountId, CampaignId)) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&key);
        }
    }

    /// Asks a running delivery to stop starting messages (it finishes those in flight).
    pub fn stop(&self, key: (AccountId, CampaignId)) {
        if let Ok(r) = self.running.lock()
            && let Some(flag) = r.get(&key)
        {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Whether this process has somewhere to deliver `channel` (SMTP always has a
    /// default; SMS and push need their provider URL).
    pub fn can_deliver(&self, channel: Channel) -> bool {
        match channel {
            Channel::Email => true,
            Channel::Sms => self.settings.sms_webhook_url.is_some(),
            Channel::Push => self.settings.push_webhook_url.is_some(),
        }
    }

    pub fn public_url(&self) -> &str {
        self.settings.public_url.as_deref().unwrap_or("")
    }

    /// Sends one rendered message to `address` on `channel`, as a campaign would, with
    /// `key` as its idempotency key.
    pub async fn deliver(
        &self,
        channel: Channel,
        address: &str,
        external_id: &str,
        key: &str,
        message: &Rendered,
    ) -> Attempt {
        match channel {
            Channel::Email => match smtp::build(message, address) {
                Ok(email) => {
                    let bytes = email.formatted();
                    self.smtp.send(email.envelope(), &bytes).await
                }
                Err(reason) => Attempt::Failed(reason),
            },
            Channel::Sms | Channel::Push => {
                let url = match channel {
                    Channel::Sms => &self.settings.sms_webhook_url,
                    _ => &self.settings.push_webhook_url,
                };
                let Some(url) = url else {
                    return Attempt::Failed(
                        "no provider URL is configured for this channel".into(),
                    );
                };
                let body = match message {
                    Rendered::Sms { text } => serde_json::json!({
                        "to": address, "contact": external_id, "text": text, "id": key,
                    }),
                    Rendered::Push { title, body, link } => serde_json::json!({
                        "tokens": address.split(',').collect::<Vec<_>>(),
                        "contact": external_id,
                        "title": title, "body": body, "link": link, "id": key,
                    }),
                    Rendered::Email { .. } => {
                        return Attempt::Failed("an e-mail cannot go to a webhook".into());
                    }
                };
                self.webhook.post(url, key, &body).await
            }
        }
    }
}

/// Contacts left out of a campaign, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Excluded {
    /// No e-mail address, phone number or push token for the channel.
    pub no_address: u64,
    pub unsubscribed: u64,
    pub bounced: u64,
    /// Members of an exclusion segment.
    pub exclusion_segments: u64,
}

/// A campaign's audience as of now.
pub struct Audience {
    /// How many the message goes to.
    pub recipients: u64,
    pub excluded: Excluded,
    /// The recipients' store ids, when asked for (to freeze them).
    pub ids: Vec<ContactId>,
}

fn engine_channel(channel: Channel) -> segmentd_engine::Channel {
    match channel {
        Channel::Email => segmentd_engine::Channel::Email,
        Channel::Sms => segmentd_engine::Channel::Sms,
        Channel::Push => segmentd_engine::Channel::Push,
    }
}

/// The campaign's recipients as of now: members of any target segment, minus members of
/// any exclusion segment, minus contacts that cannot be reached; counted from the
/// index's bit sets (with their ids when `with_ids`), no contact read.
pub async fn audience(
    state: &AppState,
    account: &Account,
    campaign: &Campaign,
    with_ids: bool,
) -> Result<Audience, ApiError> {
    for (i, id) in campaign
        .targets
        .iter()
        .chain(&campaign.exclusions)
        .enumerate()
    {
        if state.store.segment(account.id, *id).await?.is_none() {
            return Err(ApiError::Conflict {
                message: format!("segment {id} no longer exists"),
                path: Some(if i < campaign.targets.len() {
                    format!("targets[{i}]")
                } else {
                    format!("exclusions[{}]", i - campaign.targets.len())
                }),
            });
        }
    }
    let found = state
        .index
        .audience(
            account,
            &campaign.targets,
            &campaign.exclusions,
            engine_channel(campaign.channel),
            with_ids,
        )
        .await?;
    Ok(Audience {
        recipients: found.count,
        excluded: Excluded {
            no_address: found.no_address,
            unsubscribed: found.unsubscribed,
            bounced: found.bounced,
            exclusion_segments: found.exclusion_segments,
        },
        ids: found.recipients,
    })
}

/// Freezes the campaign's recipients now (if it is a draft or scheduled) and starts its
/// delivery in the background. `false` if it was already frozen. The recipients go to
/// the store as ids, read and stored there in chunks in one transaction.
pub async fn send_now(
    state: &AppState,
    account: &Account,
    campaign: &Campaign,
) -> Result<bool, ApiError> {
    let audience = audience(state, account, campaign, true).await?;
    let excluded = serde_json::to_value(audience.excluded).map_err(ApiError::internal)?;
    let outcome = state
        .store
        .freeze_campaign_for(
            account.id,
            campaign.id,
            &audience.ids,
            &excluded,
            state.clock.now(),
        )
        .await?;
    if outcome.skipped() > 0 {
        // A contact changed between the index's answer and the freeze (unsubscribed,
        // deleted): the store's check at the freeze wins.
        tracing::info!(
            account = account.id,
            campaign = campaign.id,
            skipped = outcome.skipped(),
            "recipients that became unreachable while freezing were left out"
        );
    }
    if outcome.frozen {
        spawn_delivery(state.clone(), account.id, campaign.id);
    }
    Ok(outcome.frozen)
}

/// Runs the campaign's delivery in the background unless this process already does.
pub fn spawn_delivery(state: AppState, account: AccountId, id: CampaignId) {
    let Some(stop) = state.campaigns.claim((account, id)) else {
        return;
    };
    tokio::spawn(async move {
        if let Err(e) = run::deliver_campaign(&state, account, id, &stop).await {
            tracing::error!(account, campaign = id, error = %e, "campaign delivery stopped");
        }
        state.campaigns.release((account, id));
    });
}

/// At start: recipients a previous run left `sending` become `unknown` (see the module
/// docs); then, every second, due scheduled campaigns are sent and sending ones this
/// process does not run yet (resumed, or left by a run that stopped) are delivered.
pub async fn start_worker(state: AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    // In a cluster an account's new owner does this when it takes the account over.
    let campaigns = match state.cluster {
        None => state.store.campaigns_to_run(now).await?,
        Some(_) => Vec::new(),
    };
    for c in campaigns {
        if matches!(c.status, CampaignStatus::Sending | CampaignStatus::Paused) {
            let n = state
                .store
                .settle_interrupted(
                    c.account_id,
                    c.id,
                    "interrupted during delivery: may or may not have been sent, so not retried",
                    now,
                )
                .await?;
            if n > 0 {
                tracing::info!(
                    account = c.account_id,
                    campaign = c.id,
                    unknown = n,
                    "recipients in flight when the last run stopped are marked unknown"
                );
            }
        }
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SCHEDULE_TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if let Err(e) = run_due(&state).await {
                tracing::warn!(error = %e, "sending scheduled campaigns failed");
            }
        }
    });
    Ok(())
}

async fn run_due(state: &AppState) -> Result<(), ApiError> {
    for c in state.store.campaigns_to_run(state.clock.now()).await? {
        if state
            .cluster
            .as_ref()
            .is_some_and(|cluster| !cluster.owns(c.account_id))
        {
            continue;
        }
        match c.status {
            CampaignStatus::Sending => spawn_delivery(state.clone(), c.account_id, c.id),
            CampaignStatus::Scheduled => {
                let (Some(account), Some(campaign)) = (
                    state.store.account(c.account_id).await?,
                    state.store.campaign(c.account_id, c.id).await?,
                ) else {
                    continue;
                };
                // An instance without the channel's provider leaves the campaign to one
                // with it.
                if !state.campaigns.can_deliver(campaign.channel) {
                    continue;
                }
                send_now(state, &account, &campaign).await?;
            }
            _ => {}
        }
    }
    Ok(())
}
