-- CSV imports of contacts: the upload's header and size, the column mapping once
-- started, and progress (bytes of the file read, rows stored, rows rejected). The file
-- itself and the rejected rows live under the data directory (`imports/`); this row
-- is what every instance reads. Status: uploaded → running → done | failed.
CREATE TABLE imports (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    status         TEXT NOT NULL,
    file_name      TEXT NOT NULL,
    columns        TEXT NOT NULL,
    mapping        TEXT,
    file_bytes     INTEGER NOT NULL,
    bytes_read     INTEGER NOT NULL DEFAULT 0,
    rows_imported  INTEGER NOT NULL DEFAULT 0,
    rows_rejected  INTEGER NOT NULL DEFAULT 0,
    error          TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX imports_by_account ON imports (account_id, id);
