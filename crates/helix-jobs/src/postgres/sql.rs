//! The SQL text of the PostgreSQL job backend: every step is one statement, so each is atomic
//! and costs one round trip. Each statement reads the clock once (`clock` CTE: a CTE holding a
//! volatile function is evaluated once however often it is referenced), so every time a step
//! writes is the same instant. Batches arrive as arrays and are spread with `UNNEST`.

/// The state operators see: a scheduled or retryable job whose `run_at` has come is available,
/// whether or not a fetch has moved it yet. Needs `clock` in scope.
pub(super) const EFFECTIVE_STATE: &str = "CASE WHEN j.state IN ('scheduled', 'retryable') \
     AND j.run_at <= clock.now THEN 'available' ELSE j.state END";

/// The columns of [`crate::Job`], as `rows::job` reads them. Needs `j` and `clock` in scope.
pub(super) fn job_columns() -> String {
    format!(
        "j.id, j.kind, j.queue, j.payload, {EFFECTIVE_STATE} AS state, j.priority, j.attempts, \
         j.max_attempts, j.timeout_ms, j.unique_key, j.run_at, j.lease_until, j.worker, \
         j.created_at, j.updated_at, j.finished_at, j.errors"
    )
}

/// `errors` with one `{attempt, at, error}` appended, keeping the last `$max` ($max bound as
/// the statement's last parameter; entries are only ever appended one at a time, so dropping
/// the oldest one suffices).
fn append_error(error: &str, max: &str) -> String {
    format!(
        "(CASE WHEN jsonb_array_length(j.errors) >= {max} THEN j.errors - 0 ELSE j.errors END) \
         || jsonb_build_array(jsonb_build_object('attempt', j.attempts, 'at', clock.now, \
         'error', {error}))"
    )
}

/// Add jobs: $1..$10 are parallel arrays (id, kind, queue, payload, priority, delay,
/// max_attempts, timeout_ms, unique_key, unique_window). Returns one row per input, in order.
///
/// Unique keys: the first job of each distinct key upserts it; a held key is "updated" to itself
/// so that `RETURNING` names the holder even when a concurrent enqueue committed it after this
/// statement's snapshot was taken (`ON CONFLICT` sees the latest row, a plain read would not).
/// Keys and new queue rows are written in sorted order so concurrent batches lock in one order.
///
/// With `notify`, the statement also wakes workers (`pg_notify`, delivered at commit): for
/// callers' own transactions. Otherwise the caller hints after the commit (see `notify.rs`).
pub(super) fn enqueue(notify: bool) -> String {
    let wake = if notify {
        "SELECT count(pg_notify('helix_jobs', left(q.queue, 1000))) AS n \
         FROM (SELECT DISTINCT queue FROM added) q"
    } else {
        "SELECT 0 AS n"
    };
    format!(
        "
WITH clock AS (SELECT clock_timestamp() AS now),
input AS (
    SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[],
                         $6::interval[], $7::int4[], $8::int8[], $9::text[], $10::interval[])
        WITH ORDINALITY AS t(id, kind, queue, payload, priority, delay, max_attempts, timeout_ms,
                             unique_key, unique_window, ord)
),
keys AS (
    INSERT INTO helix_job_unique AS u (key, job_id, taken_at, expires_at)
    SELECT DISTINCT ON (i.unique_key) i.unique_key, i.id, clock.now, clock.now + i.unique_window
    FROM input i CROSS JOIN clock
    WHERE i.unique_key IS NOT NULL
    ORDER BY i.unique_key, i.ord
    ON CONFLICT (key) DO UPDATE SET
        job_id = CASE WHEN u.expires_at <= excluded.taken_at THEN excluded.job_id
                      ELSE u.job_id END,
        taken_at = CASE WHEN u.expires_at <= excluded.taken_at THEN excluded.taken_at
                        ELSE u.taken_at END,
        expires_at = CASE WHEN u.expires_at <= excluded.taken_at THEN excluded.expires_at
                          ELSE u.expires_at END
    RETURNING u.key, u.job_id
),
added AS (
    INSERT INTO helix_jobs (id, kind, queue, payload, state, priority, max_attempts, timeout_ms,
                            unique_key, run_at, created_at, updated_at)
    SELECT i.id, i.kind, i.queue, i.payload,
           CASE WHEN i.delay > interval '0' THEN 'scheduled' ELSE 'available' END,
           i.priority, i.max_attempts, i.timeout_ms, i.unique_key, clock.now + i.delay,
           clock.now, clock.now
    FROM input i CROSS JOIN clock LEFT JOIN keys k ON k.key = i.unique_key
    WHERE i.unique_key IS NULL OR k.job_id = i.id
    RETURNING queue
),
queues AS (
    INSERT INTO helix_job_queues (queue)
    SELECT DISTINCT queue FROM added ORDER BY queue
    ON CONFLICT (queue) DO NOTHING
),
woken AS ({wake})
SELECT COALESCE(k.job_id, i.id) AS id, (i.unique_key IS NULL OR k.job_id = i.id) AS inserted
FROM input i LEFT JOIN keys k ON k.key = i.unique_key CROSS JOIN woken
ORDER BY i.ord"
    )
}

