-- Accounts: users and their profiles, login sessions with rotating refresh tokens, API keys,
-- and the hash-chained audit log. Same shape as migrations/postgres/0002_accounts.sql. STRICT
-- tables: ids are hyphenated UUID text, times RFC 3339 text in UTC (microseconds), scopes a JSON
-- array.

-- A deleted user keeps their row (the audit log refers to it) but loses email and password hash,
-- so the email is free for a new account and no credential lingers.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT,
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin', 'creator')),
    created_at    TEXT NOT NULL,
    deleted_at    TEXT,
    CHECK (deleted_at IS NOT NULL OR (email IS NOT NULL AND password_hash IS NOT NULL))
) STRICT;
-- Emails are unique among live users (login looks them up here).
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE user_profiles (
    user_id            TEXT PRIMARY KEY REFERENCES users (id),
    display_name       TEXT NOT NULL,
    avatar_url         TEXT,
    trust_level        REAL NOT NULL DEFAULT 0 CHECK (trust_level >= 0 AND trust_level <= 1),
    conversation_count INTEGER NOT NULL DEFAULT 0,
    message_count      INTEGER NOT NULL DEFAULT 0,
    messages_today     INTEGER NOT NULL DEFAULT 0,
    onboarding_step    INTEGER NOT NULL DEFAULT 0,
    updated_at         TEXT NOT NULL
) STRICT;

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;
-- Deleting a user revokes all their sessions.
CREATE INDEX sessions_user ON sessions (user_id);

-- Tokens are kept once rotated: presenting one again is how reuse is detected.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    rotated_at TEXT
) STRICT;
-- A rotation marks the session's live token used.
CREATE INDEX refresh_tokens_live ON refresh_tokens (session_id) WHERE rotated_at IS NULL;

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    revoked_at TEXT
) STRICT;
-- A user's keys, newest first (the unique constraint on hash serves lookups by key).
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

-- `detail` is the exact JSON text the entry hash covers.
-- `actor` has no foreign key: the log outlives and does not depend on the rows it talks about.
CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY CHECK (seq > 0),
    at        TEXT NOT NULL,
    actor     TEXT,
    action    TEXT NOT NULL,
    target    TEXT,
    ip        TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;
