-- The job queue of helix-jobs on SQLite (the PostgreSQL file is its twin; the state machine is
-- documented in crates/helix-jobs/src/model.rs). Unlike the other tables here, times are integer
-- milliseconds since the Unix epoch (UTC, from the process clock): every step of the queue
-- compares and orders by time, and integers do that faster and smaller than RFC 3339 text.
-- Ids are UUIDv7 as hyphenated lowercase text, which sorts by creation time.

-- One row per job. Small, hot columns first and the payload and error list last: SQLite parses a
-- row from its start, and a large payload spills into overflow pages that fetch and finish then
-- need not read.
CREATE TABLE helix_jobs (
    id           TEXT PRIMARY KEY,
    queue        TEXT NOT NULL,
    state        TEXT NOT NULL
                 CHECK (state IN ('scheduled', 'available', 'running', 'retryable', 'completed',
                                  'failed', 'cancelled')),
    priority     INTEGER NOT NULL DEFAULT 0,
    -- When it becomes (or became) available; the fetch order within a priority.
    run_at       INTEGER NOT NULL,
    -- The fencing token of the current (or last) lease: every fetch adds one.
    token        INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER,
    timeout_ms   INTEGER,
    -- Set only while running.
    lease_until  INTEGER,
    worker       TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    unique_key   TEXT,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    -- JSON array of {attempt, at (ms), error}, oldest first, at most 100 entries.
    errors       TEXT NOT NULL DEFAULT '[]'
) STRICT;

-- Partial indexes on the live states only: completed rows (the vast majority, until pruned) sit in
-- none of them, so fetch, reclaim and promotion cost the same with a million finished jobs kept.
-- What fetch takes, in fetch order (the DESC column lets one forward scan serve ORDER BY ... LIMIT).
CREATE INDEX helix_jobs_available ON helix_jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available';
-- Scheduled and retryable jobs by due time: fetch promotes the due ones; stats counts them
-- (state is included so the count never reads the table).
CREATE INDEX helix_jobs_waiting ON helix_jobs (queue, run_at, state)
    WHERE state IN ('scheduled', 'retryable');
-- Leases by end time: fetch reclaims the expired ones of its queue.
CREATE INDEX helix_jobs_running ON helix_jobs (queue, lease_until)
    WHERE state = 'running';
-- Finished jobs by finish time, for prune, and covering the per-queue counts of stats.
CREATE INDEX helix_jobs_finished ON helix_jobs (state, finished_at, queue)
    WHERE state IN ('completed', 'failed', 'cancelled');

-- Every queue that has ever held a job, with counters that pruning does not reduce. Each write
-- step adds its whole batch's counts at once.
CREATE TABLE helix_job_queues (
    queue                TEXT PRIMARY KEY,
    completed_total      INTEGER NOT NULL DEFAULT 0,
    failed_total         INTEGER NOT NULL DEFAULT 0,
    lease_expiries_total INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

-- Idempotency keys, global (not per queue): the job that took the key and until when it holds it,
-- whatever becomes of that job. A later enqueue after expires_at takes the key over; prune drops
-- expired rows.
CREATE TABLE helix_job_unique (
    key        TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
