-- Failed sign-ins counted per key (`email:ADDRESS`, `ip:ADDRESS`) in a window that starts
-- at the first failure: kept in the store so that the limit holds across instances.
CREATE TABLE sign_in_failures (
    key          TEXT PRIMARY KEY,
    window_start INTEGER NOT NULL,
    failures     INTEGER NOT NULL
);
