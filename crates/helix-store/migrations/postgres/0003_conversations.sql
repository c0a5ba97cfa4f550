-- Conversations and their messages, as the platform's web and desktop clients know them.
-- Every message gets a per-conversation sequence number `seq` at commit (taken from
-- conversations.last_seq under the conversation's row lock), so clients can catch up with
-- `since=<seq>`; `client_id` makes a retried append return the original message.

CREATE TABLE conversations (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id),
    -- Unique per user, not globally: a global constraint would tell one user that another's key
    -- exists.
    session_key     TEXT NOT NULL,
    title           TEXT NOT NULL,
    message_count   BIGINT NOT NULL DEFAULT 0,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    last_message_at TIMESTAMPTZ,
    UNIQUE (user_id, session_key),
    -- The target of session_messages' key: a message's owner is its conversation's.
    UNIQUE (id, user_id)
);
-- A user's conversations, newest first (the list's cursor is (created_at, id)).
CREATE INDEX conversations_user_created ON conversations (user_id, created_at DESC, id DESC);

CREATE TABLE session_messages (
    id              UUID PRIMARY KEY,
    conversation_id UUID NOT NULL,
    -- The conversation's owner, for the policies and the filters; one key checks both columns
    -- (one lookup per append, not two).
    user_id         UUID NOT NULL,
    session_key     TEXT NOT NULL,
    seq             BIGINT NOT NULL CHECK (seq > 0),
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content         TEXT NOT NULL,
    client_id       TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    is_pending      BOOLEAN NOT NULL DEFAULT FALSE,
    synced_at       TIMESTAMPTZ,
    metadata        JSONB NOT NULL DEFAULT '{}',
    FOREIGN KEY (conversation_id, user_id) REFERENCES conversations (id, user_id)
        ON DELETE CASCADE,
    UNIQUE (conversation_id, seq),
    -- NULLs are distinct: only messages sent with a client_id are deduplicated.
    UNIQUE (conversation_id, client_id)
);

-- messages_today counts the messages of the UTC day in messages_day; an append on a new day
-- starts it again at 1 (one UPDATE, exact under concurrent appends).
ALTER TABLE user_profiles ADD COLUMN messages_day DATE;

