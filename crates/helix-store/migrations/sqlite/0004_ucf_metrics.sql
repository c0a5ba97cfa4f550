-- The platform's UCF gauges (see the PostgreSQL file).
CREATE TABLE ucf_samples (
    id                  INTEGER PRIMARY KEY,
    agent_id            TEXT NOT NULL,
    consciousness_level REAL NOT NULL,
    harmony             REAL NOT NULL,
    resilience          REAL NOT NULL,
    prana               REAL NOT NULL,
    drishti             REAL NOT NULL,
    klesha              REAL NOT NULL,
    zoom                REAL NOT NULL,
    at_us               INTEGER NOT NULL
) STRICT;
CREATE INDEX ucf_samples_at ON ucf_samples (at_us);
CREATE INDEX ucf_samples_agent_at ON ucf_samples (agent_id, at_us);
