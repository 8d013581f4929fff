-- segmentd schema, version 7 (postgres): the daily history without reading the change log.
-- Keep in step with ../sqlite/0007_change_buckets.sql.
--
-- A segment's growth chart summed its whole change log on every view: at a million
-- members that is a million rows per chart. record_changes now also adds each batch's
-- entries and exits to one row per (segment, 15-minute bucket), in the same transaction,
-- so the chart reads at most 96 rows a day of history. A bucket is `at / 900000` (the
-- change's time in ms; CHANGE_BUCKET_MS in src/model.rs).
CREATE TABLE membership_change_buckets (
    account_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    segment_id  BIGINT NOT NULL REFERENCES segments (id) ON DELETE CASCADE,
    bucket      BIGINT NOT NULL,
    entered     BIGINT NOT NULL,
    exited      BIGINT NOT NULL,
    PRIMARY KEY (account_id, segment_id, bucket)
);

INSERT INTO membership_change_buckets (account_id, segment_id, bucket, entered, exited)
SELECT account_id, segment_id, at / 900000,
       SUM(CASE WHEN entered THEN 1 ELSE 0 END), SUM(CASE WHEN entered THEN 0 ELSE 1 END)
FROM membership_changes
GROUP BY account_id, segment_id, at / 900000;
