-- Schedules of the beat (helix-jobs `schedule`): one row per schedule, editable at run time. A beat
-- fires a row when `next_fire_at` comes: it enqueues the job under the unique key
-- `schedule:<name>:<fire time in ms>`, then moves the row on with a compare-and-set on
-- `next_fire_at`, so any number of beats make one job per due time. Names, kinds, queues, cron
-- expressions and time zones are checked by the library (clear errors); the CHECKs below only
-- guard the shape.

CREATE TABLE helix_schedules (
    -- `[a-z0-9._:-]{1,100}`: used in URLs, CLI arguments and the unique key.
    name         TEXT PRIMARY KEY,
    -- The job each firing enqueues.
    kind         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    -- JSON text, enqueued verbatim (TEXT, not JSONB, so it is not reformatted).
    payload      TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    -- Exactly one cadence: an interval (fires at created_at + k·every_ms) or a cron expression
    -- evaluated on the wall clock of `timezone` (an IANA name; always 'UTC' for intervals).
    every_ms     BIGINT CHECK (every_ms > 0),
    cron         TEXT,
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    -- What a beat does with fire times missed while no beat ran.
    catch_up     TEXT NOT NULL DEFAULT 'run_once' CHECK (catch_up IN ('skip', 'run_once')),
    paused       BOOLEAN NOT NULL DEFAULT FALSE,
    -- The due time the beat waits for, whole milliseconds in UTC (the compare-and-set compares it).
    next_fire_at TIMESTAMPTZ NOT NULL,
    -- The last due time that produced a job, and that job (no foreign key: jobs may be in Redis).
    last_fire_at TIMESTAMPTZ,
    last_job_id  UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    -- The last change by an operator (add, pause, resume); firing leaves it alone.
    updated_at   TIMESTAMPTZ NOT NULL,
    CHECK ((every_ms IS NULL) <> (cron IS NULL))
);
-- What every beat pass reads: the active rows in due order.
CREATE INDEX helix_schedules_due ON helix_schedules (next_fire_at) WHERE NOT paused;
