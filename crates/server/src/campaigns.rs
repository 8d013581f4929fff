//! Campaign sending: the audience computed from segments, frozen in the store, then
//! delivered one recipient at a time through the channel's adapter (SMTP for e-mail, a
//! JSON POST for SMS and push).
//!
//! Delivery is **at most once**. Before each attempt the recipient's status becomes
//! `sending` (committed); after it, `sent`, `queued` (a retry follows) or `failed`. A
//! recipient still `sending` when a run resumes after a crash may or may not have been
//! reached, so it is marked `failed` ("interrupted") and never tried again: nobody gets a
//! message twice, at the price of possibly missing the one recipient in flight.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use segmentd_rules::FieldValue;
use segmentd_store::{
    Account, AccountId, Campaign, CampaignId, CampaignStatus, Channel, Contact, ContactId,
    Recipient, RecipientStatus,
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::settings::{DeliverySettings, SmtpTls};
use crate::state::AppState;
use crate::tracking::{LinkKind, Signer};

/// Frozen recipients read (with their contacts) at a time while delivering.
const RECIPIENTS_PAGE: u32 = 1_000;
/// Attempts per recipient (the first and two retries).
pub const MAX_ATTEMPTS: u32 = 3;
/// How often due scheduled campaigns are looked for.
const SCHEDULE_TICK: Duration = Duration::from_secs(1);

/// Delivery settings, the webhook client and the campaigns being delivered by this
/// process (so one campaign never runs twice at once here).
pub struct Delivery {
    pub settings: DeliverySettings,
    http: reqwest::Client,
    running: Mutex<HashSet<(AccountId, CampaignId)>>,
}

impl Delivery {
    pub fn new(settings: DeliverySettings) -> Self {
        Delivery {
            settings,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            running: Mutex::new(HashSet::new()),
        }
    }

    fn claim(&self, key: (AccountId, CampaignId)) -> bool {
        self.running
            .lock()
            .map(|mut r| r.insert(key))
            .unwrap_or(false)
    }

    fn release(&self, key: (AccountId, CampaignId)) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&key);
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

fn spawn_delivery(state: AppState, account: AccountId, id: CampaignId) {
    tokio::spawn(async move {
        if !state.campaigns.claim((account, id)) {
            return;
        }
        if let Err(e) = deliver_campaign(&state, account, id).await {
            tracing::error!(account, campaign = id, error = %e, "campaign delivery stopped");
        }
        state.campaigns.release((account, id));
    });
}

/// At start: campaigns left `sending` by a previous run are resumed (their in-flight
/// recipients marked failed, see the module docs), then due scheduled campaigns are
/// sent as their time comes.
pub async fn start_worker(state: AppState) -> anyhow::Result<()> {
    let now = state.clock.now();
    for c in state.store.campaigns_to_run(now).await? {
        if c.status != CampaignStatus::Sending {
            continue;
        }
        let mut after: Option<String> = None;
        loop {
            let page = state
                .store
                .campaign_recipients_page(c.account_id, c.id, after.as_deref(), RECIPIENTS_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.external_id.clone());
            for r in page.iter().filter(|r| r.status == RecipientStatus::Sending) {
                state
                    .store
                    .update_recipient(
                        c.account_id,
                        c.id,
                        r.contact_id,
                        RecipientStatus::Failed,
                        Some("interrupted during delivery; not retried so it is never sent twice"),
                        r.attempts,
                        now,
                    )
                    .await?;
            }
        }
        tracing::info!(
            account = c.account_id,
            campaign = c.id,
            "resuming a campaign's delivery"
        );
        spawn_delivery(state.clone(), c.account_id, c.id);
    }
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SCHEDULE_TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            if let Err(e) = send_due(&state).await {
                tracing::warn!(error = %e, "sending scheduled campaigns failed");
            }
        }
    });
    Ok(())
}

async fn send_due(state: &AppState) -> Result<(), ApiError> {
    for c in state.store.campaigns_to_run(state.clock.now()).await? {
        if c.status != CampaignStatus::Scheduled {
            continue;
        }
        let (Some(account), Some(campaign)) = (
            state.store.account(c.account_id).await?,
            state.store.campaign(c.account_id, c.id).await?,
        ) else {
            continue;
        };
        // An instance without the channel's provider leaves the campaign to one with it.
        if !state.campaigns.can_deliver(campaign.channel) {
            continue;
        }
        send_now(state, &account, &campaign).await?;
    }
    Ok(())
}

