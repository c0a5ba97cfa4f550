-- Agent orchestration: the roster of agents (profile, status, last heartbeat) and the tasks
-- addressed to them. A task's status only moves forward, each move one compare-and-set UPDATE on
-- the current status; the only way back is the re-offer of a claim whose agent went silent.
-- No row-level security: agents are platform-wide, and tasks are read by operators and agents.

CREATE TABLE agents (
    -- Chosen by whoever registers the agent (`kael`, `discord-bridge`), checked by the caller.
    agent_id       TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    description    TEXT NOT NULL,
    -- A JSON array of strings.
    capabilities   JSONB NOT NULL DEFAULT '[]',
    status         TEXT NOT NULL DEFAULT 'inactive'
                   CHECK (status IN ('active', 'inactive', 'busy')),
    last_heartbeat TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL
);

CREATE TABLE agent_tasks (
    -- UUIDv7: id order is creation order, and the id is the list's cursor.
    id         UUID PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    task_type  TEXT NOT NULL,
    task_data  JSONB NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'claimed', 'running', 'completed', 'failed',
                                 'cancelled')),
    progress   JSONB,
    result     JSONB,
    error      TEXT,
    -- How many times the task was claimed (a re-offer keeps it).
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- The user who created it, for the record; no foreign key, so accounts never block tasks.
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- When the current claim was taken; NULL while pending.
    claimed_at TIMESTAMPTZ
);
-- An agent's tasks newest first (also what the cascade from agents uses).
CREATE INDEX agent_tasks_agent_id ON agent_tasks (agent_id, id DESC);
-- Tasks of one status newest first.
CREATE INDEX agent_tasks_status_id ON agent_tasks (status, id DESC);
-- What the re-offer sweep scans: only the claims in flight, oldest claim first.
CREATE INDEX agent_tasks_in_flight ON agent_tasks (status, claimed_at)
    WHERE status IN ('claimed', 'running');
