-- The platform's UCF gauges: one row per sample an agent reports. `at_us` (microseconds since the
-- epoch) is what history pages and buckets on, the same integer arithmetic on both engines.
CREATE TABLE ucf_samples (
    id                  BIGSERIAL PRIMARY KEY,
    agent_id            TEXT NOT NULL,
    consciousness_level DOUBLE PRECISION NOT NULL,
    harmony             DOUBLE PRECISION NOT NULL,
    resilience          DOUBLE PRECISION NOT NULL,
    prana               DOUBLE PRECISION NOT NULL,
    drishti             DOUBLE PRECISION NOT NULL,
    klesha              DOUBLE PRECISION NOT NULL,
    zoom                DOUBLE PRECISION NOT NULL,
    at_us               BIGINT NOT NULL
);
CREATE INDEX ucf_samples_at ON ucf_samples (at_us);
CREATE INDEX ucf_samples_agent_at ON ucf_samples (agent_id, at_us);