/// Delivers every queued recipient of a `sending` campaign, then marks it sent.
async fn deliver_campaign(
    state: &AppState,
    account_id: AccountId,
    id: CampaignId,
) -> anyhow::Result<()> {
    let store = &state.store;
    let Some(campaign) = store.campaign(account_id, id).await? else {
        return Ok(());
    };
    if campaign.status != CampaignStatus::Sending {
        return Ok(());
    }
    let signer = Signer::for_account(store.as_ref(), account_id).await?;
    let adapter = Adapter::new(&state.campaigns, campaign.channel)?;
    let base = state.campaigns.public_url().to_owned();
    // A page of the frozen list at a time (with its contacts), never all of it at once.
    let mut after: Option<String> = None;
    loop {
        let page = store
            .campaign_recipients_page(account_id, id, after.as_deref(), RECIPIENTS_PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.external_id.clone());
        let recipients: Vec<Recipient> = page
            .into_iter()
            .filter(|r| r.status == RecipientStatus::Queued)
            .collect();
        let ids: Vec<i64> = recipients.iter().map(|r| r.contact_id).collect();
        let contacts: HashMap<i64, Contact> = store
            .contacts_by_ids(account_id, &ids)
            .await?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        deliver_page(
            state, &campaign, &adapter, &signer, &base, recipients, &contacts,
        )
        .await?;
    }
    store
        .finish_campaign(account_id, id, state.clock.now())
        .await?;
    Ok(())
}

