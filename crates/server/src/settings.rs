//! Configuration: flags, then environment (`SEGMENTD_*`), then a TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";

/// Where segmentd keeps its data and listens. Every option can also come from the
/// environment or from the `--config` file.
#[derive(Debug, Clone, Default, Args)]
pub struct SettingsArgs {
    /// Address to listen on.
    #[arg(long, env = "SEGMENTD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the embedded SQLite database (used when no database URL is given).
    #[arg(long, env = "SEGMENTD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`; overrides --data-dir.
    #[arg(long, env = "SEGMENTD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// A TOML file with `listen`, `data_dir` and `database_url`.
    #[arg(long, env = "SEGMENTD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Campaign delivery: SMTP server host (plain SMTP; default 127.0.0.1).
    #[arg(long, env = "SEGMENTD_SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default 25).
    #[arg(long, env = "SEGMENTD_SMTP_PORT")]
    pub smtp_port: Option<u16>,
    /// SMTP security: `none` (plain, the default), `starttls` (required) or `tls`
    /// (implicit TLS, usually port 465). Certificates are checked against the bundled
    /// web PKI roots.
    #[arg(long, env = "SEGMENTD_SMTP_TLS")]
    pub smtp_tls: Option<SmtpTls>,
    /// SMTP user name (with --smtp-password).
    #[arg(long, env = "SEGMENTD_SMTP_USERNAME")]
    pub smtp_username: Option<String>,
    #[arg(long, env = "SEGMENTD_SMTP_PASSWORD")]
    pub smtp_password: Option<String>,
    /// The name segmentd gives in EHLO: the sending host's name, which receivers check
    /// against its reverse DNS (default: the host of --public-url).
    #[arg(long, env = "SEGMENTD_SMTP_HELLO_NAME")]
    pub smtp_hello_name: Option<String>,
    /// The SMS provider's URL: each message is POSTed there as JSON.
    #[arg(long, env = "SEGMENTD_SMS_WEBHOOK_URL")]
    pub sms_webhook_url: Option<String>,
    /// The push provider's URL: each message is POSTed there as JSON.
    #[arg(long, env = "SEGMENTD_PUSH_WEBHOOK_URL")]
    pub push_webhook_url: Option<String>,
    /// The URL contacts reach this server at, for tracking links (default: http://LISTEN).
    #[arg(long, env = "SEGMENTD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Messages in flight at once, across campaigns (default 32).
    #[arg(long, env = "SEGMENTD_SEND_CONCURRENCY")]
    pub send_concurrency: Option<usize>,
    /// Messages in flight at once for one campaign (default 16).
    #[arg(long, env = "SEGMENTD_CAMPAIGN_CONCURRENCY")]
    pub campaign_concurrency: Option<usize>,
    /// At most this many messages a second, across campaigns (default: no limit).
    #[arg(long, env = "SEGMENTD_SEND_RATE")]
    pub send_rate: Option<u32>,
    /// How long temporary failures are retried, in seconds (default 86400: 24 hours).
    #[arg(long, env = "SEGMENTD_RETRY_FOR")]
    pub retry_for: Option<u64>,
    /// A campaign pauses itself after this many failed attempts in a row (default 25).
    #[arg(long, env = "SEGMENTD_PAUSE_AFTER_ERRORS")]
    pub pause_after_errors: Option<u32>,
    /// The secret SMS and push webhooks are signed with (HMAC-SHA256, header
    /// `Segmentd-Signature`); unsigned without it.
    #[arg(long, env = "SEGMENTD_WEBHOOK_SECRET")]
    pub webhook_secret: Option<String>,
    /// An `Authorization` header value sent with every SMS and push webhook.
    #[arg(long, env = "SEGMENTD_WEBHOOK_AUTHORIZATION")]
    pub webhook_authorization: Option<String>,
    /// Panel cookies `Secure` with the `__Host-` prefix even when --public-url is not
    /// https (behind a proxy that terminates TLS); they are whenever it is.
    #[arg(long, env = "SEGMENTD_SECURE_COOKIES")]
    pub secure_cookies: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_tls: Option<SmtpTls>,
    smtp_username: Option<String>,
    smtp_password: Option<String>,
    smtp_hello_name: Option<String>,
    sms_webhook_url: Option<String>,
    push_webhook_url: Option<String>,
    public_url: Option<String>,
    send_concurrency: Option<usize>,
    campaign_concurrency: Option<usize>,
    send_rate: Option<u32>,
    retry_for: Option<u64>,
    pause_after_errors: Option<u32>,
    webhook_secret: Option<String>,
    webhook_authorization: Option<String>,
    secure_cookies: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub delivery: DeliverySettings,
}

