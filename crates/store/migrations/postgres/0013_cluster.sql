-- segmentd schema, version 13 (PostgreSQL): the cluster's control plane and change log.
-- SQLite has an empty 0013: a cluster needs PostgreSQL.
--
-- Only a node started with `--cluster` sets the session setting `segmentd.node` (at
-- connect); every trigger below does nothing on a connection without it, so a single
-- segmentd keeps writing exactly as before.
--
-- * cluster_nodes: each node's lease, renewed every lease/3 from PostgreSQL's own clock
--   (no node's clock is trusted). A node is alive while `lease_until` is ahead.
-- * placements: each account's owner and follower. `epoch` goes up by one at every owner
--   change (a compare-and-set by the coordinator, who holds an advisory lock for the
--   transaction). `write_seq` counts the account's writes; `handoff_seq` is its value
--   when the owner last changed (the old owner's index holds exactly that much).
-- * cluster_log: per account and write_seq, what a write changed (ids only). Written by
--   the triggers in the write's own transaction, so it holds every committed write and
--   nothing else; followers apply it in seq order, reading the rows by id.
-- * replica_progress: how far each node's index has applied an account's log.
--
-- Fencing: the triggers take the account's placement row FOR UPDATE, and refuse
-- (SQLSTATE SD001) unless the writing node is the owner with a lease still ahead by
-- PostgreSQL's clock. The
-- coordinator's move updates that row, so it waits for every write in flight and every
-- write after it sees the new owner: a write is either before the move, in the log the
-- new owner catches up from, or refused and rolled back.

CREATE TABLE cluster_nodes (
    id           TEXT PRIMARY KEY,
    address      TEXT NOT NULL,
    lease_until  TIMESTAMPTZ NOT NULL,
    joined_at    TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE placements (
    account_id   BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    owner        TEXT NOT NULL,
    follower     TEXT,
    epoch        BIGINT NOT NULL DEFAULT 1,
    write_seq    BIGINT NOT NULL DEFAULT 0,
    handoff_seq  BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE cluster_log (
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('contacts', 'events', 'deleted', 'definitions')),
    ids          BIGINT[] NOT NULL,
    PRIMARY KEY (account_id, seq)
);

CREATE TABLE replica_progress (
    account_id   BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    node         TEXT NOT NULL,
    applied_seq  BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (account_id, node)
);

-- The writing node, or NULL outside a cluster.
CREATE FUNCTION segmentd_node() RETURNS TEXT LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('segmentd.node', true), '')
$$;

-- Refuses unless `node` owns `account` with a live lease; with `bump`, takes the next
-- write_seq, else only checks; either way the placement row stays locked FOR UPDATE until
-- commit (one lock mode for every writer, so no transaction ever upgrades a shared lock
-- another also holds: that would deadlock).
CREATE FUNCTION segmentd_fence(account BIGINT, node TEXT, bump BOOLEAN) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    seq BIGINT;
BEGIN
    IF bump THEN
        UPDATE placements p SET write_seq = p.write_seq + 1
          FROM cluster_nodes n
         WHERE p.account_id = account AND p.owner = node
           AND n.id = node AND n.lease_until > clock_timestamp()
        RETURNING p.write_seq INTO seq;
    ELSE
        SELECT p.write_seq INTO seq FROM placements p JOIN cluster_nodes n ON n.id = p.owner
         WHERE p.account_id = account AND p.owner = node AND n.lease_until > clock_timestamp()
           FOR UPDATE OF p;
    END IF;
    IF seq IS NULL THEN
        RAISE EXCEPTION 'node % does not own account % (or its lease lapsed)', node, account
            USING ERRCODE = 'SD001';
    END IF;
    RETURN seq;
END $$;

-- One log entry per account a statement wrote, with the ids it wrote.
CREATE FUNCTION segmentd_log_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := segmentd_node();
BEGIN
    IF node IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO cluster_log (account_id, seq, kind, ids)
    SELECT w.account_id, segmentd_fence(w.account_id, node, true), TG_ARGV[0], w.ids
      FROM (SELECT account_id, array_agg(id ORDER BY id) AS ids
              FROM changed GROUP BY account_id) w;
    RETURN NULL;
END $$;

-- Tombstones log the deleted contact ids.
CREATE FUNCTION segmentd_log_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := segmentd_node();
BEGIN
    IF node IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO cluster_log (account_id, seq, kind, ids)
    SELECT w.account_id, segmentd_fence(w.account_id, node, true), 'deleted', w.ids
      FROM (SELECT account_id, array_agg(contact_id ORDER BY seq) AS ids
              FROM changed GROUP BY account_id) w;
    RETURN NULL;
END $$;

-- Fields and segments: followers read the definitions again.
CREATE FUNCTION segmentd_log_definitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := segmentd_node();
BEGIN
    IF node IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO cluster_log (account_id, seq, kind, ids)
    SELECT w.account_id, segmentd_fence(w.account_id, node, true), 'definitions', '{}'
      FROM (SELECT DISTINCT account_id FROM changed) w;
    RETURN NULL;
END $$;

-- Writes that followers need not see, but only the owner may make.
CREATE FUNCTION segmentd_check_owner() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    node TEXT := segmentd_node();
BEGIN
    IF node IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM segmentd_fence(w.account_id, node, false)
       FROM (SELECT DISTINCT account_id FROM changed) w;
    RETURN NULL;
END $$;

-- The triggers that call these are installed by the first cluster node to connect
-- (src/postgres/cluster_triggers.sql): a database that never runs a cluster pays
-- nothing for them (a statement trigger with a transition table copies every row it
-- sees, even when its function then does nothing).
