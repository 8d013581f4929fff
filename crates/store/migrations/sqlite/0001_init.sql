-- segmentd schema, version 1 (SQLite). Keep in step with ../postgres/0001_init.sql.
-- Every table carries account_id; every query filters by it.
-- Timestamps are INTEGER milliseconds since the Unix epoch.

CREATE TABLE accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Hex SHA-256 of each API key; the key itself is never stored.
CREATE TABLE api_keys (
    key_hash    TEXT NOT NULL PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
);
CREATE INDEX api_keys_account ON api_keys (account_id);

CREATE TABLE fields (
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    key         TEXT NOT NULL,
    label       TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean')),
    PRIMARY KEY (account_id, key)
);

-- external_id is compared in byte order (SQLite's default BINARY collation).
-- push_tokens: JSON array of strings; fields: JSON object {key: value}.
CREATE TABLE contacts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    external_id   TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    email_status  TEXT CHECK (email_status IN ('subscribed', 'unsubscribed', 'bounced')),
    sms_status    TEXT CHECK (sms_status IN ('subscribed', 'unsubscribed')),
    push_tokens   TEXT NOT NULL DEFAULT '[]',
    fields        TEXT NOT NULL DEFAULT '{}',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (account_id, external_id)
);

-- System events, custom events and visits in one table; id is the arrival order.
-- client_id is unique per account across kinds (NULLs never collide).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL
                CHECK (kind IN ('MailOpen', 'MailClick', 'SmsClick', 'PushClick', 'custom', 'visit')),
    name        TEXT,
    ts          INTEGER NOT NULL,
    campaign    TEXT,
    url         TEXT,
    properties  TEXT,
    client_id   TEXT,
    UNIQUE (account_id, client_id)
);
-- One contact's timeline in arrival order.
-- One index serves a contact's timeline (contact_id, id) and the ON DELETE CASCADE from
-- contacts; a contact id already names its account. Fewer indexes, faster ingest.
CREATE INDEX events_contact ON events (contact_id, id);

-- name_key is the name lowercased (Rust's str::to_lowercase), for case-insensitive
-- uniqueness. rule is the canonical JSON of the rule.
CREATE TABLE segments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id   INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    name_key     TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    rule         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    UNIQUE (account_id, name_key)
);
