-- Schedules of the beat (see the PostgreSQL file for the why of each column). Times are RFC 3339
-- text in UTC in one fixed form, `YYYY-MM-DDTHH:MM:SS.mmmZ`, so that text order is time order and
-- the compare-and-set on `next_fire_at` compares equal text; booleans are 0/1.

CREATE TABLE helix_schedules (
    name         TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    queue        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    priority     INTEGER NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100 AND 100),
    every_ms     INTEGER CHECK (every_ms > 0),
    cron         TEXT,
    timezone     TEXT NOT NULL DEFAULT 'UTC',
    catch_up     TEXT NOT NULL DEFAULT 'run_once' CHECK (catch_up IN ('skip', 'run_once')),
    paused       INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    next_fire_at TEXT NOT NULL,
    last_fire_at TEXT,
    last_job_id  TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    CHECK ((every_ms IS NULL) <> (cron IS NULL))
) STRICT;
CREATE INDEX helix_schedules_due ON helix_schedules (next_fire_at) WHERE NOT paused;
