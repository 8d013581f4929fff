//! The SQLite backend: one database file, WAL journal, `synchronous=FULL`.
//!
//! Writes that read before they write start with `BEGIN IMMEDIATE`, so concurrent writers
//! queue on the busy timeout instead of failing when a read lock cannot be upgraded.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use segmentd_rules::SegmentId;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder, Row, Sqlite};

use crate::campaign_rows::*;
use crate::common::*;
use crate::*;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite allows at most 32,766 bound values in one statement.
const MAX_BINDS: usize = 32_000;

/// Events are indexed by arrival bucket, `id >> BUCKET_BITS`, then contact (migration
/// 0005 says why); keep in step with the migration's index expression.
const BUCKET_BITS: u32 = 16;

/// `SELECT columns` of one contact's events (binds: contact id, account id), walking the
/// buckets from the oldest stored event's to the newest's with one index seek each.
/// CROSS JOIN keeps the buckets as the outer loop.
fn select_contact_events(columns: &str) -> String {
    format!(
        "WITH RECURSIVE buckets(b) AS ( \
         SELECT (SELECT coalesce(min(id), 0) >> {BUCKET_BITS} FROM events) \
         UNION ALL SELECT b + 1 FROM buckets \
         WHERE b < (SELECT coalesce(max(id), 0) >> {BUCKET_BITS} FROM events)) \
         SELECT {columns} FROM buckets CROSS JOIN events e \
         ON (e.id >> {BUCKET_BITS}) = buckets.b AND e.contact_id = ? WHERE e.account_id = ?"
    )
}

/// A page of the contacts changed since a revision (binds: account, revision, after id,
/// limit). The page's ids come from the (account_id, rev) index alone, whose entries
/// hold the id, and only the page's rows are read. `INDEXED BY`: without statistics the
/// planner would rather walk the whole table in id order to skip the sort.
fn contacts_changed_sql() -> String {
    format!(
        "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id IN ( \
             SELECT id FROM contacts INDEXED BY contacts_rev \
             WHERE account_id = ?1 AND rev > ?2 AND id > ?3 ORDER BY id LIMIT ?4) \
         ORDER BY id"
    )
}

/// `columns` of the account's contacts whose ids are in a JSON array (binds: account,
/// array), looked up by rowid. `NOT INDEXED` (the rowid is still used): the planner
/// would otherwise walk every contact of the account through an index on account_id
/// and test each against the list.
fn contacts_by_id_sql(columns: &str) -> String {
    format!(
        "SELECT {columns} FROM contacts NOT INDEXED \
         WHERE account_id = ? AND id IN (SELECT value FROM json_each(?))"
    )
}

/// A page of an account's events after an id (binds: id, account, limit): a range of
/// the table's own key, in key order. `NOT INDEXED` (the rowid is still used): the
/// planner would otherwise pick the (account_id, client_id) index and sort every event
/// of the account for each page.
fn events_since_sql() -> String {
    format!(
        "SELECT id, {EVENT_COLUMNS} FROM events NOT INDEXED \
         WHERE id > ? AND account_id = ? ORDER BY id LIMIT ?"
    )
}

pub struct SqliteStore {
    /// For reads: several connections, which WAL lets read while one writes.
    pool: SqlitePool,
    /// For every write: one connection. SQLite takes one writer at a time anyway; queuing
    /// writers here wakes the next one as soon as the last commits, where a second
    /// connection would find the database locked and sleep in SQLite's busy handler
    /// (milliseconds to a second under concurrent ingest, measured).
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) and migrates the database at `url`
    /// (`sqlite://PATH`, `sqlite:PATH` or `sqlite::memory:`).
    pub async fn open(url: &str) -> Result<Self> {
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // SQLite's default page cache is 2 MB: past a few hundred thousand events every
            // index insert would go to the file. 128 MB a connection, taken only as used.
            .pragma("cache_size", "-131072")
            .pragma("temp_store", "memory");
        if in_memory {
            // Every connection to `:memory:` has its own database: keep exactly one, forever,
            // for reads and writes alike.
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await?;
            MIGRATOR.run(&pool).await?;
            return Ok(SqliteStore {
                writer: pool.clone(),
                pool,
            });
        }
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&writer).await?;
        // Readers keep a small cache of their own: they share the file's pages through
        // the OS, and eight connections of 128 MB each would hold a gigabyte for nothing.
        // The writer's large cache is what keeps index inserts off the disk.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.pragma("cache_size", "-8192"))
            .await?;
        Ok(SqliteStore { pool, writer })
    }

    /// The account's contacts whose `column` is one of `values`, in no particular order.
    /// One JSON array bind instead of one bind per value: no bind limit to chunk around.
    async fn contacts_in<T: serde::Serialize>(
        &self,
        account: AccountId,
        column: &'static str,
        values: &[T],
    ) -> Result<Vec<Contact>> {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let types = self.field_types(account).await?;
        let list = to_json_text(values)?;
        let sql = if column == "id" {
            contacts_by_id_sql(CONTACT_COLUMNS)
        } else {
            format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts \
                 WHERE account_id = ? AND {column} IN (SELECT value FROM json_each(?))"
            )
        };
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(account)
            .bind(list)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    /// What a guarded campaign change that touched `changed` rows did.
    async fn transition(
        &self,
        account: AccountId,
        id: CampaignId,
        changed: u64,
    ) -> Result<Transition> {
        let campaign = self.campaign(account, id).await?;
        Ok(match (changed, campaign) {
            (0, None) => Transition::NotFound,
            (0, Some(c)) => Transition::Refused(c.status),
            (_, c) => Transition::Done(c),
        })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn field_types(&self, account: AccountId) -> Result<FieldTypes> {
        Ok(field_types(&self.fields(account).await?))
    }
}

/// Adds `n` to the campaign's count of `kind` for the hour of `now_ms`.
async fn add_activity(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    account: AccountId,
    id: CampaignId,
    kind: &str,
    n: i64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO campaign_activity (campaign_id, account_id, hour, kind, n) \
         VALUES (?, ?, ?, ?, ?) \
         ON CONFLICT (campaign_id, kind, hour) DO UPDATE SET n = campaign_activity.n + excluded.n",
    )
    .bind(id)
    .bind(account)
    .bind(hour_of(now_ms))
    .bind(kind)
    .bind(n)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The account's next contact revision, taken in the write transaction (migration 0006):
/// one writer, so revisions follow the commit order.
async fn next_contact_rev(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    account: AccountId,
) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "UPDATE accounts SET contact_rev = contact_rev + 1 WHERE id = ? RETURNING contact_rev",
    )
    .bind(account)
    .fetch_optional(&mut **tx)
    .await?
    // No such account: nothing of it is stored, and nothing will be written either.
    .unwrap_or(0))
}

/// How many contacts the account has ever deleted (see `insert_events`).
async fn contact_deletions(conn: &mut SqliteConnection, account: AccountId) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT contact_deletions FROM accounts WHERE id = ?")
            .bind(account)
            .fetch_optional(conn)
            .await?
            .unwrap_or(0),
    )
}

