-- segmentd schema, version 6 (PostgreSQL): what a restart replays after an index
-- snapshot. Keep in step with ../sqlite/0006_replay_since_watermark.sql.
--
-- The server saves each account's index to a file with a `Watermark` (src/model.rs) and,
-- at start, replays only what the store received after it. Three positions make that
-- exact:
--
-- * contacts.rev: every upsert batch stamps the contacts it writes with one value of the
--   contact_rev sequence, taken once per batch; delete_field stamps the contacts whose
--   values it removes the same way. A sequence rather than a counter on the account's
--   row: updating that row in every upsert would lock it exclusively, and event batches
--   hold it FOR SHARE (0005). A value taken after a watermark is read is greater than
--   every value taken before; that no write of the account is in flight while the
--   watermark is read is the server's part (its per-account write gate). Rows older
--   than this migration get 0: they are older than any snapshot. The index carries id
--   so a page of changed ids is read from the index alone.
--
-- * contact_tombstones: delete_contact appends (account, seq, contact id) in its
--   transaction.
--
-- * events: replayed by id. Identity values are never given twice, so "after the
--   watermark" is simply "id above it"; SQLite needs more (see its 0006).
ALTER TABLE contacts ADD COLUMN rev BIGINT NOT NULL DEFAULT 0;
CREATE INDEX contacts_rev ON contacts (account_id, rev, id);
CREATE SEQUENCE contact_rev AS BIGINT;

CREATE TABLE contact_tombstones (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id  BIGINT NOT NULL
);
CREATE INDEX contact_tombstones_account ON contact_tombstones (account_id, seq);

-- The recipients list is shown a page at a time in external id order.
CREATE INDEX campaign_recipients_external ON campaign_recipients (campaign_id, external_id);
