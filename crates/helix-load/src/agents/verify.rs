//! After the run: does the server's task listing agree with what the run did?
//!
//! For each agent, with its own key, `GET /api/tasks?agent_id=…&status=completed&limit=200` is
//! followed through `next_before` (newest first), then the same without `status`. Agents are
//! reused across runs, so only this run's tasks count: task ids are UUIDv7 (time-ordered) and the
//! listing is ordered by id, so the run's tasks are exactly those at or above the oldest id it
//! created for that agent, and paging stops below it.
//!
//! Every created id must be listed completed exactly once (with its agent and `result` equal to
//! its `task_data`), as many completed tasks listed as the agent created, no id twice, and none of
//! the run's range in another status (which also catches a task created by a request whose answer
//! was lost).

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::roster::Agent;
use crate::http::RequestTemplate;
use crate::setup;
use crate::target::Target;

/// Agents checked at once.
const CONCURRENCY: usize = 8;
/// The listing's largest page.
const PAGE: u32 = 200;
/// Agents whose mismatch is described in the report; the rest are only counted.
const DESCRIBED: usize = 5;

/// One page of `GET /api/tasks`.
#[derive(Debug, Deserialize)]
pub struct Page {
    tasks: Vec<Listed>,
    next_before: Option<Uuid>,
}

/// A listed task: what verification looks at.
#[derive(Debug, Clone, Deserialize)]
pub struct Listed {
    id: Uuid,
    agent_id: String,
    status: String,
    #[serde(default)]
    task_data: Value,
    #[serde(default)]
    result: Option<Value>,
}

impl Listed {
    /// Completed, for `agent_id`, with the result the run gave it (`{"n": n}`, as its data).
    fn intact(&self, agent_id: &str) -> bool {
        self.status == "completed"
            && self.agent_id == agent_id
            && self.result.as_ref() == Some(&self.task_data)
    }
}

/// How the listing compares with the run, for one agent or summed over all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Task ids the run created (with the setup probe).
    pub created: u64,
    /// Tasks of the run listed with `status=completed`.
    pub listed_completed: u64,
    /// Created ids listed completed exactly once.
    pub completed_once: u64,
    /// Created ids missing from the completed listing.
    pub missing: u64,
    /// Extra appearances of an id (in the completed listing, or created twice).
    pub duplicates: u64,
    /// Completed tasks in the run's range the run did not create.
    pub unexpected: u64,
    /// Completed listings with the wrong agent, status or result.
    pub damaged: u64,
    /// Tasks in the run's range in a status other than completed, by status.
    pub other_status: BTreeMap<String, u64>,
    /// A line for each of the first few agents that disagree.
    pub mismatches: Vec<String>,
    /// How many agents disagree.
    pub agents_off: u64,
}

impl Verdict {
    /// Everything agrees.
    pub fn ok(&self) -> bool {
        self.listed_completed == self.created
            && self.completed_once == self.created
            && self.missing == 0
            && self.duplicates == 0
            && self.unexpected == 0
            && self.damaged == 0
            && self.other_status.is_empty()
    }

    fn add(&mut self, agent_id: &str, agent: Verdict) {
        if !agent.ok() {
            self.agents_off += 1;
            if self.mismatches.len() < DESCRIBED {
                self.mismatches.push(agent.describe(agent_id));
            }
        }
        self.created += agent.created;
        self.listed_completed += agent.listed_completed;
        self.completed_once += agent.completed_once;
        self.missing += agent.missing;
        self.duplicates += agent.duplicates;
        self.unexpected += agent.unexpected;
        self.damaged += agent.damaged;
        for (status, n) in agent.other_status {
            *self.other_status.entry(status).or_default() += n;
        }
    }

    /// `bench-agent-3: created 200, listed completed 199, missing 1, …`.
    fn describe(&self, agent_id: &str) -> String {
        let mut line = format!(
            "{agent_id}: created {}, listed completed {}, completed once {}, missing {}, \
             duplicates {}, unexpected {}, damaged {}",
            self.created,
            self.listed_completed,
            self.completed_once,
            self.missing,
            self.duplicates,
            self.unexpected,
            self.damaged
        );
        for (status, n) in &self.other_status {
            line.push_str(&format!(", {status} {n}"));
        }
        line
    }
}