/// The stored id of each event's contact, in batch order; `UnknownContacts` names the
/// items whose contact does not exist. `names` are the batch's distinct external ids.
/// They travel as one JSON array bind: no per-value argument to build and copy, and a
/// statement text the connection keeps prepared.
async fn resolve_contacts(
    conn: &mut SqliteConnection,
    account: AccountId,
    names: &[&str],
    batch: &[NewEvent],
) -> Result<Vec<ContactId>> {
    // One row back, the ids as a JSON array in the order of `names` (null where there is
    // no such contact): rows come from sqlx's worker thread one message at a time, which
    // cost more than the lookups themselves.
    let found: String = sqlx::query_scalar(
        "SELECT json_group_array(c.id ORDER BY j.key) FROM json_each(?) j \
         LEFT JOIN contacts c ON c.account_id = ? AND c.external_id = j.value",
    )
    .bind(to_json_text(names)?)
    .bind(account)
    .fetch_one(conn)
    .await?;
    let found: Vec<Option<i64>> =
        serde_json::from_str(&found).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let ids: HashMap<&str, i64> = names
        .iter()
        .zip(found)
        .filter_map(|(name, id)| Some((*name, id?)))
        .collect();
    let resolved: Vec<Option<i64>> = batch
        .iter()
        .map(|e| ids.get(e.contact.as_str()).copied())
        .collect();
    let unknown: Vec<usize> = resolved
        .iter()
        .enumerate()
        .filter(|(_, id)| id.is_none())
        .map(|(i, _)| i)
        .collect();
    if unknown.is_empty() {
        Ok(resolved.into_iter().flatten().collect())
    } else {
        Err(StoreError::UnknownContacts(unknown))
    }
}

/// The account's field types, read inside a transaction.
async fn field_types_in(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    account: AccountId,
) -> Result<FieldTypes> {
    let rows = sqlx::query("SELECT key, type FROM fields WHERE account_id = ?")
        .bind(account)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("key")?, parse_field_type(row.try_get("type")?)?)))
        .collect()
}

fn account_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Account> {
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
    })
}