-- Row-level security: a query runs with `helix.user_id` set for its transaction (the store does it)
-- and sees only that user's rows, even if its own WHERE forgot the user. FORCE applies the policies
-- to the tables' owner too; superusers and BYPASSRLS roles are exempt by PostgreSQL's design, so
-- production should connect as an ordinary role.
ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversations FORCE ROW LEVEL SECURITY;
CREATE POLICY conversations_owner ON conversations
    USING (user_id = NULLIF(current_setting('helix.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('helix.user_id', true), '')::uuid);

ALTER TABLE session_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE session_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY session_messages_owner ON session_messages
    USING (user_id = NULLIF(current_setting('helix.user_id', true), '')::uuid)
    WITH CHECK (user_id = NULLIF(current_setting('helix.user_id', true), '')::uuid);

-- Appending a message is one round trip, and as few statements as it can be: a known client_id
-- returns the original; taking the next seq locks the conversation row until commit; the profile's
-- counters move only while under the daily limit (else the exception undoes the seq taken); then the
-- insert. It runs in the caller's transaction (a single statement commits alone).
-- o_outcome: 'new', 'existing' or 'not_found'. Over the limit it raises SQLSTATE HX429 with
-- today's count so far as DETAIL. Two sends racing with one client_id: the second's insert fails
-- with a unique violation (undoing its seq) and the store calls again, finding the original.
CREATE FUNCTION helix_append_message(
    p_user UUID, p_conversation UUID, p_id UUID, p_role TEXT, p_content TEXT,
    p_client_id TEXT, p_metadata JSONB, p_now TIMESTAMPTZ, p_day DATE, p_limit BIGINT
) RETURNS TABLE (
    o_outcome TEXT, o_used BIGINT, o_id UUID, o_session_key TEXT, o_seq BIGINT, o_role TEXT,
    o_content TEXT, o_client_id TEXT, o_created_at TIMESTAMPTZ, o_is_pending BOOLEAN,
    o_synced_at TIMESTAMPTZ, o_metadata JSONB
) LANGUAGE plpgsql AS $$
DECLARE
    v_key  TEXT;
    v_seq  BIGINT;
    v_used BIGINT;
BEGIN
    PERFORM set_config('helix.user_id', p_user::text, true);
    IF p_client_id IS NOT NULL THEN
        RETURN QUERY SELECT 'existing'::text, 0::bigint, m.id, m.session_key, m.seq, m.role,
               m.content, m.client_id, m.created_at, m.is_pending, m.synced_at, m.metadata
          FROM session_messages m
         WHERE m.conversation_id = p_conversation AND m.user_id = p_user
           AND m.client_id = p_client_id;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    UPDATE conversations c
       SET last_seq = c.last_seq + 1, message_count = c.message_count + 1,
           updated_at = p_now, last_message_at = p_now
     WHERE c.id = p_conversation AND c.user_id = p_user
    RETURNING c.last_seq, c.session_key INTO v_seq, v_key;
    IF NOT FOUND THEN
        o_outcome := 'not_found';
        RETURN NEXT;
        RETURN;
    END IF;
    -- `>=`, GREATEST: an instance whose clock is still on yesterday counts into the later day
    -- already stored, never moves the day back (which would start the count again).
    UPDATE user_profiles p
       SET messages_today = CASE WHEN p.messages_day >= p_day THEN p.messages_today + 1 ELSE 1 END,
           messages_day = GREATEST(p.messages_day, p_day), message_count = p.message_count + 1
     WHERE p.user_id = p_user
       AND (p_limit IS NULL
            OR CASE WHEN p.messages_day >= p_day THEN p.messages_today ELSE 0 END < p_limit)
    RETURNING p.messages_today INTO v_used;
    IF NOT FOUND THEN
        SELECT CASE WHEN p.messages_day >= p_day THEN p.messages_today ELSE 0 END INTO v_used
          FROM user_profiles p WHERE p.user_id = p_user;
        RAISE EXCEPTION 'daily message limit reached'
            USING ERRCODE = 'HX429', DETAIL = COALESCE(v_used, 0)::text;
    END IF;
    INSERT INTO session_messages (id, conversation_id, user_id, session_key, seq, role, content,
                                  client_id, created_at, metadata)
    VALUES (p_id, p_conversation, p_user, v_key, v_seq, p_role, p_content, p_client_id, p_now,
            p_metadata);
    o_outcome := 'new'; o_used := v_used; o_id := p_id; o_session_key := v_key; o_seq := v_seq;
    o_role := p_role; o_content := p_content; o_client_id := p_client_id; o_created_at := p_now;
    o_is_pending := FALSE; o_synced_at := NULL; o_metadata := p_metadata;
    RETURN NEXT;
END
$$;

-- Reading a page is one round trip too: the user is set for the statement's transaction, then the
-- policies (and the explicit filter) apply.
CREATE FUNCTION helix_messages(
    p_user UUID, p_conversation UUID, p_before BIGINT, p_since BIGINT, p_limit BIGINT
) RETURNS SETOF session_messages LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('helix.user_id', p_user::text, true);
    IF p_since IS NOT NULL THEN
        RETURN QUERY SELECT * FROM session_messages m
         WHERE m.conversation_id = p_conversation AND m.user_id = p_user AND m.seq > p_since
         ORDER BY m.seq LIMIT p_limit;
    ELSE
        RETURN QUERY SELECT * FROM (
            SELECT * FROM session_messages m
             WHERE m.conversation_id = p_conversation AND m.user_id = p_user
               AND m.seq < COALESCE(p_before, 9223372036854775807)
             ORDER BY m.seq DESC LIMIT p_limit) newest
         ORDER BY newest.seq;
    END IF;
END
$$;
