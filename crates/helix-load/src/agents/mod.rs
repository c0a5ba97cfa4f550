//! `helix-load agents`: task lifecycles against agent-orchestration.
//!
//! Setup ([`roster`]): the admin (the server's `HELIX_CREATOR_EMAIL`, signed up or logged into as
//! `ucf` does) registers `--agents` agents `bench-agent-<i>` (an existing one is reused), mints
//! each an API key with the scope `agent:<id>` on backend-api, and each agent heartbeats once with
//! its key; then one untimed lifecycle checks the whole path.
//!
//! The timed run ([`lifecycle`]): every agent is `--per-agent` closed-loop workers, each on its own
//! keep-alive connection: the admin creates a task for the agent, the agent claims, starts and
//! completes it, and the worker takes the next task number until `--tasks` have been handed out.
//! `--contend N` fires, for N of the tasks, two extra claims at once with the real one
//! ([`contend`]). Afterwards the server's task listing is checked against what the run created
//! ([`verify`]), and the result printed ([`summary`]); any mismatch makes the exit status non-zero.
//!
//! Every create counts against the admin's per-user rate limit and every move against the
//! agent's key (`HELIX_RATE_LIMIT_PER_MINUTE`, 1200 by default): start the servers with a far
//! higher one, or the 429s show up as errors and as tasks left behind.

mod contend;
mod lifecycle;
mod roster;
mod summary;
mod verify;

#[cfg(test)]
mod stub;

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::target::Target;
use crate::ucf;

#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// agent-orchestration's base URL (plain http://).
    #[arg(long, default_value = "http://127.0.0.1:8003")]
    url: String,
    /// backend-api's base URL (plain http://), for the admin's token and the agents' API keys.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    api_url: String,
    /// Agents `bench-agent-0` … registered (or reused) and given a key each.
    #[arg(long, default_value_t = 50)]
    agents: usize,
    /// Task lifecycles (create → claim → start → complete) run in total.
    #[arg(long, default_value_t = 10_000)]
    tasks: u64,
    /// Closed-loop workers per agent, each with its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    per_agent: usize,
    /// Tasks whose claim races two extra claims by the same agent; exactly one may win.
    #[arg(long, default_value_t = 0)]
    contend: u64,
    /// The server's HELIX_CREATOR_EMAIL (signed up, or logged into on later runs).
    #[arg(long, default_value = "bench-admin@bench.local")]
    admin_email: String,
    #[arg(long, default_value = "bench-admin-password")]
    admin_password: String,
    /// Seconds before one request counts as a timeout (its connection is then replaced).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Client runtime threads (default: all cores; lower it to leave cores to a local server).
    #[arg(long)]
    threads: Option<usize>,
}

/// [`AgentsArgs`], checked.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub agents: usize,
    pub per_agent: usize,
    pub tasks: u64,
    pub contend: u64,
    pub timeout: Duration,
}

impl Plan {
    pub fn workers(&self) -> usize {
        self.agents * self.per_agent
    }
}

impl AgentsArgs {
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        crate::runtime(self.threads)
    }

    fn plan(&self) -> Result<Plan> {
        if !(1..=10_000).contains(&self.agents) {
            bail!("--agents must be 1 to 10000");
        }
        if !(1..=100).contains(&self.per_agent) {
            bail!("--per-agent must be 1 to 100");
        }
        if !(1..=10_000_000).contains(&self.tasks) {
            bail!("--tasks must be 1 to 10000000");
        }
        if self.contend > self.tasks {
            bail!("--contend must be at most --tasks ({})", self.tasks);
        }
        Ok(Plan {
            agents: self.agents,
            per_agent: self.per_agent,
            tasks: self.tasks,
            contend: self.contend,
            timeout: crate::seconds("--timeout", self.timeout, 0.001, 600.0)?,
        })
    }
}

pub async fn run(args: AgentsArgs) -> Result<()> {
    let plan = args.plan()?;
    let target = Target::resolve(&args.url).await?;
    let api = Target::resolve(&args.api_url).await?;
    let admin = ucf::admin_token(&api, &args.admin_email, &args.admin_password)
        .await
        .context("the admin needs the server's HELIX_CREATOR_EMAIL account (--admin-email)")?;
    let agents = roster::set_up(&target, &api, &admin, plan.agents).await?;
    let probe = lifecycle::probe(&target, &admin, &agents[0]).await?;
    eprintln!(
        "running {} lifecycles on {} workers…",
        plan.tasks,
        plan.workers()
    );
    let mut result = lifecycle::run(&target, &admin, &agents, &plan).await?;
    result.created[0].push(probe);
    eprintln!("verifying against the task listing…");
    let verdict = verify::check(&target, &agents, &result.created).await?;
    roster::revoke(&api, &admin, &agents).await;
    summary::print(&plan, &target, &result, &verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: std::net::SocketAddr, contend: u64) -> AgentsArgs {
        AgentsArgs {
            url: format!("http://{addr}"),
            api_url: format!("http://{addr}"),
            agents: 4,
            tasks: 300,
            per_agent: 2,
            contend,
            admin_email: "admin@bench.local".to_owned(),
            admin_password: "admin-password".to_owned(),
            timeout: 5.0,
            threads: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_verify_against_a_faithful_server_twice() {
        let addr = stub::start(false).await;
        run(args(addr, 30)).await.unwrap();
        // The agents exist now (409, reused); the first run's tasks must not count.
        run(args(addr, 0)).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_claim_won_twice_fails_the_run() {
        let addr = stub::start(true).await;
        let err = run(args(addr, 30)).await.unwrap_err();
        assert!(err.to_string().contains("contended claims"), "{err:#}");
    }
}
