-- The job queue of helix-jobs (`crates/helix-jobs/src/postgres/`): one row per job, the
-- per-queue totals, and the unique keys with the window each is held for. Times come from the
-- database clock (`clock_timestamp()`), never from a worker's.
--
-- Fetch reads only small partial indexes on the live states, so completed rows waiting to be
-- pruned cost it nothing. A job's state never moves back by itself: every move is one UPDATE
-- that re-checks the state (and, for a lease, the fencing token) in its WHERE.

CREATE TABLE helix_jobs (
    -- UUIDv7: id order is creation order, and the id is the list's cursor.
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    -- JSON text, stored verbatim (not jsonb, which would reorder keys and cost a parse).
    payload      TEXT NOT NULL,
    -- As stored. Reads report a scheduled or retryable job whose run_at has come as available.
    state        TEXT NOT NULL
                 CHECK (state IN ('scheduled', 'available', 'running', 'retryable', 'completed',
                                  'failed', 'cancelled')),
    priority     INTEGER NOT NULL CHECK (priority BETWEEN -100 AND 100),
    -- Attempts started so far.
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- NULL: the queue's default, which the worker (and a fetch, for expired leases) applies.
    max_attempts INTEGER CHECK (max_attempts > 0),
    timeout_ms   BIGINT CHECK (timeout_ms >= 0),
    -- For operators only; the key itself is held in helix_job_unique.
    unique_key   TEXT,
    -- When it becomes (or became) available; the fetch order's second key.
    run_at       TIMESTAMPTZ NOT NULL,
    -- Set only while running.
    lease_until  TIMESTAMPTZ,
    worker       TEXT,
    -- The fencing token of the latest lease, from helix_job_tokens (0: never leased).
    token        BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    -- When it reached a terminal state.
    finished_at  TIMESTAMPTZ,
    -- [{attempt, at, error}, ...], oldest first, at most 100.
    errors       JSONB NOT NULL DEFAULT '[]'
) WITH (
    -- A queue table is mostly dead rows between vacuums; vacuum it early so the partial indexes
    -- fetch scans stay free of dead entries.
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.05
);

-- What fetch takes, in fetch order: available jobs of one queue.
CREATE INDEX helix_jobs_available ON helix_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';
-- Scheduled and retryable jobs whose run_at has come (fetch makes them available).
CREATE INDEX helix_jobs_waiting ON helix_jobs (queue, run_at)
    WHERE state IN ('scheduled', 'retryable');
-- Leases that ran out (fetch reclaims them).
CREATE INDEX helix_jobs_running ON helix_jobs (queue, lease_until)
    WHERE state = 'running';
-- What prune deletes, and the dead letter for operators.
CREATE INDEX helix_jobs_finished ON helix_jobs (state, finished_at)
    WHERE state IN ('completed', 'failed', 'cancelled');

-- Fencing tokens: unique across jobs, so a ticket names one lease of one job.
CREATE SEQUENCE helix_job_tokens AS BIGINT;

-- One row per queue that has ever held a job; totals survive pruning. Each batch adds to them
-- once, not once per job, so concurrent workers contend on this row once per batch.
CREATE TABLE helix_job_queues (
    queue                TEXT PRIMARY KEY,
    completed_total      BIGINT NOT NULL DEFAULT 0,
    failed_total         BIGINT NOT NULL DEFAULT 0,
    lease_expiries_total BIGINT NOT NULL DEFAULT 0
) WITH (fillfactor = 50); -- room for HOT updates of the counters

-- Unique keys (global, not per queue): held by job_id until expires_at, whatever becomes of the
-- job; an enqueue after that takes the key over. Expired rows are deleted by prune.
CREATE TABLE helix_job_unique (
    key        TEXT PRIMARY KEY,
    job_id     UUID NOT NULL,
    -- When the enqueue that holds the key took it.
    taken_at   TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
