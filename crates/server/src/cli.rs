//! The command line: `serve`, `demo`, `account create`.

use clap::{Parser, Subcommand};
use jiff::tz::TimeZone;

use crate::auth::issue_api_key;
use crate::demo::ensure_demo;
use crate::settings::{Settings, SettingsArgs};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(
    name = "segmentd",
    version,
    about = "Dynamic segments of contacts, kept up to date."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        #[command(flatten)]
        settings: SettingsArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
    },
    /// A cluster's state: `cluster status` prints its nodes and each account's placement
    /// and follower lag, read from PostgreSQL.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Create (once) a demo account with realistic data, print its API key, and serve.
    Demo {
        #[command(flatten)]
        settings: SettingsArgs,
        /// How many contacts the demo account gets when it is created.
        #[arg(long, default_value_t = 3_000)]
        contacts: usize,
        /// Set up the demo data and exit instead of serving.
        #[arg(long)]
        no_serve: bool,
    },
    /// Measure the service: `bench ingest` loads contacts and events through the API;
    /// `bench paths` times every path a person takes, each beside its target; `bench
    /// send` delivers an e-mail campaign to a local SMTP sink and prints messages/s.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Manage panel users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage an account's API keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
}

/// `serve --cluster`: run as one node of a cluster (PostgreSQL and NATS JetStream).
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// NATS servers of one JetStream cluster, comma-separated (`nats://127.0.0.1:4222`).
    /// Without it segmentd is a single process holding every account.
    #[arg(long, env = "SEGMENTD_CLUSTER")]
    pub cluster: Option<String>,
    /// This node's id, unique in the cluster (default `node-PORT`).
    #[arg(long, env = "SEGMENTD_NODE_ID")]
    pub node_id: Option<String>,
    /// How the other nodes reach this one (default `http://` and the bound address).
    #[arg(long, env = "SEGMENTD_ADVERTISE")]
    pub advertise: Option<String>,
    /// A node that has not renewed its lease for this long loses its accounts.
    #[arg(long, env = "SEGMENTD_LEASE_MS", default_value_t = 3_000)]
    pub lease_ms: u64,
    /// Indexes per account: 2 (an owner and a warm follower) or 1.
    #[arg(long, env = "SEGMENTD_REPLICAS", default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub replicas: u8,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Nodes, leases, placements and follower lag per account.
    Status {
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key and print it (once: only its hash is kept).
    Create {
        /// The account's id or name.
        #[arg(long)]
        account: String,
        #[arg(long)]
        name: String,
        /// The key may manage the account's keys through the API.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// List the account's keys: id, name, first characters, created, last used, revoked.
    List {
        #[arg(long)]
        account: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Revoke a key by its id (from `key list`): it stops working at once.
    Revoke {
        #[arg(long)]
        account: String,
        #[arg(long)]
        id: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

/// The store the settings name, and the account named by id or name.
async fn account_store(
    settings: &SettingsArgs,
    account: &str,
) -> anyhow::Result<(
    std::sync::Arc<dyn segmentd_store::Store>,
    segmentd_store::Account,
)> {
    let settings = Settings::resolve(settings)?;
    if settings.uses_data_dir() {
        std::fs::create_dir_all(&settings.data_dir)?;
    }
    let store = segmentd_store::open(&settings.database_url()).await?;
    let account = crate::panel::session::find_account(store.as_ref(), account).await?;
    Ok((store, account))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a panel user of an account. The password comes from the first line of
    /// standard input, or SEGMENTD_PASSWORD; --password still works but shows it to
    /// every user of the machine (the process list), so it warns.
    Create {
        /// The account's id or name.
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: Option<String>,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Load contacts, then events, through the HTTP API into a fresh account of the
    /// configured store, in batches, and print contacts/s and events/s.
    Ingest {
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Clients sending batches at once.
        #[arg(long, default_value_t = 1)]
        clients: usize,
    },
    /// Load generated contacts and events through the HTTP API into a fresh account of
    /// the configured store, then time the panel's and the API's paths (builder, live
    /// count, lists, pages, search, explain, campaign preview and freeze), a restart, the
    /// server's memory per contact and reads beside a writer; print median and p99 of
    /// each beside its target. Use a fresh --data-dir: every account in it is loaded.
    Paths {
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long, default_value_t = 1_000_000)]
        contacts: usize,
        /// Events of the load per contact, on average (each for a random contact).
        #[arg(long, default_value_t = 10)]
        events_per_contact: usize,
        /// Contacts or events per request of the load (at most 10,000).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Clients sending the load's batches at once.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Timed requests per path.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// Seconds the readers run beside the writer in the mixed load.
        #[arg(long, default_value_t = 20)]
        mixed_seconds: u64,
    },
    /// Generate a CSV of --rows contacts (1 in 200 with a bad value), import it through
    /// `POST /api/v1/imports` into a fresh account, and print the time, rows/s and the
    /// process's peak memory; then post --events e-mail opens over the last 120 days and
    /// time a new segment's 90-day history computed from them.
    Import {
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// Load contacts with e-mail addresses through the HTTP API, save a segment of them
    /// all, send it an e-mail campaign (personalised, links tracked) over plain SMTP to
    /// an SMTP sink in this process that accepts at once, and print messages/s, the
    /// time to freeze, the sink's connections and the campaign's final counts. Fails
    /// unless the sink received exactly one message per contact. Without --data-dir or
    /// --database-url the data goes to a temporary directory, removed at the end; a
    /// given data directory should be fresh (a campaign left sending there would be
    /// resumed into the sink's count). The --smtp-* options are ignored: delivery goes
    /// to the sink.
    Send {
        #[command(flatten)]
        settings: SettingsArgs,
        #[arg(long, default_value_t = 100_000)]
        contacts: usize,
    },
    /// Start three cluster nodes of this binary on a PostgreSQL database (give a fresh
    /// one) and NATS, and print the forwarding overhead, the follower lag under an event
    /// load, and the failover time after SIGKILL.
    Cluster {
        #[arg(long, env = "SEGMENTD_DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats: String,
        #[arg(long, default_value_t = 50_000)]
        events_per_second: u64,
        /// Events per request of that load (four clients send them).
        #[arg(long, default_value_t = 1_000)]
        batch: u64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 3)]
        failovers: usize,
        #[arg(long, default_value_t = 3_000)]
        lease_ms: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and print its first API key.
    Create {
        #[arg(long)]
        name: String,
        /// An IANA time zone, e.g. Europe/Warsaw.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        #[command(flatten)]
        settings: SettingsArgs,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Key { command } => match command {
            KeyCommand::Create {
                account,
                name,
                admin,
                settings,
            } => {
                let (store, account) = account_store(&settings, &account).await?;
                let (key, about) =
                    crate::auth::issue_named_key(store.as_ref(), account.id, &name, admin).await?;
                println!(
                    "key {} ({}) created in account {}; it is shown this once:",
                    about.id, about.name, account.name
                );
                println!("API key: {key}");
            }
            KeyCommand::List { account, settings } => {
                let (store, account) = account_store(&settings, &account).await?;
                for k in store.api_keys(account.id).await? {
                    println!(
                        "{}  {:<24}  {:<10}  {}  created {}  last used {}  {}",
                        k.id,
                        k.name,
                        if k.prefix.is_empty() {
                            "sk_…"
                        } else {
                            &k.prefix
                        },
                        if k.admin { "admin" } else { "     " },
                        k.created_at,
                        k.last_used_at
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "never".into()),
                        k.revoked_at
                            .map(|t| format!("revoked {t}"))
                            .unwrap_or_default()
                    );
                }
            }
            KeyCommand::Revoke {
                account,
                id,
                settings,
            } => {
                let (store, account) = account_store(&settings, &account).await?;
                if !store
                    .revoke_api_key(account.id, &id, jiff::Timestamp::now())
                    .await?
                {
                    anyhow::bail!("no key {id} to revoke in account {}", account.name);
                }
                println!("key {id} revoked");
            }
        },
        Command::User {
            command:
                UserCommand::Create {
                    account,
                    email,
                    password,
                    settings,
                },
        } => {
            let settings = Settings::resolve(&settings)?;
            if settings.uses_data_dir() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let store = segmentd_store::open(&settings.database_url()).await?;
            let account = crate::panel::session::find_account(store.as_ref(), &account).await?;
            if password.is_some() {
                eprintln!(
                    "warning: --password is visible to every user of this machine in the process \
                     list; pipe the password on standard input or set SEGMENTD_PASSWORD instead"
                );
            }
            let password = match password.or_else(|| std::env::var("SEGMENTD_PASSWORD").ok()) {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let user = crate::panel::session::create_user(
                store.as_ref(),
                account.id,
                &email,
                &password,
                jiff::Timestamp::now(),
            )
            .await?;
            println!(
                "user {} created in account {} (id {})",
                user.email, account.name, account.id
            );
        }
        Command::Serve { settings, cluster } => {
            let settings = Settings::resolve(&settings)?;
            let app = match &cluster.cluster {
                None => Application::build(&settings).await?,
                Some(nats) => {
                    let nats: Vec<String> = nats
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if let Some(bad) = nats
                        .iter()
                        .find(|url| url.parse::<async_nats::ServerAddr>().is_err())
                    {
                        anyhow::bail!(
                            "--cluster: \"{bad}\" is not a NATS server URL (expected nats://host:port, several separated by commas)"
                        );
                    }
                    let node = cluster
                        .node_id
                        .clone()
                        .unwrap_or_else(|| format!("node-{}", settings.listen.port()));
                    Application::cluster_node(
                        &settings,
                        crate::cluster::ClusterSettings {
                            nats,
                            node,
                            advertise: cluster.advertise.clone(),
                            lease: std::time::Duration::from_millis(cluster.lease_ms.max(300)),
                            replicas: usize::from(cluster.replicas),
                        },
                    )
                    .await?
                }
            };
            tracing::info!(port = app.port(), "segmentd listening");
            println!(
                "segmentd listening on http://{}:{}",
                settings.listen.ip(),
                app.port()
            );
            app.run_until_signalled().await?;
        }
        Command::Cluster {
            command: ClusterCommand::Status { settings },
        } => {
            let settings = Settings::resolve(&settings)?;
            let (_, control) =
                segmentd_store::open_cluster(&settings.database_url(), "status").await?;
            print!("{}", crate::cluster::status::print(control.as_ref()).await?);
        }
        Command::Demo {
            settings,
            contacts,
            no_serve,
        } => {
            let settings = Settings::resolve(&settings)?;
            let app = Application::build(&settings).await?;
            let store = app.state().store.clone();
            let now = app.state().clock.now();
            let (account, created) = ensure_demo(app.state(), contacts, now).await?;
            let key = issue_api_key(store.as_ref(), account.id).await?;
            if settings.uses_data_dir() {
                let path = settings.data_dir.join("demo-api-key.txt");
                std::fs::write(&path, format!("{key}\n"))?;
                println!("API key also written to {}", path.display());
            }
            let url = format!("http://{}:{}", settings.listen.ip(), app.port());
            println!(
                "demo account \"{}\" {} (time zone {})",
                account.name,
                if created { "created" } else { "found" },
                account.time_zone
            );
            println!("API key: {key}");
            println!("API:     {url}/api/v1  (OpenAPI: {url}/api/v1/openapi.json)");
            let login =
                crate::panel::session::ensure_demo_user(store.as_ref(), account.id, now).await?;
            println!(
                "Panel:   {url}/panel  (sign in as {} / {})",
                login.email, login.password
            );
            if settings.uses_data_dir() {
                let path = settings.data_dir.join("demo-panel-login.txt");
                std::fs::write(
                    &path,
                    format!(
                        "{url}/panel\nemail: {}\npassword: {}\n",
                        login.email, login.password
                    ),
                )?;
                println!("Panel sign-in also written to {}", path.display());
            }
            if !no_serve {
                app.run_until_signalled().await?;
            } else {
                app.state()
                    .index
                    .save_snapshots(crate::index::SaveWhen::Changed)
                    .await?;
            }
        }
        Command::Bench {
            command:
                BenchCommand::Ingest {
                    settings,
                    contacts,
                    events,
                    batch,
                    clients,
                },
        } => {
            let mut settings = Settings::resolve(&settings)?;
            settings.listen = "127.0.0.1:0".parse()?;
            let bench = crate::bench::IngestBench {
                contacts,
                events,
                batch: batch.clamp(1, 10_000),
                clients: clients.clamp(1, 64),
            };
            crate::bench::run_ingest(&settings, &bench).await?.print();
        }
        Command::Bench {
            command:
                BenchCommand::Paths {
                    settings,
                    contacts,
                    events_per_contact,
                    batch,
                    clients,
                    samples,
                    mixed_seconds,
                },
        } => {
            let settings = Settings::resolve(&settings)?;
            let bench = crate::bench::PathsBench {
                contacts,
                events_per_contact,
                batch: batch.clamp(1, 10_000),
                clients: clients.clamp(1, 64),
                samples: samples.clamp(1, 100_000),
                mixed: std::time::Duration::from_secs(mixed_seconds.clamp(1, 3_600)),
            };
            print!(
                "{}",
                crate::bench::run_paths(&settings, &bench).await?.render()
            );
        }
        Command::Bench {
            command:
                BenchCommand::Cluster {
                    database_url,
                    nats,
                    events_per_second,
                    batch,
                    seconds,
                    failovers,
                    lease_ms,
                },
        } => {
            let bench = crate::bench::cluster::ClusterBench {
                database_url,
                nats,
                events_per_second,
                batch,
                seconds,
                failovers,
                lease_ms,
            };
            print!("{}", crate::bench::cluster::run_cluster(&bench).await?);
        }
        Command::Bench {
            command:
                BenchCommand::Import {
                    settings,
                    rows,
                    events,
                },
        } => {
            let mut settings = Settings::resolve(&settings)?;
            settings.listen = "127.0.0.1:0".parse()?;
            if settings.uses_data_dir() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let bench = crate::bench::import::ImportBench { rows, events };
            crate::bench::import::run_import(&settings, &bench).await?;
        }
        Command::Bench {
            command: BenchCommand::Send { settings, contacts },
        } => {
            let scratch = (settings.data_dir.is_none()
                && settings.database_url.is_none()
                && settings.config.is_none())
            .then(crate::bench::send::scratch_dir);
            let mut settings = Settings::resolve(&settings)?;
            if let Some(dir) = &scratch {
                settings.data_dir = dir.clone();
            }
            let report =
                crate::bench::run_send(&settings, &crate::bench::SendBench { contacts }).await;
            if let Some(dir) = &scratch {
                let _ = std::fs::remove_dir_all(dir);
            }
            let report = report?;
            print!("{}", report.render());
            anyhow::ensure!(report.ok, "bench send failed: {}", report.verdict);
        }
        Command::Account {
            command:
                AccountCommand::Create {
                    name,
                    timezone,
                    settings,
                },
        } => {
            if TimeZone::get(&timezone).is_err() {
                anyhow::bail!(
                    "unknown time zone {timezone:?}: expected an IANA name such as Europe/Warsaw"
                );
            }
            if name.trim().is_empty() {
                anyhow::bail!("the account name must not be empty");
            }
            let settings = Settings::resolve(&settings)?;
            if settings.uses_data_dir() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let store = segmentd_store::open(&settings.database_url()).await?;
            let account = store.create_account(name.trim(), &timezone).await?;
            let key = issue_api_key(store.as_ref(), account.id).await?;
            println!("account {} created (id {})", account.name, account.id);
            println!("API key: {key}");
        }
    }
    Ok(())
}
