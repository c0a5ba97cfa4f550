-- Accounts: users and their profiles, login sessions with rotating refresh tokens, API keys,
-- and the hash-chained audit log. Ids are UUIDs, times TIMESTAMPTZ (microseconds, as written).

-- A deleted user keeps their row (the audit log refers to it) but loses email and password hash,
-- so the email is free for a new account and no credential lingers.
CREATE TABLE users (
    id            UUID PRIMARY KEY,
    email         TEXT,
    password_hash TEXT,
    role          TEXT NOT NULL CHECK (role IN ('user', 'admin', 'creator')),
    created_at    TIMESTAMPTZ NOT NULL,
    deleted_at    TIMESTAMPTZ,
    CHECK (deleted_at IS NOT NULL OR (email IS NOT NULL AND password_hash IS NOT NULL))
);
-- Emails are unique among live users (login looks them up here).
CREATE UNIQUE INDEX users_email_live ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE user_profiles (
    user_id            UUID PRIMARY KEY REFERENCES users (id),
    display_name       TEXT NOT NULL,
    avatar_url         TEXT,
    trust_level        DOUBLE PRECISION NOT NULL DEFAULT 0
                       CHECK (trust_level >= 0 AND trust_level <= 1),
    conversation_count BIGINT NOT NULL DEFAULT 0,
    message_count      BIGINT NOT NULL DEFAULT 0,
    messages_today     BIGINT NOT NULL DEFAULT 0,
    onboarding_step    INTEGER NOT NULL DEFAULT 0,
    updated_at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE sessions (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ
);
-- Deleting a user revokes all their sessions.
CREATE INDEX sessions_user ON sessions (user_id);

-- Tokens are kept once rotated: presenting one again is how reuse is detected.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL,
    rotated_at TIMESTAMPTZ
);
-- A rotation marks the session's live token used.
CREATE INDEX refresh_tokens_live ON refresh_tokens (session_id) WHERE rotated_at IS NULL;

CREATE TABLE api_keys (
    id         UUID PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    name       TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT[] NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ,
    revoked_at TIMESTAMPTZ
);
-- A user's keys, newest first (the unique constraint on hash serves lookups by key).
CREATE INDEX api_keys_user ON api_keys (user_id, created_at DESC);

-- `detail` is TEXT, not JSONB: the entry hash covers its exact text, which JSONB would rewrite.
-- `actor` has no foreign key: the log outlives and does not depend on the rows it talks about.
CREATE TABLE audit_log (
    seq       BIGINT PRIMARY KEY CHECK (seq > 0),
    at        TIMESTAMPTZ NOT NULL,
    actor     UUID,
    action    TEXT NOT NULL,
    target    TEXT,
    ip        TEXT,
    detail    TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
