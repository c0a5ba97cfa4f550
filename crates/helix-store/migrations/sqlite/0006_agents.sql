-- Agent orchestration (see the PostgreSQL file for the why of each table and column). JSON values
-- are stored as their text; times as RFC 3339 text in UTC, like every other table here.

CREATE TABLE agents (
    agent_id       TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    role           TEXT NOT NULL,
    description    TEXT NOT NULL,
    capabilities   TEXT NOT NULL DEFAULT '[]',
    status         TEXT NOT NULL DEFAULT 'inactive'
                   CHECK (status IN ('active', 'inactive', 'busy')),
    last_heartbeat TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
) STRICT;

-- The cascade needs foreign keys enforced: every connection of the store turns them on.
CREATE TABLE agent_tasks (
    id         TEXT PRIMARY KEY,
    agent_id   TEXT NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    task_type  TEXT NOT NULL,
    task_data  TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'pending'
               CHECK (status IN ('pending', 'claimed', 'running', 'completed', 'failed',
                                 'cancelled')),
    progress   TEXT,
    result     TEXT,
    error      TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    claimed_at TEXT
) STRICT;
CREATE INDEX agent_tasks_agent_id ON agent_tasks (agent_id, id DESC);
CREATE INDEX agent_tasks_status_id ON agent_tasks (status, id DESC);
CREATE INDEX agent_tasks_in_flight ON agent_tasks (status, claimed_at)
    WHERE status IN ('claimed', 'running');
