-- segmentd schema, version 13 (SQLite): nothing. The cluster (../postgres/0013_cluster.sql)
-- needs PostgreSQL; the number is kept so both backends count their versions alike.
SELECT 1;
