-- Discord interactions received by discord-bot: one row per verified interaction. Discord's ids
-- (snowflakes) are kept as the text it sends. `interaction_id` is unique, so a delivery of the same
-- interaction again is not recorded twice. `latency_ms` is how long the first answer to Discord
-- took (the one Discord waits at most 3 s for); `deferred` says whether that answer was "thinking…"
-- with the result sent later as a follow-up.
CREATE TABLE discord_interactions (
    id             BIGSERIAL PRIMARY KEY,
    interaction_id TEXT NOT NULL UNIQUE,
    type           SMALLINT NOT NULL,
    command        TEXT,
    user_id        TEXT,
    guild_id       TEXT,
    channel_id     TEXT,
    deferred       BOOLEAN NOT NULL DEFAULT FALSE,
    latency_ms     BIGINT NOT NULL CHECK (latency_ms >= 0),
    created_at     TIMESTAMPTZ NOT NULL
);
CREATE INDEX discord_interactions_created_at ON discord_interactions (created_at);
