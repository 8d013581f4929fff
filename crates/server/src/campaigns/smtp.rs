//! E-mail over SMTP: a pool of connections reused across messages, each message one
//! transaction whose every step is classified, so that only a message the server may
//! have accepted is ever called unknown.
//!
//! The connections are ours (a tokio `TcpStream` handed to lettre's connection type)
//! so that TCP_NODELAY is set: lettre writes the message's final `.` apart from the
//! body, and with Nagle's algorithm that small write waits for the server's delayed
//! ACK, about 40 ms a message. Implicit TLS (port 465) connects through lettre, whose
//! socket keeps Nagle on; STARTTLS (port 587) has no such stall.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::Attempt;
use super::render::Rendered;
use crate::settings::{DeliverySettings, SmtpTls};

/// How long connecting, and each command, may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections to the configured SMTP server, kept open between messages.
pub struct SmtpPool {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<Credentials>,
    hello: ClientId,
    idle: Mutex<Vec<AsyncSmtpConnection>>,
    max_idle: usize,
    opened: AtomicU64,
}

/// How one transaction on one connection ended.
enum Step {
    Done(Attempt),
    /// The connection failed before the message's content was sent: nothing can have
    /// been accepted, so the message may go again on another connection.
    Broken(String),
}

impl SmtpPool {
    pub fn new(settings: &DeliverySettings) -> Self {
        SmtpPool {
            host: settings.smtp_host.clone(),
            port: settings.smtp_port,
            tls: settings.smtp_tls,
            credentials: settings
                .smtp_credentials
                .as_ref()
                .map(|(u, p)| Credentials::new(u.clone(), p.clone())),
            hello: hello_name(settings)
                .map(ClientId::Domain)
                .unwrap_or_default(),
            idle: Mutex::new(Vec::new()),
            max_idle: settings.send_concurrency,
            opened: AtomicU64::new(0),
        }
    }

    /// Connections opened so far (a pool that works opens few).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A new connection, greeted, secured and signed in as configured. `Err` is the
    /// attempt's outcome: a network failure is retried; a refusal that retrying will not
    /// change (no STARTTLS where it is required, a bad certificate, a 5xx to the
    /// password) fails, and enough of those in a row pause the campaign.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Attempt> {
        let tls = || {
            TlsParameters::new(self.host.clone())
                .map_err(|e| Attempt::Failed(format!("smtp tls: {e}")))
        };
        let mut conn = match self.tls {
            SmtpTls::None | SmtpTls::Starttls => {
                let tcp = tokio::time::timeout(
                    SMTP_TIMEOUT,
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)),
                )
                .await
                .map_err(|_| Attempt::retry("smtp: connecting timed out".into()))?
                .map_err(|e| Attempt::retry(format!("smtp: cannot connect: {e}")))?;
                tcp.set_nodelay(true)
                    .map_err(|e| Attempt::retry(format!("smtp: cannot set TCP_NODELAY: {e}")))?;
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello)
                        .await
                        .map_err(|e| setup_failed("smtp", e))?;
                if self.tls == SmtpTls::Starttls {
                    conn.starttls(tls()?, &self.hello)
                        .await
                        .map_err(|e| setup_failed("smtp starttls", e))?;
                }
                conn
            }
            SmtpTls::Tls => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(SMTP_TIMEOUT),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(|e| setup_failed("smtp", e))?,
        };
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| setup_failed("smtp auth", e))?;
        }
        self.opened.fetch_add(1, Ordering::Relaxed);
        Ok(conn)
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        self.idle.lock().ok()?.pop()
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
        }
    }

    /// Sends one message. A pooled connection the server closed while it was idle is
    /// replaced once, transparently (nothing was sent on it).
    pub async fn send(&self, envelope: &Envelope, bytes: &[u8]) -> Attempt {
        let mut pooled = self.take_idle();
        loop {
            let reused = pooled.is_some();
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                None => match self.connect().await {
                    Ok(conn) => conn,
                    Err(attempt) => return attempt,
                },
            };
            match tokio::time::timeout(SMTP_TIMEOUT * 2, transact(&mut conn, envelope, bytes)).await
            {
                Ok(Step::Done(Attempt::Sent)) => {
                    self.put_back(conn);
                    return Attempt::Sent;
                }
                Ok(Step::Done(attempt)) => {
                    close(conn);
                    return attempt;
                }
                Ok(Step::Broken(_)) if reused => {
                    close(conn);
                    continue;
                }
                Ok(Step::Broken(reason)) => {
                    close(conn);
                    return Attempt::retry(reason);
                }
                // The whole transaction took too long: where it stopped is not known.
                Err(_) => {
                    close(conn);
                    return Attempt::Unknown(
                        "smtp: no answer in time during the transaction".into(),
                    );
                }
            }
        }
    }
}

