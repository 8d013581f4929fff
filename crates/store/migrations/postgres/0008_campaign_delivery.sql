-- segmentd schema, version 8 (PostgreSQL): campaigns that pause, resume and get
-- cancelled, recipients retried over hours, hard bounces and unknown outcomes,
-- engagement per recipient and per hour. See the SQLite file for the columns' meaning.

ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check
    CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'sent', 'cancelled'));
ALTER TABLE campaigns ADD COLUMN status_reason TEXT;
ALTER TABLE campaigns ADD COLUMN rate_per_second BIGINT;

ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_status_check;
ALTER TABLE campaign_recipients ADD CONSTRAINT campaign_recipients_status_check
    CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'bounced', 'unknown'));
ALTER TABLE campaign_recipients ADD COLUMN next_attempt_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE campaign_recipients ADD COLUMN first_attempt_at BIGINT;
ALTER TABLE campaign_recipients ADD COLUMN opened_at BIGINT;
ALTER TABLE campaign_recipients ADD COLUMN clicked_at BIGINT;
ALTER TABLE campaign_recipients ADD COLUMN unsubscribed_at BIGINT;
ALTER TABLE campaign_recipients ADD COLUMN complained_at BIGINT;

CREATE INDEX campaign_recipients_status ON campaign_recipients
    (campaign_id, status, external_id);
CREATE INDEX campaign_recipients_due ON campaign_recipients
    (campaign_id, status, next_attempt_at);

CREATE TABLE campaign_activity (
    campaign_id BIGINT NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    account_id  BIGINT NOT NULL,
    hour        BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    n           BIGINT NOT NULL,
    PRIMARY KEY (campaign_id, kind, hour)
);

CREATE INDEX contacts_email ON contacts (account_id, email);
CREATE INDEX contacts_phone ON contacts (account_id, phone);