/// Where campaigns are delivered, and the base of their tracking links.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_tls: SmtpTls,
    /// User name and password, when the server wants them.
    pub smtp_credentials: Option<(String, String)>,
    /// The EHLO name; `None`: the host of the public URL, else lettre's default.
    pub smtp_hello_name: Option<String>,
    pub sms_webhook_url: Option<String>,
    pub push_webhook_url: Option<String>,
    /// `None`: `http://` and the address the server listens on.
    pub public_url: Option<String>,
    /// The first retry waits this long, each next one twice as long (up to
    /// `retry_max_backoff`); a provider's `Retry-After` is taken instead when given.
    pub retry_backoff: std::time::Duration,
    pub retry_max_backoff: std::time::Duration,
    /// Temporary failures are retried until this long after the first attempt.
    pub retry_for: std::time::Duration,
    /// Messages in flight at once, across campaigns.
    pub send_concurrency: usize,
    /// Messages in flight at once for one campaign.
    pub campaign_concurrency: usize,
    /// Messages a second across campaigns; `None`: no limit.
    pub send_rate: Option<u32>,
    /// Failed attempts in a row after which a campaign pauses itself.
    pub pause_after_errors: u32,
    /// Signs webhook bodies (HMAC-SHA256) when set.
    pub webhook_secret: Option<String>,
    /// Sent as `Authorization` with every webhook when set.
    pub webhook_authorization: Option<String>,
    /// How long a webhook may take before its outcome counts as unknown.
    pub webhook_timeout: std::time::Duration,
    /// The panel's session cookie is `Secure` with the `__Host-` prefix (also whenever
    /// `public_url` is https).
    pub secure_cookies: bool,
    /// Whether this process runs the background worker: scheduled campaigns sent when
    /// due, and sending ones taken up after a restart or a resume elsewhere. A process
    /// without it still delivers what is sent or resumed through it.
    pub worker: bool,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP (a local relay).
    #[default]
    None,
    /// STARTTLS, required.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            smtp_host: "127.0.0.1".to_owned(),
            smtp_port: 25,
            smtp_tls: SmtpTls::None,
            smtp_credentials: None,
            smtp_hello_name: None,
            sms_webhook_url: None,
            push_webhook_url: None,
            public_url: None,
            retry_backoff: std::time::Duration::from_secs(60),
            retry_max_backoff: std::time::Duration::from_secs(3600),
            retry_for: std::time::Duration::from_secs(24 * 3600),
            send_concurrency: 32,
            campaign_concurrency: 16,
            send_rate: None,
            pause_after_errors: 25,
            webhook_secret: None,
            webhook_authorization: None,
            webhook_timeout: std::time::Duration::from_secs(30),
            worker: true,
            secure_cookies: false,
        }
    }
}

impl Settings {
    pub fn resolve(args: &SettingsArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read config file {}: {e}", path.display())
                })?;
                toml::from_str::<FileSettings>(&text)
                    .map_err(|e| anyhow::anyhow!("config file {}: {e}", path.display()))?
            }
            None => FileSettings::default(),
        };
        let default_listen: SocketAddr = DEFAULT_LISTEN.parse()?;
        Ok(Settings {
            listen: args.listen.or(file.listen).unwrap_or(default_listen),
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database_url: args.database_url.clone().or(file.database_url),
            delivery: {
                let d = DeliverySettings::default();
                let user = args.smtp_username.clone().or(file.smtp_username);
                let password = args.smtp_password.clone().or(file.smtp_password);
                DeliverySettings {
                    smtp_host: args
                        .smtp_host
                        .clone()
                        .or(file.smtp_host)
                        .unwrap_or(d.smtp_host),
                    smtp_port: args.smtp_port.or(file.smtp_port).unwrap_or(d.smtp_port),
                    smtp_tls: args.smtp_tls.or(file.smtp_tls).unwrap_or(d.smtp_tls),
                    smtp_credentials: user.zip(password),
                    smtp_hello_name: args.smtp_hello_name.clone().or(file.smtp_hello_name),
                    sms_webhook_url: args.sms_webhook_url.clone().or(file.sms_webhook_url),
                    push_webhook_url: args.push_webhook_url.clone().or(file.push_webhook_url),
                    public_url: args.public_url.clone().or(file.public_url),
                    send_concurrency: args
                        .send_concurrency
                        .or(file.send_concurrency)
                        .unwrap_or(d.send_concurrency)
                        .max(1),
                    campaign_concurrency: args
                        .campaign_concurrency
                        .or(file.campaign_concurrency)
                        .unwrap_or(d.campaign_concurrency)
                        .max(1),
                    send_rate: args.send_rate.or(file.send_rate).filter(|r| *r > 0),
                    retry_for: args
                        .retry_for
                        .or(file.retry_for)
                        .map(std::time::Duration::from_secs)
                        .unwrap_or(d.retry_for),
                    pause_after_errors: args
                        .pause_after_errors
                        .or(file.pause_after_errors)
                        .unwrap_or(d.pause_after_errors)
                        .max(1),
                    webhook_secret: args.webhook_secret.clone().or(file.webhook_secret),
                    webhook_authorization: args
                        .webhook_authorization
                        .clone()
                        .or(file.webhook_authorization),
                    secure_cookies: args.secure_cookies || file.secure_cookies.unwrap_or(false),
                    ..d
                }
            },
        })
    }

    /// The database URL, creating the data directory for the embedded default.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.clone(),
            None => sqlite_url(&self.data_dir),
        }
    }

    pub fn uses_data_dir(&self) -> bool {
        self.database_url.is_none()
    }
}

pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}", data_dir.join("segmentd.db").display())
}
