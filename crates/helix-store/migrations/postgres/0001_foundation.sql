-- Foundation: a small key/value table for platform-wide markers and settings
-- (instance id, first-run flags...). Every later table arrives in its own file.
CREATE TABLE helix_meta (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