/// Says goodbye in the background: a connection in an unknown state is never reused.
fn close(mut conn: AsyncSmtpConnection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.abort()).await;
    });
}

/// MAIL, RCPT, DATA and the content, each answer classified. A 5xx to RCPT is a hard
/// bounce of the address; any other 5xx fails the message; a 4xx may be retried (the
/// server said it did not take the message). Only a connection lost after the content
/// was sent leaves the outcome unknown.
async fn transact(conn: &mut AsyncSmtpConnection, envelope: &Envelope, bytes: &[u8]) -> Step {
    let mut params = Vec::new();
    if !bytes.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
        params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    if let Err(e) = conn
        .command(Mail::new(envelope.from().cloned(), params))
        .await
    {
        return before_content(e, Attempt::Failed);
    }
    for to in envelope.to() {
        if let Err(e) = conn.command(Rcpt::new(to.clone(), Vec::new())).await {
            return before_content(e, Attempt::Bounced);
        }
    }
    if let Err(e) = conn.command(Data).await {
        return before_content(e, Attempt::Failed);
    }
    Step::Done(match conn.message(bytes).await {
        Ok(_) => Attempt::Sent,
        Err(e) if e.is_permanent() => Attempt::Failed(format!("smtp: {e}")),
        Err(e) if e.is_transient() => Attempt::retry(format!("smtp: {e}")),
        Err(e) => Attempt::Unknown(format!("smtp: no answer after the message was sent: {e}")),
    })
}

/// Setting a connection up failed: retried when the server said "later" or the network
/// failed, failed otherwise.
fn setup_failed(what: &str, e: lettre::transport::smtp::Error) -> Attempt {
    let reason = format!("{what}: {e}");
    if e.is_transient() || !(e.is_permanent() || e.is_client() || e.is_tls()) {
        Attempt::retry(reason)
    } else {
        Attempt::Failed(reason)
    }
}

fn before_content(e: lettre::transport::smtp::Error, permanent: fn(String) -> Attempt) -> Step {
    let reason = format!("smtp: {e}");
    if e.is_permanent() {
        Step::Done(permanent(reason))
    } else if e.is_transient() {
        Step::Done(Attempt::retry(reason))
    } else {
        Step::Broken(reason)
    }
}

/// The EHLO name: as configured, else the host of the public URL (the name contacts
/// reach this server by, so most likely the one its address resolves back to).
fn hello_name(settings: &DeliverySettings) -> Option<String> {
    settings.smtp_hello_name.clone().or_else(|| {
        let url = reqwest::Url::parse(settings.public_url.as_deref()?).ok()?;
        url.host_str().map(str::to_owned)
    })
}

/// The message for `to`, with every header a bulk sender owes. `Err` says why it
/// cannot be built (a bad address): a permanent failure.
pub fn build(message: &Rendered, to: &str) -> Result<Message, String> {
    let Rendered::Email {
        from,
        subject,
        html,
        text,
        reply_to,
        unsubscribe,
        unsubscribe_mailto,
        message_key,
    } = message
    else {
        return Err("not an e-mail".into());
    };
    let from: Mailbox = from.parse().map_err(|e| format!("bad from address: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("bad address: {e}"))?;
    // Gmail refuses mail without a Message-ID; it names the sender's domain. The same
    // message to the same recipient always has the same one: it is the transaction's
    // idempotency key, by which a receiver can recognise a message sent again.
    let message_id = format!("<{message_key}@{}>", from.email.domain());
    // RFC 2369 and RFC 8058: mail clients offer a one-click unsubscribe that POSTs
    // `List-Unsubscribe=One-Click` to this link (lettre adds `Date`).
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(subject.clone())
        .message_id(Some(message_id))
        .header(ListUnsubscribe(match unsubscribe_mailto {
            // A mail client that cannot POST writes to this address instead.
            Some(mailto) => format!("<{mailto}>, <{unsubscribe}>"),
            None => format!("<{unsubscribe}>"),
        }))
        .header(ListUnsubscribePost);
    let builder = match reply_to {
        Some(r) => builder.reply_to(
            r.parse()
                .map_err(|e| format!("bad reply-to address: {e}"))?,
        ),
        None => builder,
    };
    match (html, text) {
        (Some(h), Some(t)) => {
            builder.multipart(MultiPart::alternative_plain_html(t.clone(), h.clone()))
        }
        (Some(h), None) => builder.header(ContentType::TEXT_HTML).body(h.clone()),
        (None, t) => builder
            .header(ContentType::TEXT_PLAIN)
            .body(t.clone().unwrap_or_default()),
    }
    .map_err(|e| format!("cannot build the message: {e}"))
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
