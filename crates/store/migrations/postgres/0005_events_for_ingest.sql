-- segmentd schema, version 5 (PostgreSQL): nothing to change.
--
-- SQLite's 0005 re-keys its events index by arrival bucket because each commit wrote
-- every index page a batch touched to its WAL. PostgreSQL logs index entries instead
-- (whole pages only on the first change after a checkpoint) and writes its buffers in
-- the background, so (contact_id, id) stays; the version number is kept in step.
SELECT 1;
