-- Every change of a saved segment's membership: a contact entered or exited, and when.
-- The change feed, the daily history and the start-up diff read it. A contact's rows stay
-- after the contact is deleted (its exit is history); a segment's go with the segment.
CREATE TABLE membership_changes (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    segment_id  INTEGER NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    contact_id  INTEGER NOT NULL,
    external_id TEXT NOT NULL,
    entered     INTEGER NOT NULL CHECK (entered IN (0, 1)),
    at          INTEGER NOT NULL
);
CREATE INDEX membership_changes_segment ON membership_changes (account_id, segment_id, seq);
