//! Test support shared by the store's conformance suite and the server's API tests:
//! run a scenario on a fresh store of one backend. Enabled by the `testing` feature.
//!
//! SQLite: a fresh database file per run in the temp directory.
//! PostgreSQL: a throwaway database per run on the server named by
//! `SEGMENTD_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped afterwards. An unreachable server fails the run when `CI` is set and is
//! reported as `SKIPPED postgres: …` otherwise.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::{Store, open};

/// What a scenario gets: the store and the URL it was opened from (to reopen it).
#[derive(Clone)]
pub struct Ctx {
    pub store: Arc<dyn Store>,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

pub fn unique_name() -> String {
    format!(
        "segmentd_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes past the test harness's output capture, so the line is seen even when the
/// test passes.
pub fn visible(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn postgres_admin_url() -> String {
    std::env::var("SEGMENTD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let server = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

pub async fn run<F, Fut>(backend: Backend, test: &str, scenario: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("{}.db", unique_name()));
            let url = format!("sqlite://{}", path.display());
            let store = open(&url).await.unwrap();
            assert_eq!(store.backend(), "sqlite");
            let outcome = tokio::spawn(scenario(Ctx { store, url })).await;
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
            if let Err(e) = outcome {
                std::panic::resume_unwind(e.into_panic());
            }
        }
        Backend::Postgres => {
            let admin_url = postgres_admin_url();
            let admin =
                tokio::time::timeout(Duration::from_secs(5), PgConnection::connect(&admin_url))
                    .await;
            let mut admin = match admin {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return postgres_unreachable(test, &admin_url, &e.to_string()),
                Err(_) => return postgres_unreachable(test, &admin_url, "connection timed out"),
            };
            let db = unique_name();
            for sql in [
                format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                format!("CREATE DATABASE {db}"),
            ] {
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut admin)
                    .await
                    .unwrap();
            }
            let url = with_database(&admin_url, &db);
            let outcome = match open(&url).await {
                Ok(store) => {
                    assert_eq!(store.backend(), "postgres");
                    Ok(tokio::spawn(scenario(Ctx {
                        store,
                        url: url.clone(),
                    }))
                    .await)
                }
                Err(e) => Err(e),
            };
            // Best effort: a failed drop leaves a database named after this process.
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
            match outcome {
                Err(e) => panic!("opening {url}: {e}"),
                Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
                Ok(Ok(())) => {}
            }
        }
    }
}

fn postgres_unreachable(test: &str, url: &str, why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("PostgreSQL at {url} is unreachable and CI is set: {why}");
    }
    visible(&format!(
        "SKIPPED postgres: {test}: server at {url} unreachable: {why}"
    ));
}
