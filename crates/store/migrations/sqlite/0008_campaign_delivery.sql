-- segmentd schema, version 8 (SQLite): campaigns that pause, resume and get cancelled,
-- recipients retried over hours, hard bounces and unknown outcomes, engagement per
-- recipient and per hour.
--
-- SQLite cannot change a CHECK constraint, so both campaign tables are built anew and
-- the rows copied. The old recipients table goes first: dropping the old campaigns
-- table while it still referred to it would cascade and delete every recipient.

CREATE TABLE campaigns_v8 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    content     TEXT NOT NULL,
    targets     TEXT NOT NULL,
    exclusions  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'paused',
                                                'sent', 'cancelled')),
    scheduled_at INTEGER,
    created_at  INTEGER NOT NULL,
    frozen_at   INTEGER,
    sent_at     INTEGER,
    excluded    TEXT,
    -- Why the campaign is paused (by hand, or after too many errors in a row).
    status_reason TEXT,
    -- At most this many messages a second for this campaign; NULL: no own limit.
    rate_per_second INTEGER
);
INSERT INTO campaigns_v8 (id, account_id, name, channel, content, targets, exclusions, status,
                          scheduled_at, created_at, frozen_at, sent_at, excluded)
SELECT id, account_id, name, channel, content, targets, exclusions, status,
       scheduled_at, created_at, frozen_at, sent_at, excluded
FROM campaigns;

-- `sending` is committed before an attempt; `unknown` is an attempt whose outcome never
-- came back (a timeout after the message went out, a crash mid-attempt): never retried
-- blindly. `bounced` is a hard bounce. A `queued` row is due at `next_attempt_at` (0:
-- at once); `first_attempt_at` bounds how long temporary failures are retried.
CREATE TABLE campaign_recipients_v8 (
    campaign_id INTEGER NOT NULL REFERENCES campaigns_v8 (id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    address     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed',
                                                'bounced', 'unknown')),
    reason      TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    updated_at  INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL DEFAULT 0,
    first_attempt_at INTEGER,
    opened_at        INTEGER,
    clicked_at       INTEGER,
    unsubscribed_at  INTEGER,
    complained_at    INTEGER,
    PRIMARY KEY (campaign_id, contact_id)
);
INSERT INTO campaign_recipients_v8 (campaign_id, account_id, contact_id, external_id, address,
                                    status, reason, attempts, updated_at)
SELECT campaign_id, account_id, contact_id, external_id, address, status, reason, attempts,
       updated_at
FROM campaign_recipients;

DROP TABLE campaign_recipients;
DROP TABLE campaigns;
ALTER TABLE campaigns_v8 RENAME TO campaigns;
ALTER TABLE campaign_recipients_v8 RENAME TO campaign_recipients;

CREATE INDEX campaigns_account ON campaigns (account_id, id);
-- The recipients list is shown a page at a time in external id order, all or by status.
CREATE INDEX campaign_recipients_external ON campaign_recipients (campaign_id, external_id);
CREATE INDEX campaign_recipients_status ON campaign_recipients
    (campaign_id, status, external_id);
-- Delivery claims the due queued recipients, soonest first.
CREATE INDEX campaign_recipients_due ON campaign_recipients
    (campaign_id, status, next_attempt_at);

-- What happened in a campaign, counted per hour: sent, failed, bounced, unknown, open
-- (a recipient's first human open), machine_open, click (first), unsubscribe, complaint.
CREATE TABLE campaign_activity (
    campaign_id INTEGER NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL,
    hour        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, kind, hour)
);

-- Bounces, complaints and SMS replies name an address: found through these.
CREATE INDEX contacts_email ON contacts (account_id, email);
CREATE INDEX contacts_phone ON contacts (account_id, phone);
