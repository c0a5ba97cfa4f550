-- Usage and billing: one row per metered call, each user's subscription as Stripe reports it, and
-- every Stripe event received (its id is what makes the webhook idempotent). The tier a user is on
-- and their token counter for the month live in user_profiles, so checking a quota reads one row.

-- Usage grows without bound: the primary key leads with created_at so the table can later be
-- partitioned by time without changing it. Rows are written in batches by a write-behind buffer;
-- api_key_id has no foreign key on purpose, so no single row can make a whole batch fail.
-- No row-level security here: admins read other users' usage, and every query filters on user_id.
CREATE TABLE usage_tracking (
    id          UUID NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id),
    api_key_id  UUID,
    endpoint    TEXT NOT NULL,
    model       TEXT NOT NULL,
    tokens_in   BIGINT NOT NULL CHECK (tokens_in >= 0),
    tokens_out  BIGINT NOT NULL CHECK (tokens_out >= 0),
    cost_micros BIGINT NOT NULL CHECK (cost_micros >= 0),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (created_at, id)
);
-- A user's usage over a range of days (GET /api/usage).
CREATE INDEX usage_tracking_user_created ON usage_tracking (user_id, created_at);

-- One row per user who ever had a Stripe customer; the first event of a customer names the user in
-- the subscription's metadata (helix_user_id), later ones are found by stripe_customer_id.
-- last_event_at is the `created` time of the newest event applied: Stripe does not deliver events in
-- order, and an older event arriving late must not undo a newer one.
CREATE TABLE subscriptions (
    user_id                UUID PRIMARY KEY REFERENCES users (id),
    stripe_customer_id     TEXT NOT NULL UNIQUE,
    stripe_subscription_id TEXT,
    status                 TEXT NOT NULL,
    tier                   TEXT NOT NULL CHECK (tier IN ('free', 'pro', 'enterprise')),
    current_period_end     TIMESTAMPTZ,
    last_event_at          TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL
);

-- Every verified event, applied or not, with what became of it. customer_id is kept so an operator
-- can reconcile an event for a customer Helix did not know; the payload itself is not kept.
CREATE TABLE stripe_events (
    event_id    TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    customer_id TEXT,
    user_id     UUID REFERENCES users (id),
    outcome     TEXT NOT NULL CHECK (outcome IN ('applied', 'unknown_customer', 'ignored', 'stale')),
    created_at  TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL
);

-- tokens_month counts the tokens of the UTC month starting tokens_month_start, kept exact by the
-- batch that writes the usage rows (one UPDATE per user and month in the same transaction).
ALTER TABLE user_profiles
    ADD COLUMN tier TEXT NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    ADD COLUMN tokens_month BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN tokens_month_start DATE;
