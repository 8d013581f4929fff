-- segmentd schema, version 5 (SQLite): the events table laid out for ingest.
--
-- Why: the index on (contact_id, id) took each new event at a random place, so a batch
-- of 10,000 events dirtied thousands of index pages and every commit wrote them all to
-- the WAL; the more events stored, the slower ingest became (about 110,000 rows/s at 1M
-- events, 75,000 at 3M, measured with the bench schema). Keyed first by the arrival
-- bucket (id >> 16: 65,536 events), a batch lands in the newest bucket's few pages and
-- the cost stays flat as the table grows. A contact's timeline reads one short range per
-- bucket (see `contact_events` in src/sqlite.rs): 5 ms for 3,000 events among 3M.
--
-- The foreign keys of events go as well: each cost a parent lookup per row. The store
-- resolves a batch's contacts itself and checks, under the write lock, that none was
-- deleted since (the accounts.contact_deletions count added below); it deletes a
-- contact's events itself, in the transaction that deletes the contact.
--
-- PostgreSQL's 0005 drops its foreign keys of events too but keeps (contact_id, id): its
-- WAL logs index entries, not whole pages, and its buffers are written in the background.

-- Two more per-row costs go (bulk inserts of the bench's rows, measured here with the
-- bucket index and no foreign keys: 200,000 rows/s as in 0001, 300,000 without both):
-- the CHECK on kind is spelled as a chain of comparisons, because `kind IN (...)` cost
-- a quarter of the insert time; and the id is a plain INTEGER PRIMARY KEY, a new row
-- taking the largest id + 1, so ids still follow the arrival order. Without
-- AUTOINCREMENT a deleted newest id may be given again, which nothing relies on: event
-- ids are never shown or kept elsewhere.
CREATE TABLE events_v5 (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    contact_id  INTEGER NOT NULL,
    kind        TEXT NOT NULL
                CHECK (kind = 'MailOpen' OR kind = 'MailClick' OR kind = 'SmsClick'
                       OR kind = 'PushClick' OR kind = 'custom' OR kind = 'visit'),
    name        TEXT,
    ts          INTEGER NOT NULL,
    campaign    TEXT,
    url         TEXT,
    properties  TEXT,
    client_id   TEXT,
    UNIQUE (account_id, client_id)
);

INSERT INTO events_v5 (id, account_id, contact_id, kind, name, ts, campaign, url, properties, client_id)
SELECT id, account_id, contact_id, kind, name, ts, campaign, url, properties, client_id
FROM events ORDER BY id;

DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;

-- One contact's timeline, bucket by bucket: (id >> 16) is the arrival bucket.
CREATE INDEX events_contact ON events ((id >> 16), contact_id);

-- How many contacts each account has deleted: an event batch looks its contacts up on a
-- read connection, then, under the write lock, re-reads this count to know whether any
-- of them can have gone in between (src/sqlite.rs, insert_events).
ALTER TABLE accounts ADD COLUMN contact_deletions INTEGER NOT NULL DEFAULT 0;
