-- Every change of a saved segment's membership: a contact entered or exited, and when.
-- The change feed, the daily history and the start-up diff read it. A contact's rows stay
-- after the contact is deleted (its exit is history); a segment's go with the segment.
CREATE TABLE membership_changes (
    seq         BIGSERIAL PRIMARY KEY,
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    segment_id  BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id  BIGINT NOT NULL,
    external_id TEXT COLLATE "C" NOT NULL,
    entered     BOOLEAN NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX membership_changes_segment ON membership_changes (account_id, segment_id, seq);
