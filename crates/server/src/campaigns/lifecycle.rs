//! What a person does to a campaign after creating it, for the API and the panel alike:
//! edit, cancel, pause, resume, duplicate, delete, send a test, send again to the
//! failed. Each change is guarded in the store by the statuses it starts from; a
//! refused one answers 409 naming the campaign's status.

use segmentd_store::{
    Account, Campaign, CampaignDraft, CampaignId, CampaignStatus, Channel, Recipient,
    RecipientStatus, Transition,
};

use super::render::{Links, Rendered, render};
use super::{Attempt, spawn_delivery};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tracking::Signer;

/// At most this many addresses get one test send.
pub const MAX_TEST_ADDRESSES: usize = 10;

fn done(t: Transition, id: CampaignId, wanted: &str) -> Result<Option<Campaign>, ApiError> {
    match t {
        Transition::Done(c) => Ok(c),
        Transition::NotFound => Err(ApiError::NotFound(format!("no campaign {id}"))),
        Transition::Refused(status) => Err(ApiError::Conflict {
            message: format!("campaign {id} is {}; {wanted}", status.as_str()),
            path: None,
        }),
    }
}

fn gone(id: CampaignId) -> ApiError {
    ApiError::NotFound(format!("no campaign {id}"))
}

/// Replaces a draft's or a scheduled campaign's settings and content.
pub async fn edit(
    state: &AppState,
    account: &Account,
    id: CampaignId,
    draft: &CampaignDraft,
) -> Result<Campaign, ApiError> {
    let t = state.store.update_campaign(account.id, id, draft).await?;
    done(t, id, "only a draft or a scheduled campaign can be edited")?.ok_or_else(|| gone(id))
}

/// Moves the campaign from one of `from` to `to`, or says why not (`refusal`).
async fn move_to(
    state: &AppState,
    account: &Account,
    id: CampaignId,
    from: &[CampaignStatus],
    to: CampaignStatus,
    reason: Option<&str>,
    refusal: &str,
) -> Result<Campaign, ApiError> {
    let t = state
        .store
        .set_campaign_status(account.id, id, from, to, reason)
        .await?;
    done(t, id, refusal)?.ok_or_else(|| gone(id))
}

/// A scheduled campaign is not sent after all.
pub async fn cancel(
    state: &AppState,
    account: &Account,
    id: CampaignId,
) -> Result<Campaign, ApiError> {
    use CampaignStatus::*;
    let refusal = "only a scheduled campaign can be cancelled";
    move_to(state, account, id, &[Scheduled], Cancelled, None, refusal).await
}

/// Stops starting messages; those in flight finish, the rest stay queued.
pub async fn pause(
    state: &AppState,
    account: &Account,
    id: CampaignId,
) -> Result<Campaign, ApiError> {
    use CampaignStatus::*;
    let refusal = "only a sending campaign can be paused";
    let campaign = move_to(
        state,
        account,
        id,
        &[Sending],
        Paused,
        Some("paused by hand"),
        refusal,
    )
    .await?;
    state.campaigns.stop((account.id, id));
    Ok(campaign)
}

/// Goes on delivering a paused campaign.
pub async fn resume(
    state: &AppState,
    account: &Account,
    id: CampaignId,
) -> Result<Campaign, ApiError> {
    use CampaignStatus::*;
    let refusal = "only a paused campaign can be resumed";
    let campaign = move_to(state, account, id, &[Paused], Sending, None, refusal).await?;
    spawn_delivery(state.clone(), account.id, id);
    Ok(campaign)
}

/// A new draft with the same settings and content, named "… (copy)".
pub async fn duplicate(
    state: &AppState,
    account: &Account,
    id: CampaignId,
) -> Result<Campaign, ApiError> {
    let c = state
        .store
        .campaign(account.id, id)
        .await?
        .ok_or_else(|| gone(id))?;
    let draft = CampaignDraft {
        name: format!("{} (copy)", c.name),
        channel: c.channel,
        content: c.content,
        targets: c.targets,
        exclusions: c.exclusions,
        scheduled_at: None,
        rate_per_second: c.rate_per_second,
    };
    Ok(state
        .store
        .create_campaign(account.id, &draft, state.clock.now())
        .await?)
}

/// Deletes a draft or a cancelled campaign.
pub async fn delete(state: &AppState, account: &Account, id: CampaignId) -> Result<(), ApiError> {
    let t = state.store.delete_campaign(account.id, id).await?;
    done(t, id, "only a draft or a cancelled campaign can be deleted").map(|_| ())
}

