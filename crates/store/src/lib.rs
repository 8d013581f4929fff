//! Persistence for segmentd: one [`Store`] trait, one implementation per backend.
//!
//! The backend is chosen by the database URL ([`open`]): `sqlite://PATH` (the embedded
//! default) or `postgres://…`. Each backend has its own migrations, with the same version
//! numbers, embedded in the binary and applied by `open`. SQL lives only in this crate.
//!
//! Invariants: every row belongs to an account and every call names the account, so no
//! call can reach another account's data; a call that returns `Ok` has committed its
//! writes; a batch is one transaction, stored whole or not at all.

pub mod campaign;
mod campaign_rows;
pub mod cluster;
mod common;
pub mod import;
pub mod model;
mod postgres;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::Timestamp;
use segmentd_rules::SegmentId;

pub use campaign::*;
pub use import::*;
pub use model::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the text names what was taken (a field key, a
    /// segment name).
    #[error("already exists: {0}")]
    Conflict(String),
    /// Items of an event batch name contacts that do not exist (indexes into the batch).
    #[error("unknown contacts at batch indexes {0:?}")]
    UnknownContacts(Vec<usize>),
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row could not be read back (for example a value no longer parses).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("a cluster needs PostgreSQL, not {0:?}")]
    ClusterNeedsPostgres(String),
}

impl StoreError {
    /// The database refused the write because this node does not own the account (or
    /// its lease lapsed): nothing of the transaction is stored (migration 0013).
    pub fn is_not_owner(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(e)) => e.code().as_deref() == Some("SD001"),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything segmentd keeps. Implemented by [`sqlite::SqliteStore`] and
/// [`postgres::PostgresStore`]; both must pass the conformance suite in `tests/`.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Which backend this is: `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    // Accounts and API keys.
    async fn create_account(&self, name: &str, time_zone: &str) -> Result<Account>;
    async fn account(&self, id: AccountId) -> Result<Option<Account>>;
    async fn accounts(&self) -> Result<Vec<Account>>;
    /// Stores the hash of a new API key (hex of SHA-256); the key itself is never stored.
    async fn add_api_key(&self, account: AccountId, key_hash: &str) -> Result<()>;
    /// The account of a key that is not revoked.
    async fn account_by_api_key(&self, key_hash: &str) -> Result<Option<Account>>;
    /// Stores a named key.
    async fn create_api_key(
        &self,
        account: AccountId,
        key: &NewApiKey,
        now: Timestamp,
    ) -> Result<ApiKey>;
    /// A key that is not revoked, with its account.
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<(Account, ApiKey)>>;
    /// The account's keys, revoked ones too, oldest first.
    async fn api_keys(&self, account: AccountId) -> Result<Vec<ApiKey>>;
    /// Revokes the key `id` of the account; `false` if there is no such key not yet
    /// revoked.
    async fn revoke_api_key(&self, account: AccountId, id: &str, now: Timestamp) -> Result<bool>;
    /// Records that the key was used at `now`.
    async fn touch_api_key(&self, key_hash: &str, now: Timestamp) -> Result<()>;

    // Custom field definitions.
    /// `Conflict` when the key is taken in this account.
    async fn create_field(&self, account: AccountId, field: &FieldDef) -> Result<()>;
    /// Sorted by key.
    async fn fields(&self, account: AccountId) -> Result<Vec<FieldDef>>;
    /// Deletes the definition and every contact's value of it. `false` if unknown.
    async fn delete_field(&self, account: AccountId, key: &str) -> Result<bool>;

