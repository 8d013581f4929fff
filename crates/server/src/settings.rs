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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
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