/// Whether a field key can be written inside a JSON path `$."key"` as it is.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_account(&self, name: &str, time_zone: &str) -> Result<Account> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, time_zone, created_at) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(name)
        .bind(time_zone)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?;
        Ok(Account {
            id,
            name: name.to_owned(),
            time_zone: time_zone.to_owned(),
        })
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT id, name, time_zone FROM accounts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn accounts(&self) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT id, name, time_zone FROM accounts ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(account_from_row).collect()
    }

    async fn add_api_key(&self, account: AccountId, key_hash: &str) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(key_hash)
            .bind(account)
            .bind(now_ms())
            .execute(&self.writer)
            .await
            .map_err(|e| unique_to_conflict(e, || "api key".to_owned()))?;
        Ok(())
    }

    async fn account_by_api_key(&self, key_hash: &str) -> Result<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.time_zone FROM api_keys k \
             JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = ? AND k.revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from_row).transpose()
    }

    async fn create_api_key(
        &self,
        account: AccountId,
        key: &NewApiKey,
        now: Timestamp,
    ) -> Result<ApiKey> {
        sqlx::query(
            "INSERT INTO api_keys (key_hash, account_id, created_at, name, prefix, admin) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&key.key_hash)
        .bind(account)
        .bind(to_ms(now))
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key.admin)
        .execute(&self.writer)
        .await
        .map_err(|e| unique_to_conflict(e, || "api key".to_owned()))?;
        Ok(ApiKey {
            id: key.key_hash.chars().take(16).collect(),
            account_id: account,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            admin: key.admin,
            created_at: from_ms(to_ms(now))?,
            last_used_at: None,
            revoked_at: None,
        })
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<(Account, ApiKey)>> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT a.id, a.name, a.time_zone, {API_KEY_COLUMNS} FROM api_keys k \
             JOIN accounts a ON a.id = k.account_id \
             WHERE k.key_hash = ?1 AND k.revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((account_from_row(&r)?, api_key_from_row(&r)?)))
            .transpose()
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.account_id = ?1 \
             ORDER BY k.created_at, k.key_hash"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_key_from_row).collect()
    }

    async fn revoke_api_key(&self, account: AccountId, id: &str, now: Timestamp) -> Result<bool> {
        // Ids are 16 hex digits; anything else names no key (and never a LIKE pattern).
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_at = ?1 \
             WHERE account_id = ?2 AND key_hash LIKE ?3 AND revoked_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(account)
        .bind(format!("{}%", id.to_ascii_lowercase()))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn touch_api_key(&self, key_hash: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = ?1 WHERE key_hash = ?2")
            .bind(to_ms(now))
            .bind(key_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn create_field(&self, account: AccountId, field: &FieldDef) -> Result<()> {
        sqlx::query("INSERT INTO fields (account_id, key, label, type) VALUES (?, ?, ?, ?)")
            .bind(account)
            .bind(&field.key)
            .bind(&field.label)
            .bind(field.field_type.as_str())
            .execute(&self.writer)
            .await
            .map_err(|e| unique_to_conflict(e, || field_conflict(&field.key)))?;
        Ok(())
    }

    async fn fields(&self, account: AccountId) -> Result<Vec<FieldDef>> {
        let rows =
            sqlx::query("SELECT key, label, type FROM fields WHERE account_id = ? ORDER BY key")
                .bind(account)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| {
                Ok(FieldDef {
                    key: row.try_get("key")?,
                    label: row.try_get("label")?,
                    field_type: parse_field_type(row.try_get("type")?)?,
                })
            })
            .collect()
    }

    async fn delete_field(&self, account: AccountId, key: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query("DELETE FROM fields WHERE account_id = ? AND key = ?")
            .bind(account)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        // The contacts that lose a value get a new revision: a replay reads them again.
        let rev = next_contact_rev(&mut tx, account).await?;
        if plain_key(key) {
            let path = format!("$.\"{key}\"");
            sqlx::query(
                "UPDATE contacts SET fields = json_remove(fields, ?1), rev = ?3 \
                 WHERE account_id = ?2 AND json_type(fields, ?1) IS NOT NULL",
            )
            .bind(&path)
            .bind(account)
            .bind(rev)
            .execute(&mut *tx)
            .await?;
        } else {
            // A key that a JSON path cannot spell: rewrite the affected rows here.
            let rows = sqlx::query("SELECT id, fields FROM contacts WHERE account_id = ?")
                .bind(account)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let id: i64 = row.try_get("id")?;
                if let Some(text) = without_key(id, row.try_get("fields")?, key)? {
                    sqlx::query(
                        "UPDATE contacts SET fields = ?, rev = ? WHERE account_id = ? AND id = ?",
                    )
                    .bind(text)
                    .bind(rev)
                    .bind(account)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn upsert_contacts(&self, account: AccountId, batch: &[ContactUpsert]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin_write().await?;

        let ids = distinct(batch.iter().map(|c| c.external_id.as_str()));
        let mut existing = HashMap::new();
        for chunk in ids.chunks(MAX_BINDS - 1) {
            let mut qb = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = {account} AND external_id IN ("
            ));
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            qb.push(")");
            let rows: Vec<ContactRow> = qb
                .build_query_as()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            for row in rows {
                let state = ContactState::from_row(&row)?;
                existing.insert(row.external_id, state);
            }
        }

        let known = field_types_in(&mut tx, account).await?;
        let merged = merge_batch(batch, existing, &known);
        let now = now_ms();
        let rev = next_contact_rev(&mut tx, account).await?;
        // Seven bound values a row; account, time and revision are written as literals.
        for chunk in merged.chunks(MAX_BINDS / 7) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO contacts (account_id, created_at, updated_at, rev, external_id, email, \
                 phone, email_status, sms_status, push_tokens, fields) ",
            );
            qb.push_values(chunk, |mut row, (external_id, state)| {
                row.push(account.to_string())
                    .push(now.to_string())
                    .push(now.to_string())
                    .push(rev.to_string())
                    .push_bind(*external_id)
                    .push_bind(state.email.as_deref())
                    .push_bind(state.phone.as_deref())
                    .push_bind(state.email_status.map(EmailStatus::as_str))
                    .push_bind(state.sms_status.map(SmsStatus::as_str))
                    .push_bind(state.push_tokens_json())
                    .push_bind(state.fields_json());
            });
            qb.push(
                " ON CONFLICT (account_id, external_id) DO UPDATE SET \
                 email = excluded.email, phone = excluded.phone, \
                 email_status = excluded.email_status, sms_status = excluded.sms_status, \
                 push_tokens = excluded.push_tokens, fields = excluded.fields, \
                 updated_at = excluded.updated_at, rev = excluded.rev",
            );
            qb.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(batch.len() as u64)
    }

    async fn contact(&self, account: AccountId, external_id: &str) -> Result<Option<Contact>> {
        let row: Option<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = ? AND external_id = ?"
        )))
        .bind(account)
        .bind(external_id)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(row.decode(&self.field_types(account).await?)?)),
        }
    }

    async fn contacts_page(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let types = self.field_types(account).await?;
        let rows: Vec<ContactRow> = match after {
            Some(after) => sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = ? AND external_id > ? \
                     ORDER BY external_id LIMIT ?"
            )))
            .bind(account)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = ? \
                     ORDER BY external_id LIMIT ?"
                )))
                .bind(account)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    async fn all_contacts(&self, account: AccountId) -> Result<Vec<Contact>> {
        let types = self.field_types(account).await?;
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = ? ORDER BY external_id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    async fn delete_contact(&self, account: AccountId, external_id: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM contacts WHERE account_id = ? AND external_id = ?")
                .bind(account)
                .bind(external_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(id) = id else {
            return Ok(false);
        };
        // Events carry no foreign key (migration 0005), so they are deleted here; the
        // rest of the contact's rows go by ON DELETE CASCADE.
        sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM events WHERE id IN ({})",
            select_contact_events("e.id")
        )))
        .bind(id)
        .bind(account)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM contacts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE accounts SET contact_deletions = contact_deletions + 1 WHERE id = ?")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        // The tombstone keeps the largest event id left: the ids above it can be given
        // again (migration 0006 says how `events_since` stays exact).
        sqlx::query(
            "INSERT INTO contact_tombstones (account_id, contact_id, events_max) \
             VALUES (?, ?, (SELECT coalesce(max(id), 0) FROM events))",
        )
        .bind(account)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn insert_events(&self, account: AccountId, batch: &[NewEvent]) -> Result<InsertOutcome> {
        if batch.is_empty() {
            return Ok(InsertOutcome::default());
        }
        // Contacts are looked up on a read connection, outside the one writer, so that
        // the lookup of one batch overlaps the insert of another. Ids never change, so
        // what was found stays true unless a contact was deleted in between: the
        // account's deletion count, read in the same snapshot and again under the write
        // lock, tells, and only then is the lookup redone inside the write transaction.
        let names = distinct(batch.iter().map(|e| e.contact.as_str()));
        let (deletions, mut contacts) = {
            let mut read = self.pool.begin().await?;
            let deletions = contact_deletions(&mut read, account).await?;
            let contacts = resolve_contacts(&mut read, account, &names, batch).await?;
            read.commit().await?;
            (deletions, contacts)
        };
        let mut tx = self.begin_write().await?;
        if contact_deletions(&mut tx, account).await? != deletions {
            contacts = resolve_contacts(&mut tx, account, &names, batch).await?;
        }

        // Rows go in batch order (ORDER BY key), so ids keep the arrival order and, of two
        // items with the same client id, the first is the one stored. `WHERE true` keeps
        // SQLite from reading ON CONFLICT as part of the SELECT's join.
        let rows: Vec<_> = batch
            .iter()
            .zip(&contacts)
            .map(|(event, contact)| {
                let columns = encode_event(&event.body);
                (
                    contact,
                    columns.kind,
                    to_ms(event.timestamp),
                    columns.name,
                    columns.campaign,
                    columns.url,
                    columns.properties,
                    event.client_id.as_deref(),
                )
            })
            .collect();
        let accepted = sqlx::query(
            "INSERT INTO events (account_id, contact_id, kind, ts, name, campaign, url, properties, client_id) \
             SELECT ?, r.value ->> 0, r.value ->> 1, r.value ->> 2, r.value ->> 3, r.value ->> 4, \
                 r.value ->> 5, r.value ->> 6, r.value ->> 7 \
             FROM json_each(?) r WHERE true ORDER BY r.key \
             ON CONFLICT (account_id, client_id) DO NOTHING",
        )
        .bind(account)
        .bind(to_json_text(&rows)?)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(InsertOutcome {
            accepted,
            duplicates: batch.len() as u64 - accepted,
            contacts,
        })
    }

    async fn all_events(&self, account: AccountId) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = ? ORDER BY id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    async fn contact_events(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{} ORDER BY e.id",
            select_contact_events(&prefixed_event_columns("e"))
        )))
        .bind(contact)
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    async fn watermark(&self, account: AccountId) -> Result<Watermark> {
        // One statement, so one snapshot: the event id and the deletion log agree.
        let (contact_rev, tombstone_seq, event_id, change_seq): (Option<i64>, i64, i64, i64) =
            sqlx::query_as(
                "SELECT (SELECT contact_rev FROM accounts WHERE id = ?), \
                        (SELECT coalesce(max(seq), 0) FROM contact_tombstones), \
                        (SELECT coalesce(max(id), 0) FROM events), \
                        (SELECT coalesce(max(seq), 0) FROM membership_changes)",
            )
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
        Ok(Watermark {
            contact_rev: contact_rev.unwrap_or(0),
            tombstone_seq,
            event_id,
            change_seq,
        })
    }

    async fn contacts_changed_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after_id: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<Contact>> {
        let types = self.field_types(account).await?;
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(contacts_changed_sql()))
            .bind(account)
            .bind(since.contact_rev)
            .bind(after_id.unwrap_or(0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    async fn contacts_deleted_since(
        &self,
        account: AccountId,
        since: &Watermark,
    ) -> Result<Vec<ContactId>> {
        Ok(sqlx::query_scalar(
            "SELECT contact_id FROM contact_tombstones \
             WHERE account_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(account)
        .bind(since.tombstone_seq)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn events_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, StoredEvent)>> {
        let mut read = self.pool.begin().await?;
        // Ids above the watermark's can have been given again after a deletion: every
        // event stored since has an id above the lowest "largest id left" recorded by
        // the deletions since, and every older one at or below it (migration 0006).
        // Event ids are shared by all accounts, so every account's deletions count.
        let floor: Option<i64> =
            sqlx::query_scalar("SELECT min(events_max) FROM contact_tombstones WHERE seq > ?")
                .bind(since.tombstone_seq)
                .fetch_one(&mut *read)
                .await?;
        let floor = floor.map_or(since.event_id, |f| f.min(since.event_id));
        let start = after.map_or(floor, |a| a.max(floor));
        let rows: Vec<IdEventRow> = sqlx::query_as(AssertSqlSafe(events_since_sql()))
            .bind(start)
            .bind(account)
            .bind(i64::from(limit))
            .fetch_all(&mut *read)
            .await?;
        read.commit().await?;
        rows.into_iter().map(IdEventRow::decode).collect()
    }

    async fn create_segment(
        &self,
        account: AccountId,
        draft: &SegmentDraft,
        now: Timestamp,
    ) -> Result<Segment> {
        let now_ms = to_ms(now);
        let row: SegmentRow = sqlx::query_as(AssertSqlSafe(format!(
            "INSERT INTO segments (account_id, name, name_key, description, rule, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {SEGMENT_COLUMNS}"
        )))
        .bind(account)
        .bind(&draft.name)
        .bind(name_key(&draft.name))
        .bind(&draft.description)
        .bind(draft.rule.to_string())
        .bind(now_ms)
        .bind(now_ms)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| unique_to_conflict(e, || segment_conflict(&draft.name)))?;
        row.decode()
    }

    async fn update_segment(
        &self,
        account: AccountId,
        id: SegmentId,
        draft: &SegmentDraft,
        now: Timestamp,
    ) -> Result<Option<Segment>> {
        let row: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE segments SET name = ?, name_key = ?, description = ?, rule = ?, updated_at = ? \
             WHERE account_id = ? AND id = ? RETURNING {SEGMENT_COLUMNS}"
        )))
        .bind(&draft.name)
        .bind(name_key(&draft.name))
        .bind(&draft.description)
        .bind(draft.rule.to_string())
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.writer)
        .await
        .map_err(|e| unique_to_conflict(e, || segment_conflict(&draft.name)))?;
        row.map(SegmentRow::decode).transpose()
    }

    async fn segment(&self, account: AccountId, id: SegmentId) -> Result<Option<Segment>> {
        let row: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE account_id = ? AND id = ?"
        )))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(SegmentRow::decode).transpose()
    }

    async fn segments(&self, account: AccountId, search: Option<&str>) -> Result<Vec<Segment>> {
        let rows: Vec<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE account_id = ? ORDER BY id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        let segments = rows
            .into_iter()
            .map(SegmentRow::decode)
            .collect::<Result<Vec<_>>>()?;
        Ok(filter_segments(segments, search))
    }

    async fn delete_segment(&self, account: AccountId, id: SegmentId) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM segments WHERE account_id = ? AND id = ?")
            .bind(account)
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    // Users and sessions.

    async fn create_user(
        &self,
        account: AccountId,
        email: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<User> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (account_id, email, email_key, password_hash, created_at) \
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(account)
        .bind(email)
        .bind(email.to_lowercase())
        .bind(password_hash)
        .bind(to_ms(now))
        .fetch_one(&self.writer)
        .await
        .map_err(|e| unique_to_conflict(e, || user_conflict(email)))?;
        Ok(User {
            id,
            account_id: account,
            email: email.to_owned(),
            password_hash: password_hash.to_owned(),
            created_at: from_ms(to_ms(now))?,
        })
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT id, account_id, email, password_hash, created_at FROM users WHERE email_key = ?",
        )
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, account: AccountId) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, account_id, email, password_hash, created_at FROM users \
             WHERE account_id = ? ORDER BY id",
        )
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(user_from_row).collect()
    }

    async fn set_password_hash(
        &self,
        account: AccountId,
        user: UserId,
        password_hash: &str,
    ) -> Result<bool> {
        let updated =
            sqlx::query("UPDATE users SET password_hash = ? WHERE account_id = ? AND id = ?")
                .bind(password_hash)
                .bind(account)
                .bind(user)
                .execute(&self.writer)
                .await?
                .rows_affected();
        Ok(updated > 0)
    }

    async fn create_session(&self, session: &NewSession) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, account_id, csrf_token, created_at, expires_at, \
             idle_until) SELECT ?, id, account_id, ?, ?, ?, ? FROM users WHERE id = ? AND account_id = ?",
        )
        .bind(&session.token_hash)
        .bind(&session.csrf_token)
        .bind(now_ms())
        .bind(to_ms(session.expires_at))
        .bind(session.idle_until.map(to_ms))
        .bind(session.user_id)
        .bind(session.account_id)
        .execute(&self.writer)
        .await
        .map_err(|e| unique_to_conflict(e, || "session token".to_owned()))?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.account_id, u.email, s.csrf_token, s.expires_at, s.idle_until \
             FROM sessions s JOIN users u ON u.id = s.user_id AND u.account_id = s.account_id \
             WHERE s.token_hash = ? AND s.expires_at > ? \
             AND (s.idle_until IS NULL OR s.idle_until > ?)",
        )
        .bind(token_hash)
        .bind(to_ms(now))
        .bind(to_ms(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(Session {
                user_id: row.try_get("user_id")?,
                account_id: row.try_get("account_id")?,
                email: row.try_get("email")?,
                csrf_token: row.try_get("csrf_token")?,
                expires_at: from_ms(row.try_get("expires_at")?)?,
                idle_until: row
                    .try_get::<Option<i64>, _>("idle_until")?
                    .map(from_ms)
                    .transpose()?,
            })
        })
        .transpose()
    }

    async fn touch_session(&self, token_hash: &str, idle_until: Timestamp) -> Result<()> {
        sqlx::query("UPDATE sessions SET idle_until = ?1 WHERE token_hash = ?2")
            .bind(to_ms(idle_until))
            .bind(token_hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> Result<(u32, Timestamp)> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, window_start FROM sign_in_failures WHERE key = ?1 AND window_start >= ?2",
        )
        .bind(key)
        .bind(to_ms(since))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((n, start)) => (u32::try_from(n.max(0)).unwrap_or(u32::MAX), from_ms(start)?),
            None => (0, since),
        })
    }

    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: Timestamp,
        since: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO sign_in_failures (key, window_start, failures) VALUES (?1, ?2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.window_start < ?3 THEN 1 \
                             ELSE sign_in_failures.failures + 1 END, \
             window_start = CASE WHEN sign_in_failures.window_start < ?3 THEN ?2 \
                                 ELSE sign_in_failures.window_start END",
        )
        .bind(key)
        .bind(to_ms(now))
        .bind(to_ms(since))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE key = ?1")
            .bind(key)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(to_ms(now))
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn contacts_by_ids(&self, account: AccountId, ids: &[ContactId]) -> Result<Vec<Contact>> {
        let found = self.contacts_in(account, "id", ids).await?;
        Ok(in_order(ids.iter().copied(), found, |c| c.id))
    }

    async fn contacts_by_external_ids(
        &self,
        account: AccountId,
        external_ids: &[String],
    ) -> Result<Vec<Contact>> {
        let found = self
            .contacts_in(account, "external_id", external_ids)
            .await?;
        Ok(in_order(external_ids.iter().cloned(), found, |c| {
            c.external_id.clone()
        }))
    }

    async fn record_changes(&self, account: AccountId, changes: &[ChangeRecord]) -> Result<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin().await?;
        // Two bound values a row; numbers are written as literals.
        for chunk in changes.chunks(MAX_BINDS / 2) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO membership_changes (account_id, segment_id, contact_id, external_id, entered, at) ",
            );
            qb.push_values(chunk, |mut row, c| {
                row.push(account.to_string())
                    .push(c.segment.to_string())
                    .push(c.contact.to_string())
                    .push_bind(c.external_id.as_str())
                    .push_bind(c.entered)
                    .push(to_ms(c.at).to_string());
            });
            qb.build().persistent(false).execute(&mut *tx).await?;
        }
        // The growth chart's sums, in the same transaction (migration 0007).
        for chunk in bucket_sums(changes).chunks(MAX_BINDS / 4) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO membership_change_buckets (account_id, segment_id, bucket, entered, exited) ",
            );
            qb.push_values(chunk, |mut row, (segment, bucket, entered, exited)| {
                row.push(account.to_string())
                    .push(segment.to_string())
                    .push(bucket.to_string())
                    .push(entered.to_string())
                    .push(exited.to_string());
            });
            qb.push(
                " ON CONFLICT (account_id, segment_id, bucket) DO UPDATE SET \
                 entered = entered + excluded.entered, exited = exited + excluded.exited",
            );
            qb.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn changes_page(
        &self,
        account: AccountId,
        segment: SegmentId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredChange>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM membership_changes \
             WHERE account_id = ? AND segment_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(account)
        .bind(segment)
        .bind(after.unwrap_or(0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ChangeRow::decode).collect()
    }

    async fn changes_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredChange>> {
        let rows: Vec<ChangeRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CHANGE_COLUMNS} FROM membership_changes \
             WHERE account_id = ? AND seq > ? ORDER BY seq LIMIT ?"
        )))
        .bind(account)
        .bind(after.unwrap_or(0).max(since.change_seq))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(ChangeRow::decode).collect()
    }

    async fn change_buckets(
        &self,
        account: AccountId,
        segment: SegmentId,
    ) -> Result<Vec<ChangeBucket>> {
        let rows = sqlx::query(AssertSqlSafe(change_buckets_sql("?", "?")))
            .bind(account)
            .bind(segment)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ChangeBucket {
                    start: from_ms(r.try_get::<i64, _>("bucket")? * CHANGE_BUCKET_MS)?,
                    entered: r.try_get::<i64, _>("entered")?.max(0) as u64,
                    exited: r.try_get::<i64, _>("exited")?.max(0) as u64,
                })
            })
            .collect()
    }

    async fn logged_members(
        &self,
        account: AccountId,
    ) -> Result<Vec<(SegmentId, ContactId, String)>> {
        let rows = sqlx::query(AssertSqlSafe(logged_members_sql("?")))
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("segment_id")?,
                    r.try_get("contact_id")?,
                    r.try_get("external_id")?,
                ))
            })
            .collect()
    }
    async fn create_campaign(
        &self,
        account: AccountId,
        draft: &CampaignDraft,
        now: Timestamp,
    ) -> Result<Campaign> {
        let status = if draft.scheduled_at.is_some() {
            CampaignStatus::Scheduled
        } else {
            CampaignStatus::Draft
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO campaigns (account_id, name, channel, content, targets, exclusions, status, \
             scheduled_at, created_at, rate_per_second) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(account)
        .bind(&draft.name)
        .bind(draft.channel.as_str())
        .bind(to_json_text(&draft.content)?)
        .bind(to_json_text(&draft.targets)?)
        .bind(to_json_text(&draft.exclusions)?)
        .bind(status.as_str())
        .bind(draft.scheduled_at.map(to_ms))
        .bind(to_ms(now))
        .bind(draft.rate_per_second.map(i64::from))
        .fetch_one(&self.writer)
        .await?;
        self.campaign(account, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("campaign {id} vanished")))
    }

    async fn campaign(&self, account: AccountId, id: CampaignId) -> Result<Option<Campaign>> {
        let row: Option<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = ? AND id = ?"
        )))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CampaignRow::decode).transpose()
    }

    async fn campaigns(&self, account: AccountId) -> Result<Vec<Campaign>> {
        let rows: Vec<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = ? ORDER BY id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(CampaignRow::decode).collect()
    }

    async fn freeze_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        recipients: &[NewRecipient],
        excluded: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE campaigns SET status = 'sending', frozen_at = ?, excluded = ? \
             WHERE account_id = ? AND id = ? AND status IN ('draft', 'scheduled')",
        )
        .bind(to_ms(now))
        .bind(to_json_text(excluded)?)
        .bind(account)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(false);
        }
        // Two bound values a row; numbers are written as literals.
        for chunk in recipients.chunks(MAX_BINDS / 2) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO campaign_recipients (campaign_id, account_id, contact_id, external_id, \
                 address, status, attempts, updated_at) ",
            );
            qb.push_values(chunk, |mut row, r| {
                row.push(id.to_string())
                    .push(account.to_string())
                    .push(r.contact_id.to_string())
                    .push_bind(r.external_id.as_str())
                    .push_bind(r.address.as_str())
                    .push("'queued'")
                    .push("0")
                    .push(to_ms(now).to_string());
            });
            qb.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn freeze_campaign_for(
        &self,
        account: AccountId,
        id: CampaignId,
        contacts: &[ContactId],
        excluded: &serde_json::Value,
        now: Timestamp,
    ) -> Result<FreezeOutcome> {
        let mut tx = self.begin_write().await?;
        let channel: Option<String> = sqlx::query_scalar(
            "UPDATE campaigns SET status = 'sending', frozen_at = ?, excluded = ? \
             WHERE account_id = ? AND id = ? AND status IN ('draft', 'scheduled') \
             RETURNING channel",
        )
        .bind(to_ms(now))
        .bind(to_json_text(excluded)?)
        .bind(account)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(channel) = channel else {
            return Ok(FreezeOutcome::default());
        };
        let channel = Channel::parse(&channel)
            .ok_or_else(|| StoreError::Corrupt(format!("campaign channel {channel}")))?;
        let mut outcome = FreezeOutcome {
            frozen: true,
            ..FreezeOutcome::default()
        };
        let now = to_ms(now);
        for chunk in freeze_ids(contacts).chunks(FREEZE_CHUNK) {
            let rows: Vec<ContactRow> =
                sqlx::query_as(AssertSqlSafe(contacts_by_id_sql(ADDRESS_COLUMNS)))
                    .bind(account)
                    .bind(to_json_text(chunk)?)
                    .fetch_all(&mut *tx)
                    .await?;
            let found = rows
                .into_iter()
                .map(decode_for_address)
                .collect::<Result<Vec<_>>>()?;
            let recipients = chunk_recipients(chunk.len(), found, channel, &mut outcome);
            if recipients.is_empty() {
                continue;
            }
            // Two bound values a row (FREEZE_CHUNK * 2 < MAX_BINDS); numbers are literals.
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO campaign_recipients (campaign_id, account_id, contact_id, external_id, \
                 address, status, attempts, updated_at) ",
            );
            qb.push_values(&recipients, |mut row, r| {
                row.push(id.to_string())
                    .push(account.to_string())
                    .push(r.contact_id.to_string())
                    .push_bind(r.external_id.as_str())
                    .push_bind(r.address.as_str())
                    .push("'queued'")
                    .push("0")
                    .push(now.to_string());
            });
            outcome.stored += qb
                .build()
                .persistent(false)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(outcome)
    }

    async fn campaign_recipients_page(
        &self,
        account: AccountId,
        id: CampaignId,
        status: Option<RecipientStatus>,
        after_external_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Recipient>> {
        // The status and the cursor are bound always; a NULL one lets every row through,
        // and the planner still walks (campaign, external id) or (campaign, status,
        // external id) in order.
        let sql = match status {
            Some(_) => format!(
                "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients \
                 WHERE campaign_id = ? AND account_id = ? AND status = ? \
                 AND external_id > coalesce(?, '') ORDER BY external_id LIMIT ?"
            ),
            None => format!(
                "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients \
                 WHERE campaign_id = ? AND account_id = ? AND ? IS NULL \
                 AND external_id > coalesce(?, '') ORDER BY external_id LIMIT ?"
            ),
        };
        let rows: Vec<RecipientRow> = sqlx::query_as(AssertSqlSafe(sql))
            .bind(id)
            .bind(account)
            .bind(status.map(RecipientStatus::as_str))
            .bind(after_external_id)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(RecipientRow::decode).collect()
    }

    async fn recipient_counts(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<RecipientCounts> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT status, count(*) FROM campaign_recipients \
             WHERE account_id = ? AND campaign_id = ? GROUP BY status",
        )
        .bind(account)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut counts = RecipientCounts::default();
        for (status, n) in rows {
            counts.add(&status, n.max(0) as u64);
        }
        Ok(counts)
    }

    async fn campaign_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Vec<Recipient>> {
        let rows: Vec<RecipientRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients \
             WHERE account_id = ? AND campaign_id = ? ORDER BY external_id"
        )))
        .bind(account)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(RecipientRow::decode).collect()
    }

    async fn update_recipient(
        &self,
        account: AccountId,
        id: CampaignId,
        contact: ContactId,
        status: RecipientStatus,
        reason: Option<&str>,
        attempts: u32,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE campaign_recipients SET status = ?, reason = ?, attempts = ?, updated_at = ? \
             WHERE account_id = ? AND campaign_id = ? AND contact_id = ?",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(i64::from(attempts))
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .bind(contact)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn finish_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        now: Timestamp,
    ) -> Result<bool> {
        let updated = sqlx::query(
            "UPDATE campaigns SET status = 'sent', sent_at = ? \
             WHERE account_id = ? AND id = ? AND status = 'sending' \
             AND NOT EXISTS (SELECT 1 FROM campaign_recipients \
                             WHERE campaign_id = campaigns.id AND status IN ('queued', 'sending'))",
        )
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn campaigns_to_run(&self, now: Timestamp) -> Result<Vec<CampaignToRun>> {
        let rows = sqlx::query(
            "SELECT account_id, id, status FROM campaigns \
             WHERE status IN ('sending', 'paused') OR (status = 'scheduled' AND scheduled_at <= ?) \
             ORDER BY id",
        )
        .bind(to_ms(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get("status")?;
                Ok(CampaignToRun {
                    account_id: r.try_get("account_id")?,
                    id: r.try_get("id")?,
                    status: CampaignStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("campaign status {status}")))?,
                })
            })
            .collect()
    }

    async fn update_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        draft: &CampaignDraft,
    ) -> Result<Transition> {
        let updated = sqlx::query(
            "UPDATE campaigns SET name = ?, channel = ?, content = ?, targets = ?, exclusions = ?, \
             scheduled_at = ?, rate_per_second = ?, \
             status = CASE WHEN ? IS NULL THEN 'draft' ELSE 'scheduled' END \
             WHERE account_id = ? AND id = ? AND status IN ('draft', 'scheduled')",
        )
        .bind(&draft.name)
        .bind(draft.channel.as_str())
        .bind(to_json_text(&draft.content)?)
        .bind(to_json_text(&draft.targets)?)
        .bind(to_json_text(&draft.exclusions)?)
        .bind(draft.scheduled_at.map(to_ms))
        .bind(draft.rate_per_second.map(i64::from))
        .bind(draft.scheduled_at.map(to_ms))
        .bind(account)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.transition(account, id, updated).await
    }

    async fn set_campaign_status(
        &self,
        account: AccountId,
        id: CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        reason: Option<&str>,
    ) -> Result<Transition> {
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE campaigns SET status = ?, status_reason = ? \
             WHERE account_id = ? AND id = ? AND status IN ({})",
            campaign_status_list(from)
        )))
        .bind(to.as_str())
        .bind(reason)
        .bind(account)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        self.transition(account, id, updated).await
    }

    async fn delete_campaign(&self, account: AccountId, id: CampaignId) -> Result<Transition> {
        let deleted = sqlx::query(
            "DELETE FROM campaigns WHERE account_id = ? AND id = ? \
             AND status IN ('draft', 'cancelled')",
        )
        .bind(account)
        .bind(id)
        .execute(&self.writer)
        .await?
        .rows_affected();
        if deleted > 0 {
            return Ok(Transition::Done(None));
        }
        self.transition(account, id, 0).await
    }

    async fn claim_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Recipient>> {
        let now = to_ms(now);
        // The due ids first, then the update by id list, in one write transaction: an
        // `IN (SELECT … LIMIT n)` inside the UPDATE is not held to its limit by SQLite
        // when the rows it walks change under it.
        let mut tx = self.begin_write().await?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT contact_id FROM campaign_recipients \
             WHERE campaign_id = ? AND status = 'queued' AND next_attempt_at <= ? \
             AND account_id = ? ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(id)
        .bind(now)
        .bind(account)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<RecipientRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE campaign_recipients SET status = 'sending', attempts = attempts + 1, \
             first_attempt_at = coalesce(first_attempt_at, ?), updated_at = ? \
             WHERE campaign_id = ? AND account_id = ? \
             AND contact_id IN (SELECT value FROM json_each(?)) \
             RETURNING {RECIPIENT_COLUMNS}"
        )))
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(account)
        .bind(to_json_text(&ids)?)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.into_iter().map(RecipientRow::decode).collect()
    }

    async fn record_outcomes(
        &self,
        account: AccountId,
        id: CampaignId,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let now = to_ms(now);
        let mut tx = self.begin_write().await?;
        let mut changed = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let n = sqlx::query(
                "UPDATE campaign_recipients SET status = ?, reason = ?, attempts = ?, \
                 next_attempt_at = ?, updated_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? AND status = 'sending'",
            )
            .bind(o.status.as_str())
            .bind(o.reason.as_deref())
            .bind(i64::from(o.attempts))
            .bind(o.next_attempt_at.map(to_ms).unwrap_or(0))
            .bind(now)
            .bind(id)
            .bind(o.contact_id)
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                changed.push(o.clone());
            }
        }
        for (kind, n) in outcome_kinds(&changed) {
            add_activity(&mut tx, account, id, kind, n, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settle_interrupted(
        &self,
        account: AccountId,
        id: CampaignId,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE campaign_recipients SET status = 'unknown', reason = ?, updated_at = ? \
             WHERE campaign_id = ? AND account_id = ? AND status = 'sending'",
        )
        .bind(reason)
        .bind(to_ms(now))
        .bind(id)
        .bind(account)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            add_activity(&mut tx, account, id, "unknown", n as i64, to_ms(now)).await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn next_attempt_at(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Option<Timestamp>> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT min(next_attempt_at) FROM campaign_recipients \
             WHERE campaign_id = ? AND status = 'queued' AND account_id = ?",
        )
        .bind(id)
        .bind(account)
        .fetch_one(&self.pool)
        .await?;
        at.map(from_ms).transpose()
    }

    async fn requeue_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
        statuses: &[RecipientStatus],
        now: Timestamp,
    ) -> Result<u64> {
        let Some(campaign) = self.campaign(account, id).await? else {
            return Ok(0);
        };
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(AssertSqlSafe(format!(
            "UPDATE campaign_recipients SET status = 'queued', reason = NULL, next_attempt_at = 0, \
             first_attempt_at = NULL, updated_at = ? \
             WHERE campaign_id = ? AND account_id = ? AND status IN ({}) \
             AND EXISTS (SELECT 1 FROM contacts c WHERE c.id = campaign_recipients.contact_id \
                         AND {})",
            status_list(statuses),
            reachable_sql(campaign.channel)
        )))
        .bind(to_ms(now))
        .bind(id)
        .bind(account)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            sqlx::query(
                "UPDATE campaigns SET status = 'sending', sent_at = NULL \
                 WHERE account_id = ? AND id = ? AND status = 'sent'",
            )
            .bind(account)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn record_engagement(
        &self,
        account: AccountId,
        id: CampaignId,
        contact: ContactId,
        engagement: Engagement,
        now: Timestamp,
    ) -> Result<bool> {
        let now = to_ms(now);
        let mut tx = self.begin_write().await?;
        let sql = match engagement {
            Engagement::Open => {
                "UPDATE campaign_recipients SET opened_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? AND opened_at IS NULL"
            }
            Engagement::MachineOpen => {
                "UPDATE campaign_recipients SET updated_at = updated_at \
                 WHERE ? IS NOT NULL AND campaign_id = ? AND contact_id = ? AND account_id = ?"
            }
            Engagement::Click => {
                "UPDATE campaign_recipients SET clicked_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? AND clicked_at IS NULL"
            }
            Engagement::Unsubscribe => {
                "UPDATE campaign_recipients SET unsubscribed_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? \
                 AND unsubscribed_at IS NULL"
            }
            Engagement::Complaint => {
                "UPDATE campaign_recipients SET complained_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? \
                 AND complained_at IS NULL"
            }
            Engagement::Bounce => {
                "UPDATE campaign_recipients SET status = 'bounced', \
                 reason = 'bounced after delivery', updated_at = ? \
                 WHERE campaign_id = ? AND contact_id = ? AND account_id = ? \
                 AND status IN ('sent', 'unknown')"
            }
        };
        let counted = sqlx::query(sql)
            .bind(now)
            .bind(id)
            .bind(contact)
            .bind(account)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if counted {
            add_activity(&mut tx, account, id, engagement.kind(), 1, now).await?;
        }
        tx.commit().await?;
        Ok(counted)
    }

    async fn campaign_activity(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Vec<ActivityBucket>> {
        let rows: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT hour, kind, n FROM campaign_activity \
             WHERE campaign_id = ? AND account_id = ? ORDER BY hour, kind",
        )
        .bind(id)
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(hour, kind, n)| {
                Ok(ActivityBucket {
                    hour: from_ms(hour)?,
                    kind,
                    n: n.max(0) as u64,
                })
            })
            .collect()
    }

    async fn contacts_by_address(
        &self,
        account: AccountId,
        channel: Channel,
        address: &str,
    ) -> Result<Vec<Contact>> {
        let column = match channel {
            Channel::Email => "email",
            Channel::Sms => "phone",
            Channel::Push => return Ok(Vec::new()),
        };
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {ADDRESS_COLUMNS} FROM contacts WHERE account_id = ? AND {column} = ? LIMIT 100"
        )))
        .bind(account)
        .bind(address)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode_for_address).collect()
    }

    async fn existing_tracking_secret(&self, account: AccountId) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT secret FROM tracking_secrets WHERE account_id = ?")
                .bind(account)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn create_import(
        &self,
        account: AccountId,
        import: &NewImport,
        now: Timestamp,
    ) -> Result<Import> {
        let id: i64 = sqlx::query_scalar(INSERT_IMPORT)
            .bind(account)
            .bind(&import.file_name)
            .bind(columns_json(&import.columns))
            .bind(signed(import.file_bytes))
            .bind(to_ms(now))
            .fetch_one(&self.writer)
            .await?;
        self.import(account, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("import {id} vanished")))
    }

    async fn import(&self, account: AccountId, id: ImportId) -> Result<Option<Import>> {
        let row = sqlx::query(SELECT_IMPORT)
            .bind(account)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(import_from_row).transpose()
    }

    async fn start_import(
        &self,
        account: AccountId,
        id: ImportId,
        mapping: &serde_json::Value,
    ) -> Result<bool> {
        let n = sqlx::query(START_IMPORT)
            .bind(mapping.to_string())
            .bind(account)
            .bind(id)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    async fn import_progress(
        &self,
        account: AccountId,
        id: ImportId,
        progress: &ImportProgress,
    ) -> Result<()> {
        sqlx::query(IMPORT_PROGRESS)
            .bind(signed(progress.bytes_read))
            .bind(signed(progress.rows_imported))
            .bind(signed(progress.rows_rejected))
            .bind(account)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn finish_import(
        &self,
        account: AccountId,
        id: ImportId,
        status: ImportStatus,
        progress: &ImportProgress,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query(FINISH_IMPORT)
            .bind(status.as_str())
            .bind(signed(progress.bytes_read))
            .bind(signed(progress.rows_imported))
            .bind(signed(progress.rows_rejected))
            .bind(error)
            .bind(to_ms(now))
            .bind(account)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn interrupt_imports(&self, error: &str, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query(INTERRUPT_IMPORTS)
            .bind(error)
            .bind(to_ms(now))
            .execute(&self.writer)
            .await?
            .rows_affected())
    }

    async fn tracking_secret(&self, account: AccountId, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO tracking_secrets (account_id, secret) VALUES (?, ?) \
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account)
        .bind(candidate)
        .execute(&self.writer)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM tracking_secrets WHERE account_id = ?")
                .bind(account)
                .fetch_one(&self.writer)
                .await?,
        )
    }
}

