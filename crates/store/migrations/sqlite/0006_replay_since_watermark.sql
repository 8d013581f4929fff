-- segmentd schema, version 6 (SQLite): what a restart replays after an index snapshot.
-- Keep in step with ../postgres/0006_replay_since_watermark.sql.
--
-- The server saves each account's index to a file with a `Watermark` (src/model.rs) and,
-- at start, replays only what the store received after it. Three positions make that
-- exact:
--
-- * contacts.rev: every upsert batch stamps the contacts it writes with the account's
--   next revision (accounts.contact_rev, bumped once per batch in its transaction; one
--   writer, so revisions follow commit order); delete_field stamps the contacts whose
--   values it removes the same way. Rows older than this migration get 0: they are
--   older than any snapshot. The index on (account_id, rev) finds the changed ones (its
--   entries carry the rowid, so the id comes with them).
--
-- * contact_tombstones: delete_contact appends (account, seq, contact id) in its
--   transaction. AUTOINCREMENT: a seq is never given twice, even if rows went.
--
-- * events: replayed by id. Since 0005 an event id is the largest id + 1 (no
--   AUTOINCREMENT, for ingest speed), so deleting the contact that owns the newest events
--   lets their ids be given again, to new events, below a snapshot's watermark. Each
--   tombstone therefore records events_max, the table's largest remaining event id right
--   after the deletion. Every event stored after a watermark has an id above
--   min(watermark, events_max of every tombstone after it): the largest id only falls at
--   a deletion, and a new id is the largest + 1. Every older event still stored has an
--   id at or below it (it was there after each of those deletions). The ids are shared
--   by all accounts, so the tombstones of every account count (only their events_max is
--   read, never their rows).
ALTER TABLE accounts ADD COLUMN contact_rev INTEGER NOT NULL DEFAULT 0;
ALTER TABLE contacts ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
CREATE INDEX contacts_rev ON contacts (account_id, rev);

CREATE TABLE contact_tombstones (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL,
    events_max  INTEGER NOT NULL
);
CREATE INDEX contact_tombstones_account ON contact_tombstones (account_id, seq);

-- The recipients list is shown a page at a time in external id order.
CREATE INDEX campaign_recipients_external ON campaign_recipients (campaign_id, external_id);
