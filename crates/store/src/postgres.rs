//! The PostgreSQL backend.
//!
//! Batches are sent as arrays and spread with `UNNEST`, one statement a batch. Contact
//! upserts of one account are serialized by a transaction-scoped advisory lock, so two
//! concurrent batches that patch the same contact both apply (neither read-merge-write
//! loses the other's changes).

use std::collections::HashMap;

use async_trait::async_trait;
use jiff::Timestamp;
use segmentd_rules::SegmentId;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row};

use crate::campaign_rows::*;
use crate::common::*;
use crate::*;

mod cluster;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://…`) and applies the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(PostgresStore { pool })
    }

    /// As [`PostgresStore::open`], every connection naming cluster node `node`
    /// (`segmentd.node`, read by migration 0013's triggers). A transaction left idle for
    /// two seconds is ended by the server: a node stopped inside one (SIGSTOP, a long
    /// pause) cannot hold an account's placement row and so hold off its failover.
    pub async fn open_as_node(url: &str, node: &str) -> Result<Self> {
        let options: sqlx::postgres::PgConnectOptions = url.parse()?;
        let options = options.options([
            ("segmentd.node", node),
            ("idle_in_transaction_session_timeout", "2000"),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(7271)")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(include_str!("postgres/cluster_triggers.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(PostgresStore { pool })
    }

    /// The account's contacts whose `column` is one of `values`, in no particular order.
    async fn contacts_in<T>(
        &self,
        account: AccountId,
        column: &'static str,
        values: &[T],
    ) -> Result<Vec<Contact>>
    where
        T: sqlx::Type<sqlx::Postgres> + Sync,
        for<'a> &'a [T]: sqlx::Encode<'a, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
    {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        let types = self.field_types(account).await?;
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND {column} = ANY($2)"
        )))
        .bind(account)
        .bind(values)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    async fn field_types(&self, account: AccountId) -> Result<FieldTypes> {
        Ok(field_types(&self.fields(account).await?))
    }
}

/// The account's field types, read inside a transaction.
async fn field_types_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    account: AccountId,
) -> Result<FieldTypes> {
    let rows = sqlx::query("SELECT key, type FROM fields WHERE account_id = $1")
        .bind(account)
        .fetch_all(&mut **tx)
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("key")?, parse_field_type(row.try_get("type")?)?)))
        .collect()
}

fn account_from_row(row: &PgRow) -> Result<Account> {
    Ok(Account {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        time_zone: row.try_get("time_zone")?,
    })
}

impl PostgresStore {
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
}