fn user_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

#[cfg(test)]
// A failed setup step should stop the test where it failed.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Applies migration files by hand, so that data can be put in between.
    async fn apply(pool: &SqlitePool, files: &[&str]) {
        for sql in files {
            sqlx::raw_sql(AssertSqlSafe(*sql))
                .execute(pool)
                .await
                .unwrap();
        }
    }

    /// The plan's detail lines for `sql` on a fully migrated database.
    async fn plan(sql: &str, binds: usize) -> Vec<String> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::from_str("sqlite::memory:").unwrap())
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.unwrap();
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as(AssertSqlSafe(explain));
        for _ in 0..binds {
            query = query.bind(1_i64);
        }
        let rows: Vec<(i64, i64, i64, String)> = query.fetch_all(&pool).await.unwrap();
        rows.into_iter().map(|(.., detail)| detail).collect()
    }

    #[tokio::test]
    async fn the_since_reads_seek_their_indexes() {
        let events = plan(&events_since_sql(), 3).await;
        assert!(
            events
                .iter()
                .any(|d| d.contains("USING INTEGER PRIMARY KEY (rowid>?)")),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|d| d.contains("TEMP B-TREE")),
            "{events:?}"
        );
        let contacts = plan(&contacts_changed_sql(), 4).await;
        assert!(
            contacts
                .iter()
                .any(|d| d.contains("USING COVERING INDEX contacts_rev (account_id=? AND rev>?)")),
            "{contacts:?}"
        );
        assert!(
            !contacts.iter().any(|d| d.starts_with("SCAN")),
            "{contacts:?}"
        );
    }

    #[tokio::test]
    async fn contacts_are_read_by_id_through_the_rowid() {
        let by_id = plan(&contacts_by_id_sql(ADDRESS_COLUMNS), 2).await;
        assert!(
            by_id
                .iter()
                .any(|d| d.contains("SEARCH contacts USING INTEGER PRIMARY KEY (rowid=?)")),
            "{by_id:?}"
        );
    }

    #[tokio::test]
    async fn migration_6_gives_existing_contacts_revision_0_and_keeps_their_events() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str("sqlite::memory:")
                    .unwrap()
                    .foreign_keys(true),
            )
            .await
            .unwrap();
        apply(
            &pool,
            &[
                include_str!("../migrations/sqlite/0001_init.sql"),
                include_str!("../migrations/sqlite/0002_users.sql"),
                include_str!("../migrations/sqlite/0003_membership_changes.sql"),
                include_str!("../migrations/sqlite/0004_campaigns.sql"),
                include_str!("../migrations/sqlite/0005_events_for_ingest.sql"),
                "INSERT INTO accounts (name, time_zone, created_at) VALUES ('a', 'UTC', 0);
                 INSERT INTO contacts (account_id, external_id, created_at, updated_at) VALUES (1, 'x', 0, 0);
                 INSERT INTO events (account_id, contact_id, kind, ts) VALUES (1, 1, 'visit', 10);",
                include_str!("../migrations/sqlite/0006_replay_since_watermark.sql"),
            ],
        )
        .await;
        let rev: i64 = sqlx::query_scalar("SELECT rev FROM contacts")
            .fetch_one(&pool)
            .await
            .unwrap();
        let counter: i64 = sqlx::query_scalar("SELECT contact_rev FROM accounts")
            .fetch_one(&pool)
            .await
            .unwrap();
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!((rev, counter, events), (0, 0, 1));
    }

    #[tokio::test]
    async fn migration_5_keeps_every_event_its_id_and_order_and_checks() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                SqliteConnectOptions::from_str("sqlite::memory:")
                    .unwrap()
                    .foreign_keys(true),
            )
            .await
            .unwrap();
        apply(
            &pool,
            &[
                include_str!("../migrations/sqlite/0001_init.sql"),
                include_str!("../migrations/sqlite/0002_users.sql"),
                include_str!("../migrations/sqlite/0003_membership_changes.sql"),
                include_str!("../migrations/sqlite/0004_campaigns.sql"),
            ],
        )
        .await;
        apply(
            &pool,
            &[
                "INSERT INTO accounts (name, time_zone, created_at) VALUES ('a', 'UTC', 0);
                 INSERT INTO contacts (account_id, external_id, created_at, updated_at) VALUES (1, 'x', 0, 0);
                 INSERT INTO events (account_id, contact_id, kind, ts, client_id) VALUES
                     (1, 1, 'MailOpen', 10, 'e1'), (1, 1, 'visit', 20, NULL), (1, 1, 'custom', 30, 'e3');
                 DELETE FROM events WHERE id = 3;",
            ],
        )
        .await;
        apply(
            &pool,
            &[include_str!(
                "../migrations/sqlite/0005_events_for_ingest.sql"
            )],
        )
        .await;

        let rows: Vec<(i64, String, i64, Option<String>)> =
            sqlx::query_as("SELECT id, kind, ts, client_id FROM events ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert_eq!(
            rows,
            vec![
                (1, "MailOpen".to_owned(), 10, Some("e1".to_owned())),
                (2, "visit".to_owned(), 20, None),
            ]
        );
        // A new event still comes after every stored one.
        let next: i64 = sqlx::query_scalar(
            "INSERT INTO events (account_id, contact_id, kind, ts) VALUES (1, 1, 'visit', 40) RETURNING id",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(next, 3);
        // The kind is still checked.
        let odd = sqlx::query(
            "INSERT INTO events (account_id, contact_id, kind, ts) VALUES (1, 1, 'MailRead', 50)",
        )
        .execute(&pool)
        .await;
        assert!(odd.is_err());
        // Client ids stay unique per account.
        let again = sqlx::query(
            "INSERT INTO events (account_id, contact_id, kind, ts, client_id) VALUES (1, 1, 'visit', 50, 'e1')",
        )
        .execute(&pool)
        .await;
        assert!(again.is_err());
        // A contact's timeline is read through the bucket index.
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {}",
            select_contact_events("e.id")
        )))
        .bind(1)
        .bind(1)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(
            plan.iter()
                .any(|(.., detail)| detail.contains("USING INDEX events_contact")),
            "{plan:?}"
        );
    }
}