    // Contacts.
    /// Upserts by external id in one transaction; returns how many items were applied.
    async fn upsert_contacts(&self, account: AccountId, batch: &[ContactUpsert]) -> Result<u64>;
    async fn contact(&self, account: AccountId, external_id: &str) -> Result<Option<Contact>>;
    /// Contacts sorted by external id (byte order), strictly after `after`.
    async fn contacts_page(
        &self,
        account: AccountId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Contact>>;
    /// Every contact of the account, sorted by external id.
    async fn all_contacts(&self, account: AccountId) -> Result<Vec<Contact>>;
    /// Deletes the contact with its events and visits. `false` if unknown.
    async fn delete_contact(&self, account: AccountId, external_id: &str) -> Result<bool>;

    // Events and visits.
    /// Stores a batch in one transaction. An event whose client id is already stored in
    /// the account (or earlier in the same batch) is counted as a duplicate and skipped.
    /// `UnknownContacts` (and nothing stored) when items name unknown contacts.
    async fn insert_events(&self, account: AccountId, batch: &[NewEvent]) -> Result<InsertOutcome>;
    /// Every event of the account in arrival order.
    async fn all_events(&self, account: AccountId) -> Result<Vec<StoredEvent>>;
    /// One contact's events in arrival order.
    async fn contact_events(
        &self,
        account: AccountId,
        contact: ContactId,
    ) -> Result<Vec<StoredEvent>>;

    // Replaying what was written after an index snapshot (migration 0006).
    //
    // A replay reads the deletions, then the changed contacts, then the events, each
    // against the watermark the snapshot was taken at. The reads are exact when no write
    // of the account was in flight while the watermark was read (the server's write
    // gate); pages of one replay assume the account is not written between them.
    /// Where the account's data stands now; see [`Watermark`].
    async fn watermark(&self, account: AccountId) -> Result<Watermark>;
    /// The contacts written (upserted, or stripped of a deleted field's values) after
    /// `since`, as they are now, sorted by id, strictly after `after_id`. A contact
    /// deleted since is not among them (see `contacts_deleted_since`). Each page reads
    /// the index entries of every contact changed since: use large pages.
    async fn contacts_changed_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after_id: Option<ContactId>,
        limit: u32,
    ) -> Result<Vec<Contact>>;
    /// The ids of the contacts deleted after `since`, in deletion order. A contact
    /// deleted and then made again from its external id has a new id: the old id is
    /// here, the new contact in `contacts_changed_since`.
    async fn contacts_deleted_since(
        &self,
        account: AccountId,
        since: &Watermark,
    ) -> Result<Vec<ContactId>>;
    /// The events stored after `since` (and not deleted with their contact since), with
    /// their ids, sorted by id, strictly after `after` (the last id of the previous
    /// page). Ids are positions only: on SQLite a deleted contact's ids can be given
    /// again, which the store accounts for here.
    async fn events_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<(i64, StoredEvent)>>;

    // Segments.
    /// `Conflict` when the name is taken in the account, compared case-insensitively.
    async fn create_segment(
        &self,
        account: AccountId,
        draft: &SegmentDraft,
        now: Timestamp,
    ) -> Result<Segment>;
    /// `Ok(None)` if unknown; `Conflict` as for create.
    async fn update_segment(
        &self,
        account: AccountId,
        id: SegmentId,
        draft: &SegmentDraft,
        now: Timestamp,
    ) -> Result<Option<Segment>>;
    async fn segment(&self, account: AccountId, id: SegmentId) -> Result<Option<Segment>>;
    /// Sorted by id; `search` keeps those whose name contains it, case-insensitively.
    async fn segments(&self, account: AccountId, search: Option<&str>) -> Result<Vec<Segment>>;
    /// `false` if unknown.
    async fn delete_segment(&self, account: AccountId, id: SegmentId) -> Result<bool>;

    // Users and sessions.
    /// `Conflict` when the e-mail address is taken anywhere, compared case-insensitively
    /// (addresses sign users in, so they are unique across accounts).
    async fn create_user(
        &self,
        account: AccountId,
        email: &str,
        password_hash: &str,
        now: Timestamp,
    ) -> Result<User>;
    /// The user signing in with `email` (any case), whatever the account.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    /// The account's users, sorted by id.
    async fn users(&self, account: AccountId) -> Result<Vec<User>>;
    /// Replaces a user's password hash; `false` if the user is not in the account.
    async fn set_password_hash(
        &self,
        account: AccountId,
        user: UserId,
        password_hash: &str,
    ) -> Result<bool>;
    /// Stores a new session; `false` (and nothing stored) unless the user belongs to
    /// `session.account_id`.
    async fn create_session(&self, session: &NewSession) -> Result<bool>;
    /// The session with this token hash, if it has not expired (nor idled out) at `now`.
    async fn session(&self, token_hash: &str, now: Timestamp) -> Result<Option<Session>>;
    /// Pushes a session's idle end to `idle_until`.
    async fn touch_session(&self, token_hash: &str, idle_until: Timestamp) -> Result<()>;
    /// Ends a session (sign-out); `false` if there was none.
    async fn delete_session(&self, token_hash: &str) -> Result<bool>;
    /// The failed sign-ins counted under `key` since `since` (0 when its window began
    /// earlier), and when that window began.
    async fn sign_in_failures(&self, key: &str, since: Timestamp) -> Result<(u32, Timestamp)>;
    /// Counts one failed sign-in under `key` at `now`, in a new window when the last one
    /// began before `since`.
    async fn record_sign_in_failure(
        &self,
        key: &str,
        now: Timestamp,
        since: Timestamp,
    ) -> Result<()>;
    /// Forgets `key`'s failures (a successful sign-in).
    async fn clear_sign_in_failures(&self, key: &str) -> Result<()>;
    /// Deletes the sessions expired at `now`; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<u64>;

