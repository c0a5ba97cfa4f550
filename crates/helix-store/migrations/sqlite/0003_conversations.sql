-- Conversations and their messages (see the PostgreSQL file for the why of each column). SQLite has
-- no row-level security: every query filters on user_id, and the same isolation tests prove it.

CREATE TABLE conversations (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id),
    session_key     TEXT NOT NULL,
    title           TEXT NOT NULL,
    message_count   INTEGER NOT NULL DEFAULT 0,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_message_at TEXT,
    UNIQUE (user_id, session_key)
) STRICT;
CREATE INDEX conversations_user_created ON conversations (user_id, created_at DESC, id DESC);

CREATE TABLE session_messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id),
    session_key     TEXT NOT NULL,
    seq             INTEGER NOT NULL CHECK (seq > 0),
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content         TEXT NOT NULL,
    client_id       TEXT,
    created_at      TEXT NOT NULL,
    is_pending      INTEGER NOT NULL DEFAULT 0,
    synced_at       TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, client_id)
) STRICT;

ALTER TABLE user_profiles ADD COLUMN messages_day TEXT;
