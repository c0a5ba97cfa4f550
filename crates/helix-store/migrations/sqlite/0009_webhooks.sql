-- Webhooks (see the PostgreSQL file for the why of each table and column).

CREATE TABLE webhook_events (
    id          TEXT PRIMARY KEY,
    -- The sender: `zapier` for the old path, the `{source}` of /api/hooks/{source}.
    source      TEXT NOT NULL,
    -- The sender's id of the event (`webhook-id`, the body's `id`, or the body's SHA-256): a
    -- second receipt of one id is acknowledged without a second row.
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    -- The JSON body as received.
    payload     TEXT NOT NULL,
    received_us INTEGER NOT NULL,
    UNIQUE (source, event_id)
) STRICT;
CREATE INDEX webhook_events_source ON webhook_events (source, id DESC);

CREATE TABLE webhook_subscriptions (
    id               TEXT PRIMARY KEY,
    -- The user who subscribed (no foreign key: a subscription's record outlives its owner).
    owner            TEXT NOT NULL,
    target_url       TEXT NOT NULL,
    -- A JSON array of event types; `*` matches every type.
    event_types      TEXT NOT NULL,
    -- `whsec_<base64>`: signs every delivery to this endpoint.
    secret           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    disabled_reason  TEXT,
    -- When the current run of failed deliveries began (NULL while healthy).
    failing_since_us INTEGER,
    created_us       INTEGER NOT NULL,
    updated_us       INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_subscriptions_owner ON webhook_subscriptions (owner, id DESC);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    -- No foreign keys: deliveries stay queryable after an unsubscribe.
    subscription_id TEXT NOT NULL,
    owner           TEXT NOT NULL,
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('pending', 'succeeded', 'failed', 'gone', 'cancelled')),
    -- A JSON array of attempts: {n, at_us, status_code?, duration_ms, error?}.
    attempts        TEXT NOT NULL DEFAULT '[]',
    attempt_count   INTEGER NOT NULL DEFAULT 0,
    next_attempt_us INTEGER,
    created_us      INTEGER NOT NULL,
    updated_us      INTEGER NOT NULL,
    UNIQUE (event_id, subscription_id)
) STRICT;
CREATE INDEX webhook_deliveries_owner ON webhook_deliveries (owner, id DESC);
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, id DESC);
