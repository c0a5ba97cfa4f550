//! `helix-load`: the load generator behind the backend-api benchmarks in `docs/benchmarks.md`.
//!
//! `me`, `login`, `append`, `messages` and `ucf` drive a running backend-api over plain HTTP/1.1;
//! `ws-idle`, `ws-broadcast`, `ws-rooms` and `ws-storm` drive websocket-streaming over WebSockets
//! (see [`ws`]); `hash` times the server's Argon2id parameters on this machine, which bounds how
//! many logins per second a core can serve. `agents` runs task lifecycles against
//! agent-orchestration and checks the server's listing afterwards (see [`agents`]). `jobs` benchmarks
//! the helix-jobs queue on Redis, PostgreSQL or SQLite (see [`jobs`]).

mod agents;
mod chat;
mod cpu;
mod drive;
mod hash;
mod hooks;
mod http;
mod jobs;
mod login;
mod me;
mod report;
mod setup;
mod stats;
mod target;
mod ucf;
mod ws;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "helix-load",
    version,
    about = "Load generator for Helix backend-api benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up one user, then hammer `GET /api/me` with its JWT or API key.
    Me(MeArgs),
    /// Create K accounts, then log in round-robin across them.
    Login(LoginArgs),
    /// Time Argon2id hashing with the server's parameters (no server needed).
    Hash(hash::HashArgs),
    /// Set up users and conversations, then append messages round-robin across them.
    Append(ChatArgs),
    /// Set up users and conversations seeded with messages, then read the newest 50 of each.
    Messages(ChatArgs),
    /// Post batches of UCF samples as an admin.
    Ucf(UcfArgs),
    /// Hold N idle authenticated WebSockets open; the server's memory per connection.
    WsIdle(ws::idle::IdleArgs),
    /// N WebSockets subscribed to consciousness:stream; an admin publishes timed messages.
    WsBroadcast(ws::broadcast::BroadcastArgs),
    /// Two WebSockets per conversation channel; each room's first publishes at a fixed total rate.
    WsRooms(ws::rooms::RoomsArgs),
    /// Every client disconnects, then resumes with `since`: checks recovery is gap-free.
    WsStorm(ws::storm::StormArgs),
    /// Agents create → claim → start → complete tasks; then the task listing is verified.
    Agents(agents::AgentsArgs),
    /// helix-jobs on Redis, PostgreSQL or SQLite: drain, enqueue, latency and a kill test.
    Jobs(jobs::JobsArgs),
    /// Signed events into zapier-integration's `POST /api/hooks/{source}`.
    HooksIn(hooks::inbound::HooksInArgs),
    /// Deliveries from the worker to local endpoints, healthy and slow.
    HooksOut(hooks::outbound::HooksOutArgs),
}

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Users signed up (conversations are shared out among them).
    #[arg(long, default_value_t = 100)]
    users: usize,
    /// Conversations created; requests go to each in turn.
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// `messages` only: messages appended to each conversation before reading.
    #[arg(long, default_value_t = 50)]
    seed: usize,
}

#[derive(Args)]
pub struct UcfArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Samples per request (1 to 1000).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The server's HELIX_CREATOR_EMAIL (signed up, or logged into on later runs).
    #[arg(long, default_value = "bench-admin@bench.local")]
    admin_email: String,
    #[arg(long, default_value = "bench-admin-password")]
    admin_password: String,
}

/// How `me` authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// The access token (JWT) returned by signup.
    Jwt,
    /// An `hx_` API key created with that token.
    Key,
}

#[derive(Args)]
pub struct MeArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Credential sent in `Authorization: Bearer …`.
    #[arg(long, value_enum, default_value_t = AuthKind::Jwt)]
    auth: AuthKind,
}

#[derive(Args)]
pub struct LoginArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Accounts created up front and logged into round-robin (spreads the per-account limit).
    #[arg(long, default_value_t = 16)]
    accounts: usize,
}

/// Options shared by the commands that send HTTP load.
#[derive(Args)]
pub struct LoadArgs {
    /// Base URL of backend-api (plain http).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Keep-alive HTTP/1.1 connections, one task each.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Open loop at this many requests/s in total; without it, closed loop (back-to-back).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of load before measuring; excluded from every figure.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds before one request counts as a timeout (its connection is then replaced).
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Client runtime threads (default: all cores; lower it to leave cores to a local server).
    #[arg(long)]
    threads: Option<usize>,
}

impl LoadArgs {
    /// The validated plan, so the drivers never see a nonsensical or unbounded run.
    fn plan(&self) -> Result<drive::Plan> {
        if !(1..=10_000).contains(&self.connections) {
            bail!("--connections must be between 1 and 10000");
        }
        let duration = seconds("--duration", self.duration, 0.1, 3600.0)?;
        let warmup = seconds("--warmup", self.warmup, 0.0, 600.0)?;
        let timeout = seconds("--timeout", self.timeout, 0.001, 600.0)?;
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 10_000_000.0) {
                bail!("--rate must be a positive number of requests/s (at most 10000000)");
            }
        }
        Ok(drive::Plan {
            connections: self.connections,
            warmup,
            duration,
            rate: self.rate,
            timeout,
        })
    }

    fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        runtime(self.threads)
    }
}

/// The client runtime: `threads` workers, or one per core.
fn runtime(threads: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        builder.worker_threads(threads);
    }
    Ok(builder.enable_all().build()?)
}

fn seconds(flag: &str, value: f64, min: f64, max: f64) -> Result<Duration> {
    if !(value.is_finite() && value >= min && value <= max) {
        bail!("{flag} must be between {min} and {max} seconds");
    }
    Ok(Duration::from_secs_f64(value))
}

fn main() -> ExitCode {
    let outcome = match Cli::parse().command {
        Command::Me(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(me::run(args))),
        Command::Login(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(login::run(args))),
        Command::Append(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(chat::append(args))),
        Command::Messages(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(chat::messages(args))),
        Command::Ucf(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(ucf::run(args))),
        Command::WsIdle(args) => args
            .ws
            .runtime()
            .and_then(|rt| rt.block_on(ws::idle::run(args))),
        Command::WsBroadcast(args) => args
            .ws
            .runtime()
            .and_then(|rt| rt.block_on(ws::broadcast::run(args))),
        Command::WsRooms(args) => args
            .ws
            .runtime()
            .and_then(|rt| rt.block_on(ws::rooms::run(args))),
        Command::WsStorm(args) => args
            .ws
            .runtime()
            .and_then(|rt| rt.block_on(ws::storm::run(args))),
        Command::HooksIn(args) => args
            .load
            .runtime()
            .and_then(|rt| rt.block_on(hooks::inbound::run(args))),
        Command::HooksOut(args) => {
            runtime(Some(args.threads)).and_then(|rt| rt.block_on(hooks::outbound::run(args)))
        }
        Command::Agents(args) => args.runtime().and_then(|rt| rt.block_on(agents::run(args))),
        // Each `jobs` command builds the runtimes it needs (its worker gets a thread of its own).
        Command::Jobs(args) => jobs::main(args),
        // No runtime: hashing runs on this thread alone, so process CPU time is its CPU time.
        Command::Hash(args) => hash::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line with every cause, e.g. "signup failed: 429 Too Many Requests (…)".
            eprintln!("helix-load: {err:#}");
            ExitCode::FAILURE
        }
    }
}
