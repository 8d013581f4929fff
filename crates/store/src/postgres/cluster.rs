//! [`ClusterStore`] on PostgreSQL (migration 0013).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

use super::{PostgresStore, field_types_in};
use crate::cluster::*;
use crate::common::*;
use crate::{AccountId, Result, StoreError, StoredEvent};

/// The advisory lock the coordinator holds for a transaction ("sgmt").
const COORDINATOR_LOCK: i64 = 0x7367_6d74;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn kind_of(text: &str) -> Result<LogKind> {
    Ok(match text {
        "contacts" => LogKind::Contacts,
        "events" => LogKind::Events,
        "deleted" => LogKind::Deleted,
        "definitions" => LogKind::Definitions,
        other => return Err(StoreError::Corrupt(format!("log kind {other:?}"))),
    })
}

#[async_trait]
impl ClusterStore for PostgresStore {
    async fn join(&self, node: &str, address: &str, lease: Duration) -> Result<()> {
        sqlx::query(
            "INSERT INTO cluster_nodes (id, address, lease_until) \
             VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond') \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, \
                 lease_until = excluded.lease_until, joined_at = clock_timestamp()",
        )
        .bind(node)
        .bind(address)
        .bind(millis(lease))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn renew(&self, node: &str, lease: Duration) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE cluster_nodes SET \
                 joined_at = CASE WHEN lease_until < clock_timestamp() \
                                  THEN clock_timestamp() ELSE joined_at END, \
                 lease_until = clock_timestamp() + $2 * interval '1 millisecond' \
             WHERE id = $1",
        )
        .bind(node)
        .bind(millis(lease))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    async fn leave(&self, node: &str) -> Result<()> {
        sqlx::query("UPDATE cluster_nodes SET lease_until = clock_timestamp() WHERE id = $1")
            .bind(node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let rows = sqlx::query(NODES).fetch_all(&self.pool).await?;
        rows.iter().map(node_from_row).collect()
    }

    async fn placements(&self) -> Result<Vec<Placement>> {
        let rows = sqlx::query(PLACEMENTS).fetch_all(&self.pool).await?;
        rows.iter().map(placement_from_row).collect()
    }

    async fn coordinate(&self, plan: Plan<'_>) -> Result<Option<usize>> {
        let mut tx = self.pool.begin().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(COORDINATOR_LOCK)
            .fetch_one(&mut *tx)
            .await?;
        if !got {
            return Ok(None);
        }
        // A move waits for the account's writes in flight; a node stopped inside one is
        // cut off by its session's idle-in-transaction timeout. Never wait longer than
        // a tick or two: the next tick tries again.
        sqlx::query("SET LOCAL lock_timeout = '3s'")
            .execute(&mut *tx)
            .await?;
        let nodes = sqlx::query(NODES).fetch_all(&mut *tx).await?;
        let placements = sqlx::query(PLACEMENTS).fetch_all(&mut *tx).await?;
        let accounts: Vec<AccountId> = sqlx::query_scalar("SELECT id FROM accounts ORDER BY id")
            .fetch_all(&mut *tx)
            .await?;
        let ready = sqlx::query(
            "SELECT account_id, node FROM replica_progress \
             WHERE at > clock_timestamp() - interval '3 seconds'",
        )
        .fetch_all(&mut *tx)
        .await?;
        let view = ClusterView {
            nodes: nodes.iter().map(node_from_row).collect::<Result<_>>()?,
            placements: placements
                .iter()
                .map(placement_from_row)
                .collect::<Result<_>>()?,
            accounts,
            ready: ready
                .iter()
                .map(|r| Ok((r.try_get("account_id")?, r.try_get("node")?)))
                .collect::<Result<_>>()?,
        };
        let mut applied = 0;
        for change in plan(&view) {
            let n = match &change {
                PlacementChange::Place {
                    account,
                    owner,
                    follower,
                } => sqlx::query(
                    "INSERT INTO placements (account_id, owner, follower) VALUES ($1, $2, $3) \
                     ON CONFLICT (account_id) DO NOTHING",
                )
                .bind(account)
                .bind(owner)
                .bind(follower)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                PlacementChange::Move {
                    account,
                    epoch,
                    owner,
                    follower,
                } => sqlx::query(
                    "UPDATE placements SET owner = $3, follower = $4, epoch = epoch + 1, \
                         handoff_seq = write_seq \
                     WHERE account_id = $1 AND epoch = $2",
                )
                .bind(account)
                .bind(epoch)
                .bind(owner)
                .bind(follower)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                PlacementChange::Follow {
                    account,
                    epoch,
                    follower,
                } => sqlx::query(
                    "UPDATE placements SET follower = $3 WHERE account_id = $1 AND epoch = $2",
                )
                .bind(account)
                .bind(epoch)
                .bind(follower)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            applied += n as usize;
        }
        tx.commit().await?;
        Ok(Some(applied))
    }

    async fn log_since(&self, account: AccountId, after: i64, limit: u32) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT seq, kind, ids FROM cluster_log \
             WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(account)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(LogEntry {
                    seq: r.try_get("seq")?,
                    kind: kind_of(r.try_get("kind")?)?,
                    ids: r.try_get("ids")?,
                })
            })
            .collect()
    }

    async fn events_by_ids(&self, account: AccountId, ids: &[i64]) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1 AND id = ANY($2) ORDER BY id"
        )))
        .bind(account)
        .bind(ids)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    async fn load(&self, account: AccountId) -> Result<Loaded> {
        let mut tx = self.pool.begin().await?;
        // One snapshot of the database: the rows are exactly those of the writes up to
        // the sequence read with them.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let seq: Option<i64> =
            sqlx::query_scalar("SELECT write_seq FROM placements WHERE account_id = $1")
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?;
        let types = field_types_in(&mut tx, account).await?;
        let contacts: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 ORDER BY id"
        )))
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        let events: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1 ORDER BY id"
        )))
        .bind(account)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Loaded {
            seq: seq.unwrap_or(0),
            contacts: contacts
                .into_iter()
                .map(|r| r.decode(&types))
                .collect::<Result<_>>()?,
            events: events
                .into_iter()
                .map(EventRow::decode)
                .collect::<Result<_>>()?,
        })
    }

    async fn write_seqs(&self, accounts: &[AccountId]) -> Result<Vec<(AccountId, i64)>> {
        let rows = sqlx::query(
            "SELECT account_id, write_seq FROM placements WHERE account_id = ANY($1) \
             ORDER BY account_id",
        )
        .bind(accounts)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("account_id")?, r.try_get("write_seq")?)))
            .collect()
    }

    async fn owned_write_seq(
        &self,
        account: AccountId,
        node: &str,
        epoch: i64,
    ) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT write_seq FROM placements WHERE account_id = $1 AND owner = $2 AND epoch = $3",
        )
        .bind(account)
        .bind(node)
        .bind(epoch)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn report_progress(&self, node: &str, applied: &[(AccountId, i64)]) -> Result<()> {
        if applied.is_empty() {
            return Ok(());
        }
        let (accounts, seqs): (Vec<i64>, Vec<i64>) = applied.iter().copied().unzip();
        sqlx::query(
            "INSERT INTO replica_progress (account_id, node, applied_seq, at) \
             SELECT u.account, $1, u.seq, clock_timestamp() \
             FROM UNNEST($2::bigint[], $3::bigint[]) AS u (account, seq) \
             WHERE EXISTS (SELECT 1 FROM accounts WHERE id = u.account) \
             ON CONFLICT (account_id, node) DO UPDATE SET applied_seq = excluded.applied_seq, \
                 at = excluded.at",
        )
        .bind(node)
        .bind(&accounts)
        .bind(&seqs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

const NODES: &str = "SELECT id, address, lease_until > clock_timestamp() AS alive, \
         (extract(epoch FROM clock_timestamp() - joined_at) * 1000)::bigint AS alive_for_ms \
     FROM cluster_nodes ORDER BY id";

const PLACEMENTS: &str = "SELECT p.account_id, p.owner, p.follower, p.epoch, p.write_seq, \
         p.handoff_seq, r.applied_seq AS follower_seq \
     FROM placements p \
     LEFT JOIN replica_progress r ON r.account_id = p.account_id AND r.node = p.follower \
     ORDER BY p.account_id";

fn node_from_row(row: &sqlx::postgres::PgRow) -> Result<NodeRow> {
    Ok(NodeRow {
        id: row.try_get("id")?,
        address: row.try_get("address")?,
        alive: row.try_get("alive")?,
        alive_for_ms: row.try_get("alive_for_ms")?,
    })
}

fn placement_from_row(row: &sqlx::postgres::PgRow) -> Result<Placement> {
    Ok(Placement {
        account: row.try_get("account_id")?,
        owner: row.try_get("owner")?,
        follower: row.try_get("follower")?,
        epoch: row.try_get("epoch")?,
        write_seq: row.try_get("write_seq")?,
        handoff_seq: row.try_get("handoff_seq")?,
        follower_seq: row.try_get("follower_seq")?,
    })
}
