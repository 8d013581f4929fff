//! One campaign's delivery: claim a batch of due recipients (committed as `sending`),
//! send them several at a time within the global and the campaign's limits, record the
//! batch's outcomes in one transaction, and again until nobody is queued.
//!
//! Temporary failures come back queued with a time to try again (backoff doubling up
//! to an hour, or the provider's `Retry-After`) until `retry_for` after the first
//! attempt; the campaign waits for them. Too many failed attempts in a row pause the
//! campaign (a wrong password or a provider that is down would otherwise burn the whole
//! list); a stop flag (pause by hand) ends the batch early. Recipients of the batch not
//! started yet go back to the queue untouched.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use segmentd_store::{
    Account, Campaign, CampaignStatus, ContactUpsert, EmailStatus, Outcome, Patch, Recipient,
    RecipientStatus,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::pace::Pace;
use super::render::{Links, render};
use super::{Attempt, Delivery};
use crate::state::AppState;
use crate::tracking::Signer;
use crate::writes;

/// Recipients claimed per batch, as a multiple of the campaign's concurrency: enough to
/// keep every slot busy, few enough that a crash leaves few unknown.
const BATCH_PER_SLOT: usize = 8;
/// How long an idle campaign (waiting for retries) sleeps before looking again, at
/// most: a pause or a resend is seen this soon.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What is shared by the messages of one campaign's run.
struct Run<'a> {
    state: &'a AppState,
    account: Account,
    campaign: Campaign,
    signer: Signer,
    base: String,
    stop: Arc<AtomicBool>,
    /// Failed attempts in a row; a sent message or a bounce resets it.
    errors_in_a_row: AtomicU32,
    /// Set when `errors_in_a_row` reached the limit: the campaign pauses.
    halted: AtomicBool,
    slots: Arc<Semaphore>,
    pace: Option<Pace>,
}