/// Adds `n` to the campaign's count of `kind` for the hour of `now_ms`.
async fn add_activity(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    account: AccountId,
    id: CampaignId,
    kind: &str,
    n: i64,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO campaign_activity (campaign_id, account_id, hour, kind, n) \
         VALUES ($1, $2, $3, $4, $5) \
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

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_account(&self, name: &str, time_zone: &str) -> Result<Account> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO accounts (name, time_zone, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(time_zone)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(Account {
            id,
            name: name.to_owned(),
            time_zone: time_zone.to_owned(),
        })
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        let row = sqlx::query("SELECT id, name, time_zone FROM accounts WHERE id = $1")
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
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(key_hash)
            .bind(account)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(|e| unique_to_conflict(e, || "api key".to_owned()))?;
        Ok(())
    }

    async fn account_by_api_key(&self, key_hash: &str) -> Result<Option<Account>> {
        let row = sqlx::query(
            "SELECT a.id, a.name, a.time_zone FROM api_keys k \
             JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&key.key_hash)
        .bind(account)
        .bind(to_ms(now))
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key.admin)
        .execute(&self.pool)
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
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL"
        )))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((account_from_row(&r)?, api_key_from_row(&r)?)))
            .transpose()
    }

    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys k WHERE k.account_id = $1 \
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
            "UPDATE api_keys SET revoked_at = $1 \
             WHERE account_id = $2 AND key_hash LIKE $3 AND revoked_at IS NULL",
        )
        .bind(to_ms(now))
        .bind(account)
        .bind(format!("{}%", id.to_ascii_lowercase()))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn touch_api_key(&self, key_hash: &str, now: Timestamp) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE key_hash = $2")
            .bind(to_ms(now))
            .bind(key_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_field(&self, account: AccountId, field: &FieldDef) -> Result<()> {
        sqlx::query("INSERT INTO fields (account_id, key, label, type) VALUES ($1, $2, $3, $4)")
            .bind(account)
            .bind(&field.key)
            .bind(&field.label)
            .bind(field.field_type.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| unique_to_conflict(e, || field_conflict(&field.key)))?;
        Ok(())
    }

    async fn fields(&self, account: AccountId) -> Result<Vec<FieldDef>> {
        let rows =
            sqlx::query("SELECT key, label, type FROM fields WHERE account_id = $1 ORDER BY key")
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
        let mut tx = self.pool.begin().await?;
        // Same lock as upserts: no batch merges a stale copy of `fields` back in.
        lock_contacts(&mut tx, account).await?;
        let deleted = sqlx::query("DELETE FROM fields WHERE account_id = $1 AND key = $2")
            .bind(account)
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if deleted == 0 {
            return Ok(false);
        }
        // Rewritten here rather than with PostgreSQL's JSON functions: they refuse text
        // holding `\u0000`, which a stored value may contain. `strpos` only narrows the
        // rows down: the key, as serde_json writes it, appears in every row that holds it.
        let needle = serde_json::Value::String(key.to_owned()).to_string();
        let rows = sqlx::query(
            "SELECT id, fields FROM contacts WHERE account_id = $1 AND strpos(fields, $2) > 0",
        )
        .bind(account)
        .bind(&needle)
        .fetch_all(&mut *tx)
        .await?;
        let mut ids = Vec::new();
        let mut texts = Vec::new();
        for row in rows {
            let id: i64 = row.try_get("id")?;
            if let Some(text) = without_key(id, row.try_get("fields")?, key)? {
                ids.push(id);
                texts.push(text);
            }
        }
        if !ids.is_empty() {
            // The contacts that lose a value get a new revision (one for all, as an upsert
            // batch does): a replay reads them again.
            let rev: i64 = sqlx::query_scalar("SELECT nextval('contact_rev')")
                .fetch_one(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE contacts c SET fields = u.fields, rev = $4 \
                 FROM UNNEST($2::bigint[], $3::text[]) AS u (id, fields) \
                 WHERE c.account_id = $1 AND c.id = u.id",
            )
            .bind(account)
            .bind(&ids)
            .bind(&texts)
            .bind(rev)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn upsert_contacts(&self, account: AccountId, batch: &[ContactUpsert]) -> Result<u64> {
        if batch.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await?;
        lock_contacts(&mut tx, account).await?;

        let ids = distinct(batch.iter().map(|c| c.external_id.as_str()));
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND external_id = ANY($2)"
        )))
        .bind(account)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut existing = HashMap::with_capacity(rows.len());
        for row in rows {
            let state = ContactState::from_row(&row)?;
            existing.insert(row.external_id, state);
        }

        let known = field_types_in(&mut tx, account).await?;
        let merged = merge_batch(batch, existing, &known);
        let n = merged.len();
        let mut external_ids = Vec::with_capacity(n);
        let mut emails = Vec::with_capacity(n);
        let mut phones = Vec::with_capacity(n);
        let mut email_statuses = Vec::with_capacity(n);
        let mut sms_statuses = Vec::with_capacity(n);
        let mut push_tokens = Vec::with_capacity(n);
        let mut fields = Vec::with_capacity(n);
        for (external_id, state) in &merged {
            external_ids.push(*external_id);
            emails.push(state.email.as_deref());
            phones.push(state.phone.as_deref());
            email_statuses.push(state.email_status.map(EmailStatus::as_str));
            sms_statuses.push(state.sms_status.map(SmsStatus::as_str));
            push_tokens.push(state.push_tokens_json());
            fields.push(state.fields_json());
        }
        // One revision for the batch, from a sequence: no lock on the account's row,
        // which event batches hold FOR SHARE (migration 0006).
        let rev: i64 = sqlx::query_scalar("SELECT nextval('contact_rev')")
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO contacts (account_id, created_at, updated_at, rev, external_id, email, \
                 phone, email_status, sms_status, push_tokens, fields) \
             SELECT $1, $2, $2, $10, u.* FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[], \
                 $7::text[], $8::text[], $9::text[]) AS u \
             ON CONFLICT (account_id, external_id) DO UPDATE SET \
                 email = excluded.email, phone = excluded.phone, \
                 email_status = excluded.email_status, sms_status = excluded.sms_status, \
                 push_tokens = excluded.push_tokens, fields = excluded.fields, \
                 updated_at = excluded.updated_at, rev = excluded.rev",
        )
        .bind(account)
        .bind(now_ms())
        .bind(&external_ids)
        .bind(&emails)
        .bind(&phones)
        .bind(&email_statuses)
        .bind(&sms_statuses)
        .bind(&push_tokens)
        .bind(&fields)
        .bind(rev)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(batch.len() as u64)
    }

    async fn contact(&self, account: AccountId, external_id: &str) -> Result<Option<Contact>> {
        let row: Option<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 AND external_id = $2"
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
        // `external_id` has the "C" collation: byte order, as on SQLite. Two statements
        // rather than `$2 IS NULL OR …`, so a cached generic plan still seeks the index.
        let rows: Vec<ContactRow> = match after {
            Some(after) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts \
                     WHERE account_id = $1 AND external_id > $2 ORDER BY external_id LIMIT $3"
                )))
                .bind(account)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {CONTACT_COLUMNS} FROM contacts \
                     WHERE account_id = $1 ORDER BY external_id LIMIT $2"
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
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE account_id = $1 ORDER BY external_id"
        )))
        .bind(account)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| r.decode(&types)).collect()
    }

    async fn delete_contact(&self, account: AccountId, external_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // The account's row first: that waits for every event batch in flight (they hold
        // it FOR SHARE) and holds off new ones until this commits, so the next
        // statements see every event of the contact. Events carry no foreign key
        // (migration 0005), so they are deleted here; the contact's other rows go by
        // ON DELETE CASCADE.
        sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        let id: Option<i64> = sqlx::query_scalar(
            "DELETE FROM contacts WHERE account_id = $1 AND external_id = $2 RETURNING id",
        )
        .bind(account)
        .bind(external_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(false);
        };
        sqlx::query("DELETE FROM events WHERE contact_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO contact_tombstones (account_id, contact_id) VALUES ($1, $2)")
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
        let mut tx = self.pool.begin().await?;

        // The account's row held FOR SHARE keeps every contact of the account from being
        // deleted before this commits (`delete_contact` takes it FOR NO KEY UPDATE) while
        // event batches still run side by side. One row lock instead of one per contact:
        // locking ~10,000 contacts a batch wrote each of their rows again.
        sqlx::query("SELECT 1 FROM accounts WHERE id = $1 FOR SHARE")
            .bind(account)
            .execute(&mut *tx)
            .await?;
        let names = distinct(batch.iter().map(|e| e.contact.as_str()));
        let rows = sqlx::query(
            "SELECT id, external_id FROM contacts WHERE account_id = $1 AND external_id = ANY($2)",
        )
        .bind(account)
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
        let mut contact_ids: HashMap<String, i64> = HashMap::with_capacity(rows.len());
        for row in rows {
            contact_ids.insert(row.try_get("external_id")?, row.try_get("id")?);
        }
        let unknown: Vec<usize> = batch
            .iter()
            .enumerate()
            .filter(|(_, e)| !contact_ids.contains_key(&e.contact))
            .map(|(i, _)| i)
            .collect();
        if !unknown.is_empty() {
            return Err(StoreError::UnknownContacts(unknown));
        }

        let n = batch.len();
        let mut contacts = Vec::with_capacity(n);
        let mut kinds = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut names = Vec::with_capacity(n);
        let mut campaigns = Vec::with_capacity(n);
        let mut urls = Vec::with_capacity(n);
        let mut properties = Vec::with_capacity(n);
        let mut client_ids = Vec::with_capacity(n);
        for event in batch {
            let columns = encode_event(&event.body);
            contacts.push(contact_ids.get(&event.contact).copied().unwrap_or_default());
            kinds.push(columns.kind);
            times.push(to_ms(event.timestamp));
            names.push(columns.name);
            campaigns.push(columns.campaign);
            urls.push(columns.url);
            properties.push(columns.properties);
            client_ids.push(event.client_id.as_deref());
        }
        // Rows go in batch order, so ids keep the arrival order and, of two items with
        // the same client id, the first is the one stored.
        let accepted = sqlx::query(
            "INSERT INTO events (account_id, contact_id, kind, ts, name, campaign, url, properties, client_id) \
             SELECT $1, u.contact_id, u.kind, u.ts, u.name, u.campaign, u.url, u.properties, u.client_id \
             FROM UNNEST($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], \
                 $8::text[], $9::text[]) WITH ORDINALITY \
                 AS u (contact_id, kind, ts, name, campaign, url, properties, client_id, ord) \
             ORDER BY u.ord \
             ON CONFLICT (account_id, client_id) DO NOTHING",
        )
        .bind(account)
        .bind(&contacts)
        .bind(&kinds)
        .bind(&times)
        .bind(&names)
        .bind(&campaigns)
        .bind(&urls)
        .bind(&properties)
        .bind(&client_ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(InsertOutcome {
            accepted,
            duplicates: n as u64 - accepted,
            contacts,
        })
    }

    async fn all_events(&self, account: AccountId) -> Result<Vec<StoredEvent>> {
        let rows: Vec<EventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1 ORDER BY id"
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE account_id = $1 AND contact_id = $2 ORDER BY id"
        )))
        .bind(account)
        .bind(contact)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(EventRow::decode).collect()
    }

    async fn watermark(&self, account: AccountId) -> Result<Watermark> {
        // Each maximum is one index seek. The event id is the table's: a value taken
        // after this read is greater than any taken before it, whatever the account.
        let (contact_rev, tombstone_seq, event_id, change_seq): (i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT (SELECT coalesce(max(rev), 0) FROM contacts WHERE account_id = $1), \
                        (SELECT coalesce(max(seq), 0) FROM contact_tombstones WHERE account_id = $1), \
                        (SELECT coalesce(max(id), 0) FROM events), \
                        (SELECT coalesce(max(seq), 0) FROM membership_changes)",
            )
            .bind(account)
            .fetch_one(&self.pool)
            .await?;
        Ok(Watermark {
            contact_rev,
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
        // The page's ids first, then only the page's rows, by primary key. Not a cached
        // statement: a generic plan guesses a third of the rows changed and walks the
        // whole table in id order; planned with the values, a few changed contacts come
        // from the (account_id, rev, id) index and many from the primary key.
        let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CONTACT_COLUMNS} FROM contacts WHERE id = ANY(ARRAY( \
                 SELECT id FROM contacts WHERE account_id = $1 AND rev > $2 AND id > $3 \
                 ORDER BY id LIMIT $4)) \
             ORDER BY id"
        )))
        .bind(account)
        .bind(since.contact_rev)
        .bind(after_id.unwrap_or(0))
        .bind(i64::from(limit))
        .persistent(false)
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
             WHERE account_id = $1 AND seq > $2 ORDER BY seq",
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
        // Identity values are never given twice: the events after the watermark are
        // exactly those with a greater id. A range of the primary key, in key order
        // (planned with the values, as contacts_changed_since is).
        let start = after.map_or(since.event_id, |a| a.max(since.event_id));
        let rows: Vec<IdEventRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, {EVENT_COLUMNS} FROM events \
             WHERE id > $1 AND account_id = $2 ORDER BY id LIMIT $3"
        )))
        .bind(start)
        .bind(account)
        .bind(i64::from(limit))
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
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
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {SEGMENT_COLUMNS}"
        )))
        .bind(account)
        .bind(&draft.name)
        .bind(name_key(&draft.name))
        .bind(&draft.description)
        .bind(draft.rule.to_string())
        .bind(now_ms)
        .fetch_one(&self.pool)
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
            "UPDATE segments SET name = $1, name_key = $2, description = $3, rule = $4, updated_at = $5 \
             WHERE account_id = $6 AND id = $7 RETURNING {SEGMENT_COLUMNS}"
        )))
        .bind(&draft.name)
        .bind(name_key(&draft.name))
        .bind(&draft.description)
        .bind(draft.rule.to_string())
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| unique_to_conflict(e, || segment_conflict(&draft.name)))?;
        row.map(SegmentRow::decode).transpose()
    }

    async fn segment(&self, account: AccountId, id: SegmentId) -> Result<Option<Segment>> {
        let row: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE account_id = $1 AND id = $2"
        )))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(SegmentRow::decode).transpose()
    }

    async fn segments(&self, account: AccountId, search: Option<&str>) -> Result<Vec<Segment>> {
        let rows: Vec<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SEGMENT_COLUMNS} FROM segments WHERE account_id = $1 ORDER BY id"
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
        let deleted = sqlx::query("DELETE FROM segments WHERE account_id = $1 AND id = $2")
            .bind(account)
            .bind(id)
            .execute(&self.pool)
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
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(account)
        .bind(email)
        .bind(email.to_lowercase())
        .bind(password_hash)
        .bind(to_ms(now))
        .fetch_one(&self.pool)
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
            "SELECT id, account_id, email, password_hash, created_at FROM users WHERE email_key = $1",
        )
        .bind(email.to_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self, account: AccountId) -> Result<Vec<User>> {
        let rows = sqlx::query(
            "SELECT id, account_id, email, password_hash, created_at FROM users \
             WHERE account_id = $1 ORDER BY id",
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
            sqlx::query("UPDATE users SET password_hash = $1 WHERE account_id = $2 AND id = $3")
                .bind(password_hash)
                .bind(account)
                .bind(user)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(updated > 0)
    }

    async fn create_session(&self, session: &NewSession) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, account_id, csrf_token, created_at, expires_at, \
             idle_until) SELECT $1, id, account_id, $2, $3, $4, $5 FROM users \
             WHERE id = $6 AND account_id = $7",
        )
        .bind(&session.token_hash)
        .bind(&session.csrf_token)
        .bind(now_ms())
        .bind(to_ms(session.expires_at))
        .bind(session.idle_until.map(to_ms))
        .bind(session.user_id)
        .bind(session.account_id)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_to_conflict(e, || "session token".to_owned()))?
        .rows_affected();
        Ok(inserted > 0)
    }

    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.user_id, s.account_id, u.email, s.csrf_token, s.expires_at, s.idle_until \
             FROM sessions s JOIN users u ON u.id = s.user_id AND u.account_id = s.account_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2 \
             AND (s.idle_until IS NULL OR s.idle_until > $2)",
        )
        .bind(token_hash)
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
        sqlx::query("UPDATE sessions SET idle_until = $1 WHERE token_hash = $2")
            .bind(to_ms(idle_until))
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_session(&self, token_hash: &str) -> Result<bool> {
        let deleted = sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted > 0)
    }

    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> Result<(u32, Timestamp)> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT failures, window_start FROM sign_in_failures WHERE key = $1 AND window_start >= $2",
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
            "INSERT INTO sign_in_failures (key, window_start, failures) VALUES ($1, $2, 1) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.window_start < $3 THEN 1 \
                             ELSE sign_in_failures.failures + 1 END, \
             window_start = CASE WHEN sign_in_failures.window_start < $3 THEN $2 \
                                 ELSE sign_in_failures.window_start END",
        )
        .bind(key)
        .bind(to_ms(now))
        .bind(to_ms(since))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn clear_sign_in_failures(&self, key: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(to_ms(now))
            .execute(&self.pool)
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
        let segments: Vec<i64> = changes.iter().map(|c| c.segment).collect();
        let contacts: Vec<i64> = changes.iter().map(|c| c.contact).collect();
        let external: Vec<&str> = changes.iter().map(|c| c.external_id.as_str()).collect();
        let entered: Vec<bool> = changes.iter().map(|c| c.entered).collect();
        let at: Vec<i64> = changes.iter().map(|c| to_ms(c.at)).collect();
        let mut tx = self.pool.begin().await?;
        // One statement whatever the size; WITH ORDINALITY keeps the log in the given order.
        sqlx::query(
            "INSERT INTO membership_changes (account_id, segment_id, contact_id, external_id, entered, at) \
             SELECT $1, s, c, e, n, a FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::BOOLEAN[], $6::BIGINT[]) \
             WITH ORDINALITY AS t(s, c, e, n, a, ord) ORDER BY ord",
        )
        .bind(account)
        .bind(&segments)
        .bind(&contacts)
        .bind(&external)
        .bind(&entered)
        .bind(&at)
        .execute(&mut *tx)
        .await?;
        // The growth chart's sums, in the same transaction (migration 0007); sorted, so
        // that concurrent batches lock bucket rows in one order.
        let sums = bucket_sums(changes);
        let column =
            |i: usize| -> Vec<i64> { sums.iter().map(|r| [r.0, r.1, r.2, r.3][i]).collect() };
        sqlx::query(
            "INSERT INTO membership_change_buckets (account_id, segment_id, bucket, entered, exited) \
             SELECT $1, s, b, n, x FROM UNNEST($2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::BIGINT[]) \
             AS t(s, b, n, x) \
             ON CONFLICT (account_id, segment_id, bucket) DO UPDATE SET \
             entered = membership_change_buckets.entered + EXCLUDED.entered, \
             exited = membership_change_buckets.exited + EXCLUDED.exited",
        )
        .bind(account)
        .bind(column(0))
        .bind(column(1))
        .bind(column(2))
        .bind(column(3))
        .execute(&mut *tx)
        .await?;
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
             WHERE account_id = $1 AND segment_id = $2 AND seq > $3 ORDER BY seq LIMIT $4"
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
             WHERE account_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
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
        let rows = sqlx::query(AssertSqlSafe(change_buckets_sql("$1", "$2")))
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
        let rows = sqlx::query(AssertSqlSafe(logged_members_sql("$1")))
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
             scheduled_at, created_at, rate_per_second) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
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
        .fetch_one(&self.pool)
        .await?;
        self.campaign(account, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("campaign {id} vanished")))
    }

    async fn campaign(&self, account: AccountId, id: CampaignId) -> Result<Option<Campaign>> {
        let row: Option<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = $1 AND id = $2"
        )))
        .bind(account)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(CampaignRow::decode).transpose()
    }

    async fn campaigns(&self, account: AccountId) -> Result<Vec<Campaign>> {
        let rows: Vec<CampaignRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE account_id = $1 ORDER BY id"
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
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE campaigns SET status = 'sending', frozen_at = $1, excluded = $2 \
             WHERE account_id = $3 AND id = $4 AND status IN ('draft', 'scheduled')",
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
        let contacts: Vec<i64> = recipients.iter().map(|r| r.contact_id).collect();
        let external: Vec<&str> = recipients.iter().map(|r| r.external_id.as_str()).collect();
        let addresses: Vec<&str> = recipients.iter().map(|r| r.address.as_str()).collect();
        sqlx::query(
            "INSERT INTO campaign_recipients (campaign_id, account_id, contact_id, external_id, \
             address, status, attempts, updated_at) \
             SELECT $1, $2, c, e, a, 'queued', 0, $3 FROM UNNEST($4::BIGINT[], $5::TEXT[], $6::TEXT[]) AS t(c, e, a)",
        )
        .bind(id)
        .bind(account)
        .bind(to_ms(now))
        .bind(&contacts)
        .bind(&external)
        .bind(&addresses)
        .execute(&mut *tx)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        // The row lock taken here makes a concurrent freeze wait, then find it `sending`.
        let channel: Option<String> = sqlx::query_scalar(
            "UPDATE campaigns SET status = 'sending', frozen_at = $1, excluded = $2 \
             WHERE account_id = $3 AND id = $4 AND status IN ('draft', 'scheduled') \
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
        for chunk in freeze_ids(contacts).chunks(FREEZE_CHUNK) {
            let rows: Vec<ContactRow> = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {ADDRESS_COLUMNS} FROM contacts WHERE account_id = $1 AND id = ANY($2)"
            )))
            .bind(account)
            .bind(chunk)
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
            let ids: Vec<i64> = recipients.iter().map(|r| r.contact_id).collect();
            let external: Vec<&str> = recipients.iter().map(|r| r.external_id.as_str()).collect();
            let addresses: Vec<&str> = recipients.iter().map(|r| r.address.as_str()).collect();
            outcome.stored += sqlx::query(
                "INSERT INTO campaign_recipients (campaign_id, account_id, contact_id, external_id, \
                 address, status, attempts, updated_at) \
                 SELECT $1, $2, c, e, a, 'queued', 0, $3 \
                 FROM UNNEST($4::BIGINT[], $5::TEXT[], $6::TEXT[]) AS t(c, e, a)",
            )
            .bind(id)
            .bind(account)
            .bind(to_ms(now))
            .bind(&ids)
            .bind(&external)
            .bind(&addresses)
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
        // As on SQLite; `external_id` has the "C" collation: byte order.
        let sql = match status {
            Some(_) => format!(
                "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients \
                 WHERE campaign_id = $1 AND account_id = $2 AND status = $3::text \
                 AND external_id > coalesce($4::text, '') ORDER BY external_id LIMIT $5"
            ),
            None => format!(
                "SELECT {RECIPIENT_COLUMNS} FROM campaign_recipients \
                 WHERE campaign_id = $1 AND account_id = $2 AND $3::text IS NULL \
                 AND external_id > coalesce($4::text, '') ORDER BY external_id LIMIT $5"
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
             WHERE campaign_id = $1 AND account_id = $2 GROUP BY status",
        )
        .bind(id)
        .bind(account)
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
             WHERE account_id = $1 AND campaign_id = $2 ORDER BY external_id"
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
            "UPDATE campaign_recipients SET status = $1, reason = $2, attempts = $3, updated_at = $4 \
             WHERE account_id = $5 AND campaign_id = $6 AND contact_id = $7",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(i64::from(attempts))
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .bind(contact)
        .execute(&self.pool)
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
            "UPDATE campaigns SET status = 'sent', sent_at = $1 \
             WHERE account_id = $2 AND id = $3 AND status = 'sending' \
             AND NOT EXISTS (SELECT 1 FROM campaign_recipients \
                             WHERE campaign_id = campaigns.id AND status IN ('queued', 'sending'))",
        )
        .bind(to_ms(now))
        .bind(account)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(updated > 0)
    }

    async fn campaigns_to_run(&self, now: Timestamp) -> Result<Vec<CampaignToRun>> {
        let rows = sqlx::query(
            "SELECT account_id, id, status FROM campaigns \
             WHERE status IN ('sending', 'paused') OR (status = 'scheduled' AND scheduled_at <= $1) ORDER BY id",
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
            "UPDATE campaigns SET name = $1, channel = $2, content = $3, targets = $4, exclusions = $5, \
             scheduled_at = $6, rate_per_second = $7, \
             status = CASE WHEN $8::bigint IS NULL THEN 'draft' ELSE 'scheduled' END \
             WHERE account_id = $9 AND id = $10 AND status IN ('draft', 'scheduled')",
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
        .execute(&self.pool)
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
            "UPDATE campaigns SET status = $1, status_reason = $2 \
             WHERE account_id = $3 AND id = $4 AND status IN ({})",
            campaign_status_list(from)
        )))
        .bind(to.as_str())
        .bind(reason)
        .bind(account)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        self.transition(account, id, updated).await
    }

    async fn delete_campaign(&self, account: AccountId, id: CampaignId) -> Result<Transition> {
        let deleted = sqlx::query(
            "DELETE FROM campaigns WHERE account_id = $1 AND id = $2 \
             AND status IN ('draft', 'cancelled')",
        )
        .bind(account)
        .bind(id)
        .execute(&self.pool)
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
        let rows: Vec<RecipientRow> = sqlx::query_as(AssertSqlSafe(format!(
            // The due rows are chosen once (a materialized CTE): a plain `IN (SELECT …
            // LIMIT n)` may be scanned again for each updated row and yield more.
            "WITH due AS MATERIALIZED ( \
               SELECT contact_id FROM campaign_recipients \
               WHERE campaign_id = $5 AND status = 'queued' AND next_attempt_at <= $6 \
               ORDER BY next_attempt_at LIMIT $7 FOR UPDATE SKIP LOCKED) \
             UPDATE campaign_recipients r SET status = 'sending', attempts = r.attempts + 1, \
             first_attempt_at = coalesce(r.first_attempt_at, $1), updated_at = $2 \
             FROM due WHERE r.campaign_id = $3 AND r.account_id = $4 \
             AND r.contact_id = due.contact_id \
             RETURNING {}",
            RECIPIENT_COLUMNS
                .split(", ")
                .map(|c| format!("r.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(now)
        .bind(now)
        .bind(id)
        .bind(account)
        .bind(id)
        .bind(now)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
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
        let mut tx = self.pool.begin().await?;
        let mut changed = Vec::with_capacity(outcomes.len());
        for o in outcomes {
            let n = sqlx::query(
                "UPDATE campaign_recipients SET status = $1, reason = $2, attempts = $3, \
                 next_attempt_at = $4, updated_at = $5 \
                 WHERE campaign_id = $6 AND contact_id = $7 AND account_id = $8 AND status = 'sending'",
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE campaign_recipients SET status = 'unknown', reason = $1, updated_at = $2 \
             WHERE campaign_id = $3 AND account_id = $4 AND status = 'sending'",
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
             WHERE campaign_id = $1 AND status = 'queued' AND account_id = $2",
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
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(AssertSqlSafe(format!(
            "UPDATE campaign_recipients SET status = 'queued', reason = NULL, next_attempt_at = 0, \
             first_attempt_at = NULL, updated_at = $1 \
             WHERE campaign_id = $2 AND account_id = $3 AND status IN ({}) \
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
                 WHERE account_id = $1 AND id = $2 AND status = 'sent'",
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
        let mut tx = self.pool.begin().await?;
        let sql = match engagement {
            Engagement::Open => {
                "UPDATE campaign_recipients SET opened_at = $1 \
                 WHERE campaign_id = $2 AND contact_id = $3 AND account_id = $4 AND opened_at IS NULL"
            }
            Engagement::MachineOpen => {
                "UPDATE campaign_recipients SET updated_at = updated_at \
                 WHERE $1::bigint IS NOT NULL AND campaign_id = $2 AND contact_id = $3 AND account_id = $4"
            }
            Engagement::Click => {
                "UPDATE campaign_recipients SET clicked_at = $1 \
                 WHERE campaign_id = $2 AND contact_id = $3 AND account_id = $4 AND clicked_at IS NULL"
            }
            Engagement::Unsubscribe => {
                "UPDATE campaign_recipients SET unsubscribed_at = $1 \
                 WHERE campaign_id = $2 AND contact_id = $3 AND account_id = $4 \
                 AND unsubscribed_at IS NULL"
            }
            Engagement::Complaint => {
                "UPDATE campaign_recipients SET complained_at = $1 \
                 WHERE campaign_id = $2 AND contact_id = $3 AND account_id = $4 \
                 AND complained_at IS NULL"
            }
            Engagement::Bounce => {
                "UPDATE campaign_recipients SET status = 'bounced', \
                 reason = 'bounced after delivery', updated_at = $1 \
                 WHERE campaign_id = $2 AND contact_id = $3 AND account_id = $4 \
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
             WHERE campaign_id = $1 AND account_id = $2 ORDER BY hour, kind",
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
            "SELECT {ADDRESS_COLUMNS} FROM contacts WHERE account_id = $1 AND {column} = $2 LIMIT 100"
        )))
        .bind(account)
        .bind(address)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode_for_address).collect()
    }

    async fn existing_tracking_secret(&self, account: AccountId) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT secret FROM tracking_secrets WHERE account_id = $1")
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
        let id: i64 = sqlx::query_scalar(AssertSqlSafe(INSERT_IMPORT.replace('?', "$")))
            .bind(account)
            .bind(&import.file_name)
            .bind(columns_json(&import.columns))
            .bind(signed(import.file_bytes))
            .bind(to_ms(now))
            .fetch_one(&self.pool)
            .await?;
        self.import(account, id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("import {id} vanished")))
    }

    async fn import(&self, account: AccountId, id: ImportId) -> Result<Option<Import>> {
        let row = sqlx::query(AssertSqlSafe(SELECT_IMPORT.replace('?', "$")))
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
        let n = sqlx::query(AssertSqlSafe(START_IMPORT.replace('?', "$")))
            .bind(mapping.to_string())
            .bind(account)
            .bind(id)
            .execute(&self.pool)
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
        sqlx::query(AssertSqlSafe(IMPORT_PROGRESS.replace('?', "$")))
            .bind(signed(progress.bytes_read))
            .bind(signed(progress.rows_imported))
            .bind(signed(progress.rows_rejected))
            .bind(account)
            .bind(id)
            .execute(&self.pool)
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
        sqlx::query(AssertSqlSafe(FINISH_IMPORT.replace('?', "$")))
            .bind(status.as_str())
            .bind(signed(progress.bytes_read))
            .bind(signed(progress.rows_imported))
            .bind(signed(progress.rows_rejected))
            .bind(error)
            .bind(to_ms(now))
            .bind(account)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn interrupt_imports(&self, error: &str, now: Timestamp) -> Result<u64> {
        Ok(
            sqlx::query(AssertSqlSafe(INTERRUPT_IMPORTS.replace('?', "$")))
                .bind(error)
                .bind(to_ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn tracking_secret(&self, account: AccountId, candidate: &str) -> Result<String> {
        sqlx::query(
            "INSERT INTO tracking_secrets (account_id, secret) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(account)
        .bind(candidate)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM tracking_secrets WHERE account_id = $1")
                .bind(account)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

fn user_from_row(row: &PgRow) -> Result<User> {
    Ok(User {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

/// Serializes, inside one account, the transactions that read and rewrite contacts'
/// attributes. Released at commit or rollback.
async fn lock_contacts(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    account: AccountId,
) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('segmentd.contacts', $1))")
        .bind(account)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
