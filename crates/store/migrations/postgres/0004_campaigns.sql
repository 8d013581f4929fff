-- Campaigns and their frozen recipient lists. `targets`/`exclusions` are JSON arrays of
-- segment ids (a deleted segment leaves a dangling id, refused when the campaign is sent).
CREATE TABLE campaigns (
    id          BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    channel     TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'push')),
    content     TEXT NOT NULL,
    targets     TEXT NOT NULL,
    exclusions  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'sent')),
    scheduled_at BIGINT,
    created_at  BIGINT NOT NULL,
    frozen_at   BIGINT,
    sent_at     BIGINT,
    excluded    TEXT
);
CREATE INDEX campaigns_account ON campaigns (account_id, id);

-- One row per recipient, written once when the campaign is sent; only status, reason and
-- attempts change afterwards. Rows stay if the contact is deleted (the list is an audit).
CREATE TABLE campaign_recipients (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    contact_id  BIGINT NOT NULL,
    external_id TEXT COLLATE "C" NOT NULL,
    address     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'failed')),
    reason      TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, contact_id)
);

-- The key that signs an account's tracking links; made once, kept across restarts.
CREATE TABLE tracking_secrets (
    account_id BIGINT PRIMARY KEY REFERENCES accounts (id) ON DELETE CASCADE,
    secret     TEXT NOT NULL
);