/// Delivers the campaign while it is `Sending` and anyone is queued; marks it sent when
/// nobody is left.
pub async fn deliver_campaign(
    state: &AppState,
    account_id: segmentd_store::AccountId,
    id: segmentd_store::CampaignId,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let store = &state.store;
    let (Some(account), Some(campaign)) = (
        store.account(account_id).await?,
        store.campaign(account_id, id).await?,
    ) else {
        return Ok(());
    };
    let delivery: &Delivery = &state.campaigns;
    let concurrency = delivery.settings.campaign_concurrency.max(1);
    let run = Run {
        signer: Signer::for_account(store.as_ref(), account_id).await?,
        base: delivery.public_url().to_owned(),
        pace: campaign.rate_per_second.map(Pace::per_second),
        state,
        account,
        campaign,
        stop: stop.clone(),
        errors_in_a_row: AtomicU32::new(0),
        halted: AtomicBool::new(false),
        slots: Arc::new(Semaphore::new(concurrency)),
    };
    loop {
        let Some(now_campaign) = store.campaign(account_id, id).await? else {
            return Ok(());
        };
        if now_campaign.status != CampaignStatus::Sending || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // In a cluster only the account's owner sends (its successor takes the campaign
        // up; what this node had in flight becomes unknown there).
        if state.cluster.as_ref().is_some_and(|c| !c.owns(account_id)) {
            return Ok(());
        }
        let now = state.clock.now();
        let batch = store
            .claim_recipients(account_id, id, now, (concurrency * BATCH_PER_SLOT) as u32)
            .await?;
        if batch.is_empty() {
            match store.next_attempt_at(account_id, id).await? {
                // Nobody queued: sent, unless another run still has some in flight
                // (the store checks), which then finishes it.
                None => {
                    store.finish_campaign(account_id, id, now).await?;
                    return Ok(());
                }
                Some(due) => {
                    let wait = due
                        .duration_since(now)
                        .unsigned_abs()
                        .min(IDLE_POLL)
                        .max(Duration::from_millis(10));
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
        }
        let outcomes = run_batch(&run, batch).await?;
        let now = state.clock.now();
        store
            .record_outcomes(account_id, id, &outcomes, now)
            .await?;
        mark_bounced(&run, &outcomes).await;
        if run.halted.load(Ordering::SeqCst) {
            let reason = format!(
                "paused after {} failed attempts in a row; the last: {}",
                delivery.settings.pause_after_errors,
                last_error(&outcomes).unwrap_or("unknown")
            );
            tracing::warn!(account = account_id, campaign = id, %reason, "campaign paused");
            store
                .set_campaign_status(
                    account_id,
                    id,
                    &[CampaignStatus::Sending],
                    CampaignStatus::Paused,
                    Some(&reason),
                )
                .await?;
            return Ok(());
        }
    }
}

/// Sends one claimed batch, `campaign_concurrency` at a time; every recipient of it
/// gets an outcome (those not started: queued again as they were).
async fn run_batch(run: &Run<'_>, batch: Vec<Recipient>) -> anyhow::Result<Vec<Outcome>> {
    let state = run.state;
    let ids: Vec<i64> = batch.iter().map(|r| r.contact_id).collect();
    let contacts: HashMap<i64, segmentd_store::Contact> = state
        .store
        .contacts_by_ids(run.account.id, &ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut tasks = JoinSet::new();
    let mut outcomes = Vec::with_capacity(batch.len());
    for r in batch {
        let slot = run.slots.clone().acquire_owned().await?;
        if run.stop.load(Ordering::SeqCst) || run.halted.load(Ordering::SeqCst) {
            outcomes.push(not_started(&r));
            continue;
        }
        let global = state.campaigns.in_flight.clone().acquire_owned().await?;
        if let Some(pace) = &state.campaigns.pace {
            pace.wait().await;
        }
        if let Some(pace) = &run.pace {
            pace.wait().await;
        }
        let links = Links {
            base: &run.base,
            signer: &run.signer,
            account: run.account.id,
            campaign: run.campaign.id,
            contact: r.contact_id,
        };
        let message = render(&run.campaign, &r, contacts.get(&r.contact_id), &links);
        // The idempotency key: the same for every attempt at this campaign's message to
        // this contact (it is also the Message-ID's local part).
        let key = format!("c{}.r{}", run.campaign.id, r.contact_id);
        let (app, channel) = (state.clone(), run.campaign.channel);
        tasks.spawn(async move {
            let attempt = app
                .campaigns
                .deliver(channel, &r.address, &r.external_id, &key, &message)
                .await;
            drop((global, slot));
            (r, attempt)
        });
        // Settle what has finished, so that the count of errors in a row is current.
        while let Some(done) = tasks.try_join_next() {
            let (r, attempt) = done?;
            outcomes.push(settle(run, &r, attempt));
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (r, attempt) = done?;
        outcomes.push(settle(run, &r, attempt));
    }
    Ok(outcomes)
}

/// A claimed recipient that was never tried goes back to the queue as it was.
fn not_started(r: &Recipient) -> Outcome {
    Outcome {
        contact_id: r.contact_id,
        status: RecipientStatus::Queued,
        reason: r.reason.clone(),
        attempts: r.attempts.saturating_sub(1),
        next_attempt_at: None,
    }
}

/// The outcome to record for one attempt, counting errors in a row.
fn settle(run: &Run<'_>, r: &Recipient, attempt: Attempt) -> Outcome {
    let settings = &run.state.campaigns.settings;
    let now = run.state.clock.now();
    let failed = !matches!(attempt, Attempt::Sent | Attempt::Bounced(_));
    if failed {
        let n = run.errors_in_a_row.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= settings.pause_after_errors {
            run.halted.store(true, Ordering::SeqCst);
        }
    } else {
        run.errors_in_a_row.store(0, Ordering::SeqCst);
    }
    let outcome = |status, reason: Option<String>, next| Outcome {
        contact_id: r.contact_id,
        status,
        reason,
        attempts: r.attempts,
        next_attempt_at: next,
    };
    match attempt {
        Attempt::Sent => outcome(RecipientStatus::Sent, None, None),
        Attempt::Failed(reason) => outcome(RecipientStatus::Failed, Some(reason), None),
        Attempt::Bounced(reason) => outcome(RecipientStatus::Bounced, Some(reason), None),
        Attempt::Unknown(reason) => outcome(RecipientStatus::Unknown, Some(reason), None),
        Attempt::Retry { reason, after } => {
            let first = r.first_attempt_at.unwrap_or(now);
            let next = retry_at(settings, r.attempts, now, after);
            let span = next.duration_since(first).unsigned_abs();
            if span > settings.retry_for {
                let reason = format!(
                    "gave up after {} attempts over {}s: {reason}",
                    r.attempts,
                    now.duration_since(first).unsigned_abs().as_secs()
                );
                outcome(RecipientStatus::Failed, Some(reason), None)
            } else {
                outcome(RecipientStatus::Queued, Some(reason), Some(next))
            }
        }
    }
}

/// When attempt `attempts + 1` is due: after `after` when the other side said, else the
/// backoff doubled for each attempt so far, at most `retry_max_backoff`.
pub fn retry_at(
    settings: &crate::settings::DeliverySettings,
    attempts: u32,
    now: Timestamp,
    after: Option<Duration>,
) -> Timestamp {
    let doubled = settings
        .retry_backoff
        .saturating_mul(2u32.saturating_pow(attempts.saturating_sub(1).min(20)));
    let wait = after.unwrap_or(doubled.min(settings.retry_max_backoff));
    now.checked_add(wait).unwrap_or(now)
}

/// A hard bounce makes the contact's e-mail status `bounced`: later campaigns leave it
/// out (reason `bounced`), and segments see it.
async fn mark_bounced(run: &Run<'_>, outcomes: &[Outcome]) {
    if run.campaign.channel != segmentd_store::Channel::Email {
        return;
    }
    let bounced: Vec<i64> = outcomes
        .iter()
        .filter(|o| o.status == RecipientStatus::Bounced)
        .map(|o| o.contact_id)
        .collect();
    if bounced.is_empty() {
        return;
    }
    let state = run.state;
    let contacts = match state.store.contacts_by_ids(run.account.id, &bounced).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "reading bounced contacts failed");
            return;
        }
    };
    let upserts: Vec<ContactUpsert> = contacts
        .into_iter()
        .map(|c| ContactUpsert {
            external_id: c.external_id,
            email_status: Patch::Set(EmailStatus::Bounced),
            ..ContactUpsert::default()
        })
        .collect();
    if let Err(e) = writes::upsert_contacts(state, &run.account, &upserts).await {
        tracing::warn!(error = %e, "marking bounced addresses failed");
    }
}

fn last_error(outcomes: &[Outcome]) -> Option<&str> {
    outcomes
        .iter()
        .rev()
        .filter(|o| o.status != RecipientStatus::Sent)
        .find_map(|o| o.reason.as_deref())
}
