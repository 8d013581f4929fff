-- segmentd schema, version 2 (SQLite): panel users and their sessions.
-- Keep in step with ../postgres/0002_users.sql.
--
-- A user belongs to one account. E-mail addresses sign users in, so they are unique
-- across the whole installation, compared without case: email_key is the address
-- lowercased (Rust's str::to_lowercase). password_hash is an argon2 PHC string made by
-- the server; the store never sees a password.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id     INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    email_key      TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX users_account ON users (account_id);

-- token_hash is the hex SHA-256 of the session cookie's value; the token itself is
-- never stored. expires_at is in milliseconds since the Unix epoch.
CREATE TABLE sessions (
    token_hash  TEXT NOT NULL PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    account_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
