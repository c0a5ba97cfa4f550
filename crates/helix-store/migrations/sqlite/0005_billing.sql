-- Usage and billing (see the PostgreSQL file for the why of each table and column).

CREATE TABLE usage_tracking (
    id          TEXT NOT NULL,
    user_id     TEXT NOT NULL REFERENCES users (id),
    api_key_id  TEXT,
    endpoint    TEXT NOT NULL,
    model       TEXT NOT NULL,
    tokens_in   INTEGER NOT NULL CHECK (tokens_in >= 0),
    tokens_out  INTEGER NOT NULL CHECK (tokens_out >= 0),
    cost_micros INTEGER NOT NULL CHECK (cost_micros >= 0),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (created_at, id)
) STRICT;
CREATE INDEX usage_tracking_user_created ON usage_tracking (user_id, created_at);

CREATE TABLE subscriptions (
    user_id                TEXT PRIMARY KEY REFERENCES users (id),
    stripe_customer_id     TEXT NOT NULL UNIQUE,
    stripe_subscription_id TEXT,
    status                 TEXT NOT NULL,
    tier                   TEXT NOT NULL CHECK (tier IN ('free', 'pro', 'enterprise')),
    current_period_end     TEXT,
    last_event_at          TEXT NOT NULL,
    updated_at             TEXT NOT NULL
) STRICT;

CREATE TABLE stripe_events (
    event_id    TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    customer_id TEXT,
    user_id     TEXT REFERENCES users (id),
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'unknown_customer', 'ignored', 'stale')),
    created_at  TEXT NOT NULL,
    received_at TEXT NOT NULL
) STRICT;

ALTER TABLE user_profiles ADD COLUMN tier TEXT NOT NULL DEFAULT 'free'
    CHECK (tier IN ('free', 'pro', 'enterprise'));
ALTER TABLE user_profiles ADD COLUMN tokens_month INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_profiles ADD COLUMN tokens_month_start TEXT;