/// Delivers one page of queued recipients, one at a time (at most once each).
async fn deliver_page(
    state: &AppState,
    campaign: &Campaign,
    adapter: &Adapter,
    signer: &Signer,
    base: &str,
    recipients: Vec<Recipient>,
    contacts: &HashMap<i64, Contact>,
) -> anyhow::Result<()> {
    let store = &state.store;
    let (account_id, id) = (campaign.account_id, campaign.id);
    for r in recipients {
        let links = Links {
            base,
            signer,
            account: account_id,
            campaign: id,
            contact: r.contact_id,
        };
        let message = render(campaign, &r, contacts.get(&r.contact_id), &links);
        let mut attempts = r.attempts;
        loop {
            attempts += 1;
            let now = state.clock.now();
            store
                .update_recipient(
                    account_id,
                    id,
                    r.contact_id,
                    RecipientStatus::Sending,
                    None,
                    attempts,
                    now,
                )
                .await?;
            let outcome = adapter.deliver(&state.campaigns, &r, &message).await;
            let now = state.clock.now();
            match outcome {
                Ok(()) => {
                    store
                        .update_recipient(
                            account_id,
                            id,
                            r.contact_id,
                            RecipientStatus::Sent,
                            None,
                            attempts,
                            now,
                        )
                        .await?;
                    break;
                }
                Err(e) if e.transient && attempts < MAX_ATTEMPTS => {
                    store
                        .update_recipient(
                            account_id,
                            id,
                            r.contact_id,
                            RecipientStatus::Queued,
                            Some(&e.reason),
                            attempts,
                            now,
                        )
                        .await?;
                    let wait = state.campaigns.settings.retry_backoff * 2u32.pow(attempts - 1);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    store
                        .update_recipient(
                            account_id,
                            id,
                            r.contact_id,
                            RecipientStatus::Failed,
                            Some(&e.reason),
                            attempts,
                            now,
                        )
                        .await?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Builds tracking links for one recipient.
pub struct Links<'a> {
    pub base: &'a str,
    pub signer: &'a Signer,
    pub account: AccountId,
    pub campaign: CampaignId,
    pub contact: i64,
}

impl Links<'_> {
    fn url(&self, kind: LinkKind, target: Option<&str>) -> String {
        self.signer.url(
            self.base,
            kind,
            self.account,
            self.campaign,
            self.contact,
            target,
        )
    }
}

/// One recipient's message, personalised and with its links tracked.
#[derive(Debug, Clone, PartialEq)]
pub enum Rendered {
    Email {
        from: String,
        subject: String,
        html: Option<String>,
        text: Option<String>,
        /// Where replies go, when not to the sender.
        reply_to: Option<String>,
        /// The recipient's signed unsubscribe link, for `List-Unsubscribe`.
        unsubscribe: String,
        /// The local part of the `Message-ID` (the sender's domain completes it): one
        /// per campaign and recipient, so that a message sent again is recognisably the
        /// same one.
        message_key: String,
    },
    Sms {
        text: String,
    },
    Push {
        title: String,
        body: String,
        link: Option<String>,
    },
}

fn text_of(content: &serde_json::Value, key: &str) -> Option<String> {
    content.get(key).and_then(|v| v.as_str()).map(str::to_owned)
}

/// The value `{{key}}` stands for: `external_id`, `email`, `phone` or a custom field;
/// empty when the contact has none.
fn field_text(contact: Option<&Contact>, external_id: &str, key: &str) -> String {
    let Some(c) = contact else {
        return if key == "external_id" {
            external_id.to_owned()
        } else {
            String::new()
        };
    };
    match key {
        "external_id" => c.external_id.clone(),
        "email" => c.email.clone().unwrap_or_default(),
        "phone" => c.phone.clone().unwrap_or_default(),
        _ => match c.fields.get(key) {
            Some(FieldValue::Text(t)) => t.clone(),
            Some(other) => match other.to_json() {
                serde_json::Value::String(s) => s,
                v => v.to_string(),
            },
            None => String::new(),
        },
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Replaces every `{{ key }}` with `value(key)`; text without a closing `}}` is kept.
pub fn personalise(template: &str, value: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                out.push_str(&value(after[..end].trim()));
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Rewrites `href="http…"` links into click-tracking links.
fn track_html_links(html: &str, links: &Links) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(pos) = rest.find("href=\"") {
        let value_start = pos + 6;
        out.push_str(&rest[..value_start]);
        let after = &rest[value_start..];
        let end = after.find('"').unwrap_or(after.len());
        let target = &after[..end];
        let ours = target.starts_with(&format!("{}/t/", links.base.trim_end_matches('/')));
        if !ours && (target.starts_with("http://") || target.starts_with("https://")) {
            let unescaped = target.replace("&amp;", "&");
            out.push_str(&escape_html(&links.url(LinkKind::Click, Some(&unescaped))));
        } else {
            out.push_str(target);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Rewrites every word starting with `http://` or `https://` into a click link.
fn track_text_links(text: &str, links: &Links) -> String {
    text.split(' ')
        .map(|w| {
            if w.starts_with("http://") || w.starts_with("https://") {
                links.url(LinkKind::Click, Some(w))
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(
    campaign: &Campaign,
    recipient: &Recipient,
    contact: Option<&Contact>,
    links: &Links,
) -> Rendered {
    let unsubscribe = links.url(LinkKind::Unsubscribe, None);
    let value = |key: &str| match key {
        "unsubscribe_url" => unsubscribe.clone(),
        _ => field_text(contact, &recipient.external_id, key),
    };
    let plain = |key: &str| text_of(&campaign.content, key).map(|t| personalise(&t, value));
    match campaign.channel {
        Channel::Email => {
            let html = text_of(&campaign.content, "html").map(|t| {
                let body = personalise(&t, |k| match k {
                    "unsubscribe_url" => escape_html(&unsubscribe),
                    _ => escape_html(&field_text(contact, &recipient.external_id, k)),
                });
                let body = track_html_links(&body, links);
                let pixel = format!(
                    "<img src=\"{}\" width=\"1\" height=\"1\" alt=\"\">",
                    escape_html(&links.url(LinkKind::Open, None))
                );
                match body.rfind("</body>") {
                    Some(i) => format!("{}{pixel}{}", &body[..i], &body[i..]),
                    None => format!("{body}{pixel}"),
                }
            });
            Rendered::Email {
                from: text_of(&campaign.content, "from").unwrap_or_default(),
                subject: plain("subject").unwrap_or_default(),
                html,
                text: plain("text").map(|t| track_text_links(&t, links)),
                reply_to: text_of(&campaign.content, "reply_to"),
                unsubscribe,
                message_key: format!("c{}.r{}", campaign.id, recipient.contact_id),
            }
        }
        Channel::Sms => Rendered::Sms {
            text: track_text_links(&plain("text").unwrap_or_default(), links),
        },
        Channel::Push => Rendered::Push {
            title: plain("title").unwrap_or_default(),
            body: plain("body").unwrap_or_default(),
            link: plain("link").map(|l| links.url(LinkKind::Click, Some(&l))),
        },
    }
}

/// Why one attempt failed; `transient` failures are retried.
#[derive(Debug)]
pub struct DeliveryError {
    pub reason: String,
    pub transient: bool,
}

enum Adapter {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Webhook(Option<String>),
}

impl Adapter {
    fn new(delivery: &Delivery, channel: Channel) -> anyhow::Result<Self> {
        let s = &delivery.settings;
        Ok(match channel {
            Channel::Email => {
                let b = match s.smtp_tls {
                    SmtpTls::None => {
                        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.smtp_host)
                    }
                    SmtpTls::Starttls => {
                        AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.smtp_host)?
                    }
                    SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.smtp_host)?,
                };
                let mut b = b.port(s.smtp_port).timeout(Some(Duration::from_secs(30)));
                if let Some((user, password)) = &s.smtp_credentials {
                    b = b.credentials(Credentials::new(user.clone(), password.clone()));
                }
                if let Some(name) = hello_name(s) {
                    b = b.hello_name(ClientId::Domain(name));
                }
                Adapter::Smtp(b.build())
            }
            Channel::Sms => Adapter::Webhook(s.sms_webhook_url.clone()),
            Channel::Push => Adapter::Webhook(s.push_webhook_url.clone()),
        })
    }

    async fn deliver(
        &self,
        delivery: &Delivery,
        recipient: &Recipient,
        message: &Rendered,
    ) -> Result<(), DeliveryError> {
        let permanent = |reason: String| DeliveryError {
            reason,
            transient: false,
        };
        match (self, message) {
            (
                Adapter::Smtp(transport),
                Rendered::Email {
                    from,
                    subject,
                    html,
                    text,
                    reply_to,
                    unsubscribe,
                    message_key,
                },
            ) => {
                let from: Mailbox = from
                    .parse()
                    .map_err(|e| permanent(format!("bad from address: {e}")))?;
                let to: Mailbox = recipient
                    .address
                    .parse()
                    .map_err(|e| permanent(format!("bad address: {e}")))?;
                // Gmail refuses mail without a Message-ID; it names the sender's domain.
                let message_id = format!("<{message_key}@{}>", from.email.domain());
                // RFC 2369 and RFC 8058: mail clients offer a one-click unsubscribe that
                // POSTs `List-Unsubscribe=One-Click` to this link (lettre adds `Date`).
                let builder = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(subject.clone())
                    .message_id(Some(message_id))
                    .header(ListUnsubscribe(format!("<{unsubscribe}>")))
                    .header(ListUnsubscribePost);
                let builder = match reply_to {
                    Some(r) => builder.reply_to(
                        r.parse()
                            .map_err(|e| permanent(format!("bad reply-to address: {e}")))?,
                    ),
                    None => builder,
                };
                let email = match (html, text) {
                    (Some(h), Some(t)) => {
                        builder.multipart(MultiPart::alternative_plain_html(t.clone(), h.clone()))
                    }
                    (Some(h), None) => builder.header(ContentType::TEXT_HTML).body(h.clone()),
                    (None, t) => builder
                        .header(ContentType::TEXT_PLAIN)
                        .body(t.clone().unwrap_or_default()),
                }
                .map_err(|e| permanent(format!("cannot build the message: {e}")))?;
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| DeliveryError {
                        transient: !e.is_permanent(),
                        reason: format!("smtp: {e}"),
                    })
            }
            (Adapter::Webhook(url), message) => {
                let Some(url) = url else {
                    return Err(permanent(
                        "no provider URL is configured for this channel".into(),
                    ));
                };
                let body = match message {
                    Rendered::Sms { text } => serde_json::json!({
                        "to": recipient.address, "contact": recipient.external_id, "text": text,
                    }),
                    Rendered::Push { title, body, link } => serde_json::json!({
                        "tokens": recipient.address.split(',').collect::<Vec<_>>(),
                        "contact": recipient.external_id,
                        "title": title, "body": body, "link": link,
                    }),
                    Rendered::Email { .. } => return Err(permanent("wrong adapter".into())),
                };
                let response = delivery
                    .http
                    .post(url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| DeliveryError {
                        reason: format!("provider: {e}"),
                        transient: true,
                    })?;
                let status = response.status();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(DeliveryError {
                        reason: format!("provider answered {status}"),
                        transient: status.is_server_error() || status.as_u16() == 429,
                    })
                }
            }
            _ => Err(permanent("wrong adapter".into())),
        }
    }
}

/// The EHLO name: as configured, else the host of the public URL (the name contacts
/// reach this server by, so most likely the one its address resolves back to).
fn hello_name(settings: &crate::settings::DeliverySettings) -> Option<String> {
    settings.smtp_hello_name.clone().or_else(|| {
        let url = reqwest::Url::parse(settings.public_url.as_deref()?).ok()?;
        url.host_str().map(str::to_owned)
    })
}

/// The `List-Unsubscribe` header (RFC 2369): the unsubscribe link in angle brackets.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058): the link above
/// unsubscribes on a POST, with no page to confirm.
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_owned())
    }
}