/// Check every agent's listing against the ids the run created for it (`created[i]` for
/// `agents[i]`).
pub async fn check(target: &Target, agents: &[Agent], created: &[Vec<Uuid>]) -> Result<Verdict> {
    futures::stream::iter(agents.iter().zip(created))
        .map(|(agent, ids)| async move {
            let verdict = check_agent(target, agent, ids).await?;
            anyhow::Ok((agent.id.as_str(), verdict))
        })
        .buffered(CONCURRENCY)
        .try_fold(
            Verdict::default(),
            |mut total, (agent_id, verdict)| async move {
                total.add(agent_id, verdict);
                Ok(total)
            },
        )
        .await
}

async fn check_agent(target: &Target, agent: &Agent, created: &[Uuid]) -> Result<Verdict> {
    let Some(&floor) = created.iter().min() else {
        return Ok(Verdict::default()); // this agent's workers got no task number
    };
    let completed = list(target, agent, Some("completed"), floor).await?;
    let all = list(target, agent, None, floor).await?;
    Ok(judge(&agent.id, created, &completed, &all))
}

/// The agent's tasks with ids from `floor` up, newest first, optionally of one status.
async fn list(
    target: &Target,
    agent: &Agent,
    status: Option<&str>,
    floor: Uuid,
) -> Result<Vec<Listed>> {
    let mut kept = Vec::new();
    let mut before = None;
    loop {
        let page = fetch(target, agent, status, before).await?;
        let (tasks, next) = in_run(page, floor);
        kept.extend(tasks);
        let Some(next) = next else {
            return Ok(kept);
        };
        if before.is_some_and(|before| next >= before) {
            bail!(
                "listing {}'s tasks: next_before {next} does not go back",
                agent.id
            );
        }
        before = Some(next);
    }
}

async fn fetch(
    target: &Target,
    agent: &Agent,
    status: Option<&str>,
    before: Option<Uuid>,
) -> Result<Page> {
    let mut path = format!("/api/tasks?agent_id={}&limit={PAGE}", agent.id);
    if let Some(status) = status {
        path.push_str(&format!("&status={status}"));
    }
    if let Some(before) = before {
        path.push_str(&format!("&before={before}"));
    }
    let request = RequestTemplate::get(target, &path)?.bearer(&agent.key)?;
    let what = format!("listing {}'s tasks", agent.id);
    let response = setup::expect(target, &request, StatusCode::OK, &what).await?;
    serde_json::from_slice(&response.body)
        .with_context(|| format!("GET {path} answered without tasks and next_before"))
}

/// The page's tasks from `floor` up, and where the next page starts (`None`: the listing ended,
/// or went below `floor`, so nothing further is the run's).
pub fn in_run(page: Page, floor: Uuid) -> (Vec<Listed>, Option<Uuid>) {
    let below = page.tasks.iter().any(|task| task.id < floor);
    let tasks = page
        .tasks
        .into_iter()
        .filter(|task| task.id >= floor)
        .collect();
    (tasks, if below { None } else { page.next_before })
}

