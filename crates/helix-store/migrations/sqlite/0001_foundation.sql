-- Foundation: a small key/value table for platform-wide markers and settings
-- (instance id, first-run flags...). Every later table arrives in its own file.
-- Same shape as migrations/postgres/0001_foundation.sql; timestamps are RFC 3339 text in UTC.
CREATE TABLE helix_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