    // Contacts by id, and membership changes.
    /// The contacts with these ids, in the order asked; unknown ids are skipped.
    async fn contacts_by_ids(&self, account: AccountId, ids: &[ContactId]) -> Result<Vec<Contact>>;
    /// The contacts with these external ids, in the order asked; unknown ones are skipped.
    async fn contacts_by_external_ids(
        &self,
        account: AccountId,
        external_ids: &[String],
    ) -> Result<Vec<Contact>>;
    /// Appends membership changes to the log, in one transaction.
    async fn record_changes(&self, account: AccountId, changes: &[ChangeRecord]) -> Result<()>;
    /// A segment's changes in log order, strictly after `after` (a `seq`).
    async fn changes_page(
        &self,
        account: AccountId,
        segment: SegmentId,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredChange>>;
    /// The account's changes (every segment) logged after `since` (its `change_seq`) and
    /// after `after` (a `seq`), in log order: what a restart from an index snapshot
    /// compares its replay with.
    async fn changes_since(
        &self,
        account: AccountId,
        since: &Watermark,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredChange>>;
    /// A segment's changes counted per 15-minute bucket, oldest first.
    async fn change_buckets(
        &self,
        account: AccountId,
        segment: SegmentId,
    ) -> Result<Vec<ChangeBucket>>;
    /// Membership as the log has it: each (segment, contact, external id) whose latest
    /// change is an entry.
    async fn logged_members(
        &self,
        account: AccountId,
    ) -> Result<Vec<(SegmentId, ContactId, String)>>;

    // Campaigns.
    async fn create_campaign(
        &self,
        account: AccountId,
        draft: &CampaignDraft,
        now: Timestamp,
    ) -> Result<Campaign>;
    async fn campaign(&self, account: AccountId, id: CampaignId) -> Result<Option<Campaign>>;
    /// Sorted by id.
    async fn campaigns(&self, account: AccountId) -> Result<Vec<Campaign>>;
    /// In one transaction: when the campaign is `Draft` or `Scheduled`, stores its
    /// recipients (`Queued`, deduplicated by the caller) and the excluded counts and makes
    /// it `Sending`. `false`, and nothing stored, when it is unknown or already frozen.
    async fn freeze_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        recipients: &[NewRecipient],
        excluded: &serde_json::Value,
        now: Timestamp,
    ) -> Result<bool>;
    /// In one transaction, when the campaign is `Draft` or `Scheduled`: reads the listed
    /// contacts (a chunk of ids at a time, never all at once), stores as `Queued`
    /// recipients those [`Contact::address`] reaches on the campaign's channel, stores
    /// `excluded` and makes the campaign `Sending`. Unknown ids and contacts that cannot
    /// be reached now are counted and skipped; an id listed twice is stored once.
    /// `frozen: false`, and nothing stored, when the campaign is unknown or already
    /// frozen. On SQLite the transaction holds the one writer throughout.
    async fn freeze_campaign_for(
        &self,
        account: AccountId,
        id: CampaignId,
        contacts: &[ContactId],
        excluded: &serde_json::Value,
        now: Timestamp,
    ) -> Result<FreezeOutcome>;
    /// The frozen recipients, sorted by external id.
    async fn campaign_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Vec<Recipient>>;
    /// How many frozen recipients are in each status (one grouped count, no rows read
    /// out).
    async fn recipient_counts(&self, account: AccountId, id: CampaignId)
    -> Result<RecipientCounts>;
    /// A page of the frozen recipients (only those in `status`, when given), sorted by
    /// external id, strictly after `after_external_id`.
    async fn campaign_recipients_page(
        &self,
        account: AccountId,
        id: CampaignId,
        status: Option<RecipientStatus>,
        after_external_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Recipient>>;
    /// Sets one recipient's status, reason and attempt count (committed on return).
    #[allow(clippy::too_many_arguments)]
    async fn update_recipient(
        &self,
        account: AccountId,
        id: CampaignId,
        contact: ContactId,
        status: RecipientStatus,
        reason: Option<&str>,
        attempts: u32,
        now: Timestamp,
    ) -> Result<()>;
    /// `Sending` → `Sent` when no recipient is queued or sending; `false` (nothing
    /// changed) otherwise.
    async fn finish_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        now: Timestamp,
    ) -> Result<bool>;
    /// Across accounts: campaigns `Sending` or `Paused`, and `Scheduled` ones due at
    /// `now`.
    async fn campaigns_to_run(&self, now: Timestamp) -> Result<Vec<CampaignToRun>>;
    /// Changes a `Draft` or `Scheduled` campaign to what `draft` says (its status
    /// following `scheduled_at`).
    async fn update_campaign(
        &self,
        account: AccountId,
        id: CampaignId,
        draft: &CampaignDraft,
    ) -> Result<Transition>;
    /// Moves the campaign to `to` (with `reason`, cleared when `None`) if it is in one
    /// of `from`.
    async fn set_campaign_status(
        &self,
        account: AccountId,
        id: CampaignId,
        from: &[CampaignStatus],
        to: CampaignStatus,
        reason: Option<&str>,
    ) -> Result<Transition>;
    /// Deletes a `Draft` or `Cancelled` campaign.
    async fn delete_campaign(&self, account: AccountId, id: CampaignId) -> Result<Transition>;
    /// In one statement: up to `limit` queued recipients due at `now` (soonest first)
    /// become `Sending` with one more attempt (the first one's time kept), and are
    /// returned as they are now.
    async fn claim_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Recipient>>;
    /// In one transaction: each outcome's recipient, if still `Sending`, takes its
    /// status, reason, attempts and next attempt time; final ones are counted into the
    /// hour's activity.
    async fn record_outcomes(
        &self,
        account: AccountId,
        id: CampaignId,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<()>;
    /// Recipients left `Sending` (a run stopped mid-attempt) become `Unknown` with
    /// `reason`; how many.
    async fn settle_interrupted(
        &self,
        account: AccountId,
        id: CampaignId,
        reason: &str,
        now: Timestamp,
    ) -> Result<u64>;
    /// When the soonest queued recipient is due, if any is queued.
    async fn next_attempt_at(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Option<Timestamp>>;
    /// Recipients in `statuses` whose contact can still be reached on the campaign's
    /// channel are queued again (due at once, attempts kept); a `Sent` campaign with
    /// any becomes `Sending`. How many.
    async fn requeue_recipients(
        &self,
        account: AccountId,
        id: CampaignId,
        statuses: &[RecipientStatus],
        now: Timestamp,
    ) -> Result<u64>;
    /// Records what a recipient did: `true` when it counted (the first open or click of
    /// the recipient, every machine open, the first unsubscribe or complaint, a bounce
    /// of a message that had been sent). `false` for a contact the campaign never had.
    async fn record_engagement(
        &self,
        account: AccountId,
        id: CampaignId,
        contact: ContactId,
        engagement: Engagement,
        now: Timestamp,
    ) -> Result<bool>;
    /// The campaign's activity per hour and kind, oldest first.
    async fn campaign_activity(
        &self,
        account: AccountId,
        id: CampaignId,
    ) -> Result<Vec<ActivityBucket>>;
    /// The contacts (at most 100, addresses only) whose e-mail address (or phone number,
    /// for SMS; push has none) is `address`, exactly.
    async fn contacts_by_address(
        &self,
        account: AccountId,
        channel: Channel,
        address: &str,
    ) -> Result<Vec<Contact>>;
    /// The account's tracking-link key: the stored one, or `candidate`, stored now.
    async fn tracking_secret(&self, account: AccountId, candidate: &str) -> Result<String>;
    /// The account's tracking-link key if one was ever made (nothing is written).
    async fn existing_tracking_secret(&self, account: AccountId) -> Result<Option<String>>;

    // CSV imports ------------------------------------------------------------------------
    /// Records an uploaded file, status `uploaded`.
    async fn create_import(
        &self,
        account: AccountId,
        import: &NewImport,
        now: Timestamp,
    ) -> Result<Import>;
    async fn import(&self, account: AccountId, id: ImportId) -> Result<Option<Import>>;
    /// `uploaded` → `running` with its mapping; `false` if it was not `uploaded` (already
    /// started, finished, or not this account's).
    async fn start_import(
        &self,
        account: AccountId,
        id: ImportId,
        mapping: &serde_json::Value,
    ) -> Result<bool>;
    /// Records how far a running import has gone.
    async fn import_progress(
        &self,
        account: AccountId,
        id: ImportId,
        progress: &ImportProgress,
    ) -> Result<()>;
    /// A running import ends `done` or `failed` (with `error`).
    async fn finish_import(
        &self,
        account: AccountId,
        id: ImportId,
        status: ImportStatus,
        progress: &ImportProgress,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<()>;
    /// At start-up: imports left `running` by a stopped process become `failed` with
    /// `error` (every account's: no process runs them any more); how many.
    async fn interrupt_imports(&self, error: &str, now: Timestamp) -> Result<u64>;
}

/// Opens (creating and migrating as needed) the store a database URL names.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresStore::open(url).await?))
    } else {
        Err(StoreError::BadUrl(url.to_owned()))
    }
}

/// Opens a PostgreSQL store as cluster node `node`: every connection names the node, so
/// the database logs and fences its writes (migration 0013).
pub async fn open_cluster(
    url: &str,
    node: &str,
) -> Result<(Arc<dyn Store>, Arc<dyn cluster::ClusterStore>)> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(StoreError::ClusterNeedsPostgres(url.to_owned()));
    }
    let store = Arc::new(postgres::PostgresStore::open_as_node(url, node).await?);
    Ok((store.clone(), store))
}