/// Compare one agent's listings (`completed`: with `status=completed`; `all`: without) with the
/// ids the run created for it.
pub fn judge(agent_id: &str, created: &[Uuid], completed: &[Listed], all: &[Listed]) -> Verdict {
    let mine: HashSet<Uuid> = created.iter().copied().collect();
    let mut seen: HashMap<Uuid, u64> = HashMap::new();
    for task in completed {
        *seen.entry(task.id).or_default() += 1;
    }
    let mut other_status = BTreeMap::new();
    for task in all.iter().filter(|task| task.status != "completed") {
        *other_status.entry(task.status.clone()).or_default() += 1;
    }
    let listed_twice: u64 = seen.values().map(|n| n - 1).sum();
    Verdict {
        created: created.len() as u64,
        listed_completed: completed.len() as u64,
        completed_once: mine.iter().filter(|id| seen.get(id) == Some(&1)).count() as u64,
        missing: mine.iter().filter(|id| !seen.contains_key(id)).count() as u64,
        duplicates: listed_twice + (created.len() - mine.len()) as u64,
        unexpected: seen.keys().filter(|id| !mine.contains(id)).count() as u64,
        damaged: completed.iter().filter(|t| !t.intact(agent_id)).count() as u64,
        other_status,
        mismatches: Vec::new(),
        agents_off: 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Ids in creation order, as the server's `Uuid::now_v7` makes them.
    fn ids(count: usize) -> Vec<Uuid> {
        let mut ids: Vec<Uuid> = (0..count).map(|_| Uuid::now_v7()).collect();
        ids.sort();
        ids
    }

    fn task(id: Uuid, status: &str, n: i64) -> Listed {
        Listed {
            id,
            agent_id: "bench-agent-0".to_owned(),
            status: status.to_owned(),
            task_data: json!({"n": n}),
            result: (status == "completed").then(|| json!({"n": n})),
        }
    }

    fn completed(ids: &[Uuid]) -> Vec<Listed> {
        ids.iter()
            .rev()
            .map(|id| task(*id, "completed", 1))
            .collect()
    }

    #[test]
    fn every_created_task_completed_once_agrees() {
        let created = ids(5);
        let listed = completed(&created);
        let verdict = judge("bench-agent-0", &created, &listed, &listed);
        assert!(verdict.ok(), "{verdict:?}");
        assert_eq!(verdict.completed_once, 5);
    }

    #[test]
    fn a_missing_or_stuck_task_is_a_mismatch() {
        let created = ids(3);
        let listed = completed(&created[1..]);
        let mut all = listed.clone();
        all.push(task(created[0], "claimed", 0));
        let verdict = judge("bench-agent-0", &created, &listed, &all);
        assert!(!verdict.ok());
        assert_eq!((verdict.missing, verdict.listed_completed), (1, 2));
        assert_eq!(verdict.other_status.get("claimed"), Some(&1));
    }

    #[test]
    fn duplicates_and_strangers_are_mismatches() {
        let created = ids(2);
        let mut listed = completed(&created);
        listed.push(task(created[0], "completed", 1));
        let twice = judge("bench-agent-0", &created, &listed, &listed);
        assert_eq!((twice.duplicates, twice.completed_once), (1, 1));
        assert!(!twice.ok());

        let stranger = completed(&[created[0], created[1], Uuid::now_v7()]);
        let verdict = judge("bench-agent-0", &created, &stranger, &stranger);
        assert_eq!(verdict.unexpected, 1);
        assert!(!verdict.ok());

        let created_twice = [created[0], created[0]];
        let verdict = judge(
            "bench-agent-0",
            &created_twice,
            &listed[1..2],
            &listed[1..2],
        );
        assert_eq!(verdict.duplicates, 1);
        assert!(!verdict.ok());
    }

    #[test]
    fn a_wrong_result_or_agent_is_damage() {
        let created = ids(2);
        let mut listed = completed(&created);
        listed[0].result = Some(json!({"n": 2}));
        listed[1].agent_id = "bench-agent-1".to_owned();
        let verdict = judge("bench-agent-0", &created, &listed, &listed);
        assert_eq!(verdict.damaged, 2);
        assert!(!verdict.ok());
    }

    #[test]
    fn paging_stops_below_the_runs_oldest_task() {
        let all = ids(6); // 0..2 from an earlier run, 2..6 this run's
        let floor = all[2];
        let page = |tasks: &[Uuid], next| Page {
            tasks: completed(tasks),
            next_before: next,
        };
        let (kept, next) = in_run(page(&all[4..], Some(all[4])), floor);
        assert_eq!((kept.len(), next), (2, Some(all[4])));
        let (kept, next) = in_run(page(&all[1..4], Some(all[1])), floor);
        assert_eq!((kept.len(), next), (2, None));
        let (kept, next) = in_run(page(&all[2..4], None), floor);
        assert_eq!((kept.len(), next), (2, None));
    }

    #[test]
    fn agents_add_up_and_the_first_few_are_described() {
        let created = ids(2);
        let listed = completed(&created);
        let mut total = Verdict::default();
        total.add(
            "bench-agent-0",
            judge("bench-agent-0", &created, &listed, &listed),
        );
        total.add(
            "bench-agent-0",
            judge("bench-agent-0", &created, &listed[..1], &listed),
        );
        assert_eq!((total.created, total.missing, total.agents_off), (4, 1, 1));
        assert!(total.mismatches[0].starts_with("bench-agent-0: created 2, listed completed 1"));
        assert!(!total.ok());
    }
}