/// Queues again the recipients that failed (and, when asked, those whose outcome is
/// unknown: they may get the message twice) and delivers them, if their contact can
/// still be reached. How many.
pub async fn resend(
    state: &AppState,
    account: &Account,
    id: CampaignId,
    include_unknown: bool,
) -> Result<u64, ApiError> {
    let c = state
        .store
        .campaign(account.id, id)
        .await?
        .ok_or_else(|| gone(id))?;
    if !matches!(
        c.status,
        CampaignStatus::Sending | CampaignStatus::Paused | CampaignStatus::Sent
    ) {
        return Err(ApiError::Conflict {
            message: format!(
                "campaign {id} is {}; only a campaign that was sent can be sent again to its failed recipients",
                c.status.as_str()
            ),
            path: None,
        });
    }
    let mut statuses = vec![RecipientStatus::Failed];
    if include_unknown {
        statuses.push(RecipientStatus::Unknown);
    }
    let n = state
        .store
        .requeue_recipients(account.id, id, &statuses, state.clock.now())
        .await?;
    if n > 0 {
        spawn_delivery(state.clone(), account.id, id);
    }
    Ok(n)
}

/// What one test address got.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TestResult {
    pub to: String,
    /// `sent`, `failed`, `bounced`, `unknown` or `retry` (a temporary failure: not
    /// retried for a test).
    pub status: String,
    pub reason: Option<String>,
}

/// Sends the campaign's message, as it would go out now, to the given addresses (its
/// subject marked `[Test]`), personalised with `as_contact`'s values when given. Nothing
/// is recorded: no recipient, no tracking counts (the links work but name no
/// recipient of the campaign).
pub async fn test_send(
    state: &AppState,
    account: &Account,
    id: CampaignId,
    to: &[String],
    as_contact: Option<&str>,
) -> Result<Vec<TestResult>, ApiError> {
    let campaign = state
        .store
        .campaign(account.id, id)
        .await?
        .ok_or_else(|| gone(id))?;
    if !state.campaigns.can_deliver(campaign.channel) {
        return Err(ApiError::Conflict {
            message: format!(
                "no provider is configured for {} on this server",
                campaign.channel.as_str()
            ),
            path: None,
        });
    }
    let contact = match as_contact {
        Some(external_id) => Some(
            state
                .store
                .contact(account.id, external_id)
                .await?
                .ok_or_else(|| {
                    ApiError::Validation(vec![segmentd_rules::Issue::new(
                        "contact",
                        format!("no contact {external_id:?}"),
                    )])
                })?,
        ),
        None => None,
    };
    let signer = Signer::for_account(state.store.as_ref(), account.id).await?;
    let base = state.campaigns.public_url().to_owned();
    let mut results = Vec::with_capacity(to.len());
    for (i, address) in to.iter().enumerate() {
        let recipient = Recipient {
            contact_id: contact.as_ref().map(|c| c.id).unwrap_or(0),
            external_id: contact
                .as_ref()
                .map(|c| c.external_id.clone())
                .unwrap_or_else(|| "test".into()),
            address: address.clone(),
            status: RecipientStatus::Sending,
            reason: None,
            attempts: 1,
            next_attempt_at: None,
            first_attempt_at: None,
        };
        let links = Links {
            base: &base,
            signer: &signer,
            account: account.id,
            campaign: campaign.id,
            contact: recipient.contact_id,
        };
        let mut message = render(&campaign, &recipient, contact.as_ref(), &links);
        let key = format!(
            "test.c{}.{}.{i}",
            campaign.id,
            state.clock.now().as_millisecond()
        );
        if let Rendered::Email {
            subject,
            message_key,
            ..
        } = &mut message
        {
            *subject = format!("[Test] {subject}");
            *message_key = key.clone();
        }
        let attempt = state
            .campaigns
            .deliver(
                campaign.channel,
                address,
                &recipient.external_id,
                &key,
                &message,
            )
            .await;
        let (status, reason) = match attempt {
            Attempt::Sent => ("sent", None),
            Attempt::Retry { reason, .. } => ("retry", Some(reason)),
            Attempt::Failed(r) => ("failed", Some(r)),
            Attempt::Bounced(r) => ("bounced", Some(r)),
            Attempt::Unknown(r) => ("unknown", Some(r)),
        };
        results.push(TestResult {
            to: address.clone(),
            status: status.into(),
            reason,
        });
    }
    Ok(results)
}

/// Checks test addresses for the channel: e-mail addresses, phone numbers, tokens.
pub fn check_test_addresses(channel: Channel, to: &[String]) -> Vec<segmentd_rules::Issue> {
    let mut issues = Vec::new();
    if to.is_empty() || to.len() > MAX_TEST_ADDRESSES {
        issues.push(segmentd_rules::Issue::new(
            "to",
            format!("expected 1 to {MAX_TEST_ADDRESSES} addresses"),
        ));
    }
    for (i, a) in to.iter().enumerate() {
        let ok = match channel {
            Channel::Email => a.parse::<lettre::Address>().is_ok(),
            Channel::Sms | Channel::Push => !a.trim().is_empty() && a.len() <= 4096,
        };
        if !ok {
            issues.push(segmentd_rules::Issue::new(
                format!("to[{i}]"),
                match channel {
                    Channel::Email => "expected an e-mail address",
                    Channel::Sms => "expected a phone number",
                    Channel::Push => "expected a push token",
                },
            ));
        }
    }
    issues
}
