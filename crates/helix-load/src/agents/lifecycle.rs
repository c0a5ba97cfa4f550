//! The timed run: `--agents × --per-agent` closed-loop workers. Each takes the next task number
//! `n` from a shared counter until `--tasks` are handed out, and runs one lifecycle for its agent:
//!
//! 1. `POST /api/tasks` with the admin's token → 201 `pending`;
//! 2. `POST /api/tasks/{id}/claim` with the agent's key → 200 `claimed` (contended: see
//!    [`contend`](super::contend));
//! 3. `POST /api/tasks/{id}/start` → 200 `running`;
//! 4. `POST /api/tasks/{id}/complete` with `{"result":{"n":n}}` → 200 `completed`.
//!
//! All four go over the worker's one keep-alive connection, the admin's call carrying the admin's
//! token and the agent's calls the agent's key (credentials are per request, not per connection).
//! The steps depend on each other, so a second connection for the admin's calls could never be
//! used in parallel: it would only add sockets and server tasks, and cannot be faster.
//!
//! A step that fails (an error status, a 2xx with an unexpected body, a dropped connection or a
//! timeout) is recorded and its lifecycle abandoned; the worker goes on with the next number. A
//! task so abandoned stays in its status, and verification reports it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::contend::{self, Claim};
use super::roster::Agent;
use super::Plan;
use crate::cpu;
use crate::http::{Collected, Conn, RequestTemplate};
use crate::setup;
use crate::stats::{Outcome, Tally};
use crate::target::Target;

/// After a connect or connection failure, so a server that is down does not spin the client.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// The setup probe's task number, apart from the run's 0, 1, 2, ….
const PROBE_N: i64 = -1;

/// The requests of a lifecycle, each timed and counted on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Create,
    Claim,
    Start,
    Complete,
    /// The claims of a contended task (all three; latency of the winners).
    ContendedClaim,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Create,
        Step::Claim,
        Step::Start,
        Step::Complete,
        Step::ContendedClaim,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Claim => "claim",
            Step::Start => "start",
            Step::Complete => "complete",
            Step::ContendedClaim => "contended_claim",
        }
    }
}

/// One [`Tally`] per [`Step`].
#[derive(Debug, Clone)]
pub struct Steps {
    tallies: [Tally; Step::ALL.len()],
}

impl Steps {
    fn new() -> Steps {
        Steps {
            tallies: std::array::from_fn(|_| Tally::new(false)),
        }
    }

    pub fn get(&self, step: Step) -> &Tally {
        &self.tallies[step as usize]
    }

    fn record(&mut self, step: Step, answer: &Answer) {
        let latency = answer.latency;
        self.tallies[step as usize].record(answer.outcome, latency, latency);
    }

    fn merge(&mut self, other: &Steps) {
        for (mine, theirs) in self.tallies.iter_mut().zip(&other.tallies) {
            mine.merge(theirs);
        }
    }

    /// Requests sent, in every step.
    pub fn requests(&self) -> u64 {
        self.tallies.iter().map(Tally::total).sum()
    }
}

/// What one worker, then the whole run, did.
#[derive(Debug)]
pub struct RunResult {
    pub elapsed: Duration,
    pub steps: Steps,
    /// Lifecycles whose `complete` answered as expected.
    pub completed: u64,
    /// 2xx answers whose body was not the task in the status expected.
    pub bad_answers: u64,
    pub contention: contend::Count,
    /// Task ids created, per agent (index as in the roster).
    pub created: Vec<Vec<Uuid>>,
    /// CPU the load generator itself used during the run, in cores.
    pub client_cores: Option<f64>,
}

/// A task as a create or a move answers with it (only what the run checks).
#[derive(Debug, Deserialize)]
struct TaskRef {
    id: Uuid,
    status: String,
}

/// One request's end: its outcome, the response when there was one, and its latency.
struct Answer {
    outcome: Outcome,
    response: Option<Collected>,
    latency: Duration,
}

/// What every worker shares.
struct Shared {
    target: Target,
    admin: String,
    plan: Plan,
    next: AtomicU64,
}