/// Lease up to $2 jobs of queue $1 for $3, to worker $4; $5 is the queue's default attempts,
/// $6 the most errors a job keeps.
///
/// In one statement: the queue's expired leases (`expired`), its scheduled and retryable jobs
/// that are due (`due`) and its best `$2` available ones (`ready`) are locked with
/// `SKIP LOCKED`, so concurrent fetches never wait for each other nor take the same row. All of
/// them are ranked in fetch order and the first `$2` leased; the other due ones become
/// available, the other expired ones available again in their old place in line (or failed on
/// their last attempt), and
/// every expired attempt gets the error "lease expired". That is one `UPDATE`, because a
/// statement can neither see nor update again rows that an earlier CTE of its own changed.
/// The totals row is written only when a lease expired.
///
/// Planner hints, each measured: the clock is read through a scalar subquery so that it bounds
/// the index scans (a join with `clock` only filters); and the `UPDATE` joins one relation,
/// `touched`, which carries every flag it needs, on the primary key alone: the planner then
/// drives the update from `touched` with one index lookup per job, where joining further CTEs
/// was planned as a nested loop over them (quadratic in the batch).
pub(super) fn fetch() -> String {
    let lease_expired = append_error("'lease expired'", "$6");
    format!(
        "
WITH clock AS (SELECT clock_timestamp() AS now),
expired AS (
    SELECT j.id, j.priority, j.run_at, j.attempts >= COALESCE(j.max_attempts, $5) AS last
    FROM helix_jobs j
    WHERE j.queue = $1 AND j.state = 'running' AND j.lease_until <= (SELECT now FROM clock)
    FOR UPDATE SKIP LOCKED
),
due AS (
    SELECT j.id, j.priority, j.run_at
    FROM helix_jobs j
    WHERE j.queue = $1 AND j.state IN ('scheduled', 'retryable')
        AND j.run_at <= (SELECT now FROM clock)
    FOR UPDATE SKIP LOCKED
),
ready AS (
    SELECT j.id, j.priority, j.run_at
    FROM helix_jobs j
    WHERE j.queue = $1 AND j.state = 'available'
    ORDER BY j.priority DESC, j.run_at, j.id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
candidates AS (
    SELECT id, priority, run_at, false AS expired, false AS moves FROM ready
    UNION ALL
    SELECT id, priority, run_at, false, true FROM due
    UNION ALL
    SELECT id, priority, run_at, true, true FROM expired WHERE NOT last
),
ranked AS (
    SELECT id, expired, moves, row_number() OVER (ORDER BY priority DESC, run_at, id) AS rank
    FROM candidates
),
touched AS (
    SELECT id, rank <= $2 AS chosen, rank, expired, false AS last
    FROM ranked WHERE rank <= $2 OR moves
    UNION ALL
    SELECT id, false, NULL, true, true FROM expired WHERE last
),
moved AS (
    UPDATE helix_jobs j SET
        state = CASE WHEN t.chosen THEN 'running' WHEN t.last THEN 'failed' ELSE 'available' END,
        attempts = j.attempts + CASE WHEN t.chosen THEN 1 ELSE 0 END,
        token = CASE WHEN t.chosen THEN nextval('helix_job_tokens') ELSE j.token END,
        lease_until = CASE WHEN t.chosen THEN clock.now + $3::interval END,
        worker = CASE WHEN t.chosen THEN $4::text END,
        finished_at = CASE WHEN t.last THEN clock.now ELSE j.finished_at END,
        errors = CASE WHEN t.expired THEN {lease_expired} ELSE j.errors END,
        updated_at = clock.now
    FROM touched t CROSS JOIN clock
    WHERE j.id = t.id
    RETURNING j.id, j.kind, j.queue, j.payload, j.attempts, j.max_attempts, j.timeout_ms,
              j.token, t.chosen, t.rank
),
counted AS (
    INSERT INTO helix_job_queues AS q (queue, failed_total, lease_expiries_total)
    SELECT $1, count(*) FILTER (WHERE last), count(*) FROM expired HAVING count(*) > 0
    ON CONFLICT (queue) DO UPDATE SET
        failed_total = q.failed_total + excluded.failed_total,
        lease_expiries_total = q.lease_expiries_total + excluded.lease_expiries_total
)
SELECT id, kind, queue, payload, attempts, max_attempts, timeout_ms, token
FROM moved WHERE chosen ORDER BY rank"
    )
}

/// Extend leases: $1 ids, $2 tokens, $3 the new lease from now. Returns the tickets extended.
/// (This and the other ticket batches join the unnested tickets on the primary key and nothing
/// else: an extra `id = ANY ($1)` made the planner expect one row and rescan the `UNNEST` once
/// per job, quadratic in the batch, measured 35 ms for 300.)
pub(super) const EXTEND: &str = "
WITH clock AS (SELECT clock_timestamp() AS now)
UPDATE helix_jobs j SET lease_until = clock.now + $3::interval, updated_at = clock.now
FROM clock, UNNEST($1::uuid[], $2::int8[]) AS t(id, token)
WHERE j.id = t.id AND j.token = t.token AND j.state = 'running'
RETURNING j.id, j.token, j.queue";

/// Record outcomes: $1 ids, $2 tokens, $3 outcomes (`completed`, `retry`, `failed`), $4 errors,
/// $5 retry delays; $6 the most errors a job keeps. Returns the tickets applied. The totals of each
/// queue grow once per batch, queues in name order so concurrent batches lock them in one order.
pub(super) fn finish() -> String {
    let failed = append_error("t.error", "$6");
    format!(
        "
WITH clock AS (SELECT clock_timestamp() AS now),
moved AS (
    UPDATE helix_jobs j SET
        state = CASE t.outcome WHEN 'retry' THEN 'retryable' ELSE t.outcome END,
        run_at = CASE WHEN t.outcome = 'retry' THEN clock.now + t.delay ELSE j.run_at END,
        lease_until = NULL,
        worker = NULL,
        finished_at = CASE WHEN t.outcome = 'retry' THEN NULL ELSE clock.now END,
        errors = CASE WHEN t.outcome = 'completed' THEN j.errors ELSE {failed} END,
        updated_at = clock.now
    FROM clock, UNNEST($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::interval[])
        AS t(id, token, outcome, error, delay)
    WHERE j.id = t.id AND j.token = t.token AND j.state = 'running'
    RETURNING j.id, j.token, j.queue, t.outcome
),
counted AS (
    INSERT INTO helix_job_queues AS q (queue, completed_total, failed_total)
    SELECT queue, count(*) FILTER (WHERE outcome = 'completed'),
           count(*) FILTER (WHERE outcome = 'failed')
    FROM moved
    WHERE outcome <> 'retry'
    GROUP BY queue
    ORDER BY queue
    ON CONFLICT (queue) DO UPDATE SET
        completed_total = q.completed_total + excluded.completed_total,
        failed_total = q.failed_total + excluded.failed_total
)
SELECT id, token FROM moved"
    )
}

/// Give leases back: $1 ids, $2 tokens. The attempt is not counted. Returns the tickets
/// released, with their queues (to wake their workers).
pub(super) const RELEASE: &str = "
WITH clock AS (SELECT clock_timestamp() AS now)
UPDATE helix_jobs j SET
    state = 'available', attempts = GREATEST(j.attempts - 1, 0),
    lease_until = NULL, worker = NULL, updated_at = clock.now
FROM clock, UNNEST($1::uuid[], $2::int8[]) AS t(id, token)
WHERE j.id = t.id AND j.token = t.token AND j.state = 'running'
RETURNING j.id, j.token, j.queue";

/// One job by id ($1).
pub(super) fn get() -> String {
    format!(
        "WITH clock AS (SELECT clock_timestamp() AS now) \
         SELECT {} FROM helix_jobs j CROSS JOIN clock WHERE j.id = $1",
        job_columns()
    )
}

/// Cancel job $1 unless it is terminal; returns it as it is now.
pub(super) fn cancel() -> String {
    format!(
        "WITH clock AS (SELECT clock_timestamp() AS now) \
         UPDATE helix_jobs j SET state = 'cancelled', finished_at = clock.now, \
             lease_until = NULL, worker = NULL, updated_at = clock.now \
         FROM clock \
         WHERE j.id = $1 AND j.state NOT IN ('completed', 'failed', 'cancelled') \
         RETURNING {}",
        job_columns()
    )
}

/// Make job $1 available now with no attempts used, if it is failed, cancelled, or (as operators
/// see it) scheduled or retryable.
pub(super) fn retry() -> String {
    format!(
        "WITH clock AS (SELECT clock_timestamp() AS now) \
         UPDATE helix_jobs j SET state = 'available', run_at = clock.now, attempts = 0, \
             finished_at = NULL, lease_until = NULL, worker = NULL, updated_at = clock.now \
         FROM clock \
         WHERE j.id = $1 AND (j.state IN ('failed', 'cancelled') \
             OR (j.state IN ('scheduled', 'retryable') AND j.run_at > clock.now)) \
         RETURNING {}",
        job_columns()
    )
}

/// Counts per queue and state (as operators see states), with the totals of every queue ever
/// used. `oldest_available_ms` is the age of the oldest job available now.
pub(super) fn stats() -> String {
    format!(
        "
WITH clock AS (SELECT clock_timestamp() AS now),
live AS (
    SELECT j.queue, {EFFECTIVE_STATE} AS state, j.run_at
    FROM helix_jobs j CROSS JOIN clock
),
counts AS (
    SELECT queue,
        count(*) FILTER (WHERE state = 'scheduled') AS scheduled,
        count(*) FILTER (WHERE state = 'available') AS available,
        count(*) FILTER (WHERE state = 'running') AS running,
        count(*) FILTER (WHERE state = 'retryable') AS retryable,
        count(*) FILTER (WHERE state = 'completed') AS completed,
        count(*) FILTER (WHERE state = 'failed') AS failed,
        count(*) FILTER (WHERE state = 'cancelled') AS cancelled,
        min(run_at) FILTER (WHERE state = 'available') AS oldest_available
    FROM live
    GROUP BY queue
)
SELECT q.queue,
    COALESCE(c.scheduled, 0) AS scheduled, COALESCE(c.available, 0) AS available,
    COALESCE(c.running, 0) AS running, COALESCE(c.retryable, 0) AS retryable,
    COALESCE(c.completed, 0) AS completed, COALESCE(c.failed, 0) AS failed,
    COALESCE(c.cancelled, 0) AS cancelled,
    floor(extract(epoch FROM (clock.now - c.oldest_available)) * 1000)::int8
        AS oldest_available_ms,
    q.completed_total, q.failed_total, q.lease_expiries_total
FROM helix_job_queues q CROSS JOIN clock LEFT JOIN counts c ON c.queue = q.queue"
    )
}

/// Delete completed and cancelled jobs finished $1 or longer ago, failed ones $2 or longer ago,
/// and unique keys whose window has passed. Returns how many jobs went. (The clock through a
/// scalar subquery, so that `helix_jobs_finished` bounds the scan.)
pub(super) const PRUNE: &str = "
WITH clock AS (SELECT clock_timestamp() AS now),
gone AS (
    DELETE FROM helix_jobs j
    WHERE (j.state IN ('completed', 'cancelled')
           AND j.finished_at <= (SELECT now FROM clock) - $1::interval)
       OR (j.state = 'failed' AND j.finished_at <= (SELECT now FROM clock) - $2::interval)
    RETURNING 1
),
keys AS (
    DELETE FROM helix_job_unique u WHERE u.expires_at <= (SELECT now FROM clock)
)
SELECT count(*) FROM gone";
