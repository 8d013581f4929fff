//! One recipient's message: personalised with the contact's values, its links made
//! into signed tracking links, and the headers a bulk sender owes (Message-ID,
//! List-Unsubscribe).

use segmentd_rules::FieldValue;
use segmentd_store::{AccountId, Campaign, CampaignId, Channel, Contact, Recipient};

use crate::tracking::{LinkKind, Signer};

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
        /// `mailto:` the sender's unsubscribe address (its subject names the message),
        /// when the campaign gives one.
        unsubscribe_mailto: Option<String>,
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
                unsubscribe_mailto: text_of(&campaign.content, "unsubscribe_mailto").map(|a| {
                    format!(
                        "mailto:{a}?subject=unsubscribe%20c{}.r{}",
                        campaign.id, recipient.contact_id
                    )
                }),
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