/// Run the lifecycles; returns once every task number is handed out and every worker is done.
pub async fn run(target: &Target, admin: &str, agents: &[Agent], plan: &Plan) -> Result<RunResult> {
    let shared = Arc::new(Shared {
        target: target.clone(),
        admin: admin.to_owned(),
        plan: *plan,
        next: AtomicU64::new(0),
    });
    let cpu_before = cpu::process_cpu_time().ok();
    let started = Instant::now();
    let workers: Vec<_> = (0..plan.workers())
        .map(|w| {
            let index = w % agents.len();
            let worker = Worker::new(shared.clone(), agents[index].clone());
            (index, tokio::spawn(worker.run()))
        })
        .collect();
    let mut result = RunResult::new(agents.len());
    for (index, worker) in workers {
        let done = worker.await.context("a worker panicked")??;
        result.absorb(index, done);
    }
    result.elapsed = started.elapsed();
    let cpu_used = cpu::process_cpu_time().ok().zip(cpu_before);
    result.client_cores = cpu_used
        .map(|(now, then)| now.saturating_sub(then).as_secs_f64() / result.elapsed.as_secs_f64());
    Ok(result)
}

impl RunResult {
    fn new(agents: usize) -> RunResult {
        RunResult {
            elapsed: Duration::ZERO,
            steps: Steps::new(),
            completed: 0,
            bad_answers: 0,
            contention: contend::Count::default(),
            created: vec![Vec::new(); agents],
            client_cores: None,
        }
    }

    /// Add a worker of agent `index`.
    fn absorb(&mut self, index: usize, worker: WorkerTally) {
        self.steps.merge(&worker.steps);
        self.completed += worker.completed;
        self.bad_answers += worker.bad_answers;
        self.contention.merge(&worker.contention);
        self.created[index].extend(worker.created);
    }
}

/// One worker's counts.
struct WorkerTally {
    steps: Steps,
    created: Vec<Uuid>,
    completed: u64,
    bad_answers: u64,
    contention: contend::Count,
}

struct Worker {
    shared: Arc<Shared>,
    agent: Agent,
    /// The worker's connection: every step of every lifecycle.
    conn: Option<Conn>,
    /// Two more, opened on first use, for the extra claims of contended tasks.
    extra: [Option<Conn>; contend::CLAIMS - 1],
    done: WorkerTally,
}

impl Worker {
    fn new(shared: Arc<Shared>, agent: Agent) -> Worker {
        Worker {
            shared,
            agent,
            conn: None,
            extra: [None, None],
            done: WorkerTally {
                steps: Steps::new(),
                created: Vec::new(),
                completed: 0,
                bad_answers: 0,
                contention: contend::Count::default(),
            },
        }
    }

    async fn run(mut self) -> Result<WorkerTally> {
        let plan = self.shared.plan;
        loop {
            let n = self.shared.next.fetch_add(1, Ordering::Relaxed);
            if n >= plan.tasks {
                return Ok(self.done);
            }
            let contended = contend::picked(n, plan.tasks, plan.contend);
            self.lifecycle(n, contended).await?;
        }
    }

    /// Task `n` from creation to completion; `Err` only when a request cannot even be built.
    async fn lifecycle(&mut self, n: u64, contended: bool) -> Result<()> {
        let Some(id) = self.create(n).await? else {
            return Ok(());
        };
        self.done.created.push(id);
        let claimed = if contended {
            self.contended_claim(id).await?
        } else {
            self.advance(Step::Claim, id, "claim", json!({}), "claimed")
                .await?
        };
        if !claimed
            || !self
                .advance(Step::Start, id, "start", json!({}), "running")
                .await?
        {
            return Ok(());
        }
        let result = json!({"result": {"n": n}});
        if self
            .advance(Step::Complete, id, "complete", result, "completed")
            .await?
        {
            self.done.completed += 1;
        }
        Ok(())
    }

    /// The admin creates task `n`; its id when the answer is a pending task.
    async fn create(&mut self, n: u64) -> Result<Option<Uuid>> {
        let n = i64::try_from(n).context("task number out of range")?;
        let shared = &self.shared;
        let request = create_request(&shared.target, &shared.admin, &self.agent.id, n)?;
        let answer = call(shared, &mut self.conn, request.build()).await;
        Ok(self.check(Step::Create, &answer, "pending").await)
    }

    /// The agent moves task `id` with `action`; whether it is now in status `to`.
    async fn advance(
        &mut self,
        step: Step,
        id: Uuid,
        action: &str,
        body: Value,
        to: &str,
    ) -> Result<bool> {
        let shared = &self.shared;
        let request = move_request(&shared.target, &self.agent.key, id, action, &body)?;
        let answer = call(shared, &mut self.conn, request.build()).await;
        Ok(self.check(step, &answer, to).await.is_some())
    }

