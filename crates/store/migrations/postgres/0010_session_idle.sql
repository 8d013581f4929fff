-- A session also ends when unused until `idle_until` (milliseconds; the server pushes
-- it forward as the session is used). NULL: no idle limit (sessions made before this).
ALTER TABLE sessions ADD COLUMN idle_until BIGINT;
