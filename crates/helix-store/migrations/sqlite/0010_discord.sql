-- Discord interactions received by discord-bot (see the PostgreSQL file). Times are RFC 3339 text
-- in UTC, like every other table here.
CREATE TABLE discord_interactions (
    id             INTEGER PRIMARY KEY,
    interaction_id TEXT NOT NULL UNIQUE,
    type           INTEGER NOT NULL,
    command        TEXT,
    user_id        TEXT,
    guild_id       TEXT,
    channel_id     TEXT,
    deferred       INTEGER NOT NULL DEFAULT 0 CHECK (deferred IN (0, 1)),
    latency_ms     INTEGER NOT NULL CHECK (latency_ms >= 0),
    created_at     TEXT NOT NULL
) STRICT;
CREATE INDEX discord_interactions_created_at ON discord_interactions (created_at);
