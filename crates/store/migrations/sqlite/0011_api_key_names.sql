-- API keys get a name, the start of the key shown for recognition (empty for keys made
-- before: only their hash was kept), whether they may manage the account's keys, when
-- they were last used, and when they were revoked (a revoked key no longer signs in).
-- Keys made before were each account's only key: they stay admin.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT 'default';
ALTER TABLE api_keys ADD COLUMN prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN admin INTEGER NOT NULL DEFAULT 1;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