    /// Three claims of task `id` at once, on three connections; whether one of them won.
    async fn contended_claim(&mut self, id: Uuid) -> Result<bool> {
        let Worker {
            shared,
            conn,
            extra,
            ..
        } = self;
        let request = move_request(&shared.target, &self.agent.key, id, "claim", &json!({}))?;
        let [second, third] = extra;
        let answers = tokio::join!(
            call(shared, conn, request.build()),
            call(shared, second, request.build()),
            call(shared, third, request.build()),
        );
        let answers = [answers.0, answers.1, answers.2];
        let mut claims = Vec::with_capacity(answers.len());
        for answer in &answers {
            self.done.steps.record(Step::ContendedClaim, answer);
            let body = answer.response.as_ref().map(|r| &r.body[..]);
            claims.push(Claim::of(answer.outcome, body));
        }
        pause_after_error(&answers).await;
        Ok(self.done.contention.add(&claims))
    }

    /// Record `answer` under `step`; the task it carries when it is 2xx with status `expected`.
    async fn check(&mut self, step: Step, answer: &Answer, expected: &str) -> Option<Uuid> {
        self.done.steps.record(step, answer);
        pause_after_error(std::slice::from_ref(answer)).await;
        let response = answer.response.as_ref()?;
        if !response.status.is_success() {
            return None;
        }
        let task = serde_json::from_slice::<TaskRef>(&response.body).ok();
        match task {
            Some(task) if task.status == expected => Some(task.id),
            _ => {
                self.done.bad_answers += 1;
                None
            }
        }
    }
}

/// Send `request` on the connection in `slot`, opening one first if there is none; after a
/// failure the slot is emptied so the next request starts on a fresh connection.
async fn call(shared: &Shared, slot: &mut Option<Conn>, request: Request<Full<Bytes>>) -> Answer {
    if slot.as_ref().is_some_and(Conn::is_closed) {
        *slot = None; // closed by the server between requests: not an error of this request
    }
    let sent = Instant::now();
    let attempt = async {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(Conn::open(&shared.target).await?),
        };
        anyhow::Ok(conn.collect(request).await?)
    };
    let (outcome, response) = match tokio::time::timeout(shared.plan.timeout, attempt).await {
        Ok(Ok(response)) => (Outcome::Status(response.status.as_u16()), Some(response)),
        Ok(Err(_)) => (Outcome::TransportError, None),
        Err(_) => (Outcome::Timeout, None),
    };
    if response.is_none() {
        *slot = None;
    }
    Answer {
        outcome,
        response,
        latency: sent.elapsed(),
    }
}

async fn pause_after_error(answers: &[Answer]) {
    if answers
        .iter()
        .any(|a| matches!(a.outcome, Outcome::TransportError))
    {
        tokio::time::sleep(ERROR_PAUSE).await;
    }
}

/// `POST /api/tasks` as the admin: task `n` of type `bench` for `agent_id`.
fn create_request(target: &Target, admin: &str, agent_id: &str, n: i64) -> Result<RequestTemplate> {
    let body = json!({"agent_id": agent_id, "task_type": "bench", "task_data": {"n": n}});
    RequestTemplate::post_json(target, "/api/tasks", &body)?.bearer(admin)
}

/// `POST /api/tasks/{id}/{action}` as the agent.
fn move_request(
    target: &Target,
    key: &str,
    id: Uuid,
    action: &str,
    body: &Value,
) -> Result<RequestTemplate> {
    let path = format!("/api/tasks/{id}/{action}");
    RequestTemplate::post_json(target, &path, body)?.bearer(key)
}

/// One lifecycle for `agent` before timing, each step insisting on its status: a refusal (not
/// an admin, a key without the agent's scope, …) stops here once, with its reason. The id of the
/// probe's task, which verification counts with the run's.
pub async fn probe(target: &Target, admin: &str, agent: &Agent) -> Result<Uuid> {
    let create = create_request(target, admin, &agent.id, PROBE_N)?;
    let created = setup::expect(target, &create, StatusCode::CREATED, "creating a task").await?;
    let task: TaskRef = serde_json::from_slice(&created.body)
        .context("POST /api/tasks answered 201 without a task id and status")?;
    let moves = [
        ("claim", json!({})),
        ("start", json!({})),
        ("complete", json!({"result": {"n": PROBE_N}})),
    ];
    for (action, body) in moves {
        let request = move_request(target, &agent.key, task.id, action, &body)?;
        let what = format!("{action} a task as {}", agent.id);
        setup::expect(target, &request, StatusCode::OK, &what).await?;
    }
    Ok(task.id)
}
