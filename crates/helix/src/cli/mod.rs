//! The command line: one file per subcommand. [`run`] dispatches and maps failures to exit codes
//! (2: configuration, 1: anything else).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
use crate::platform::runtime::StartError;

mod agents;
mod audit;
mod check;
mod config_cmd;
mod env;
mod jobs;
mod maintenance;
mod matrix;
mod migrate;
mod schedule;
mod schema_owner;
mod serve;
mod start;
mod up;

#[derive(Debug, Parser)]
#[command(
    name = "helix",
    version,
    about = "Every Helix service in one binary, and the tool that wires them"
)]
pub struct Cli {
    /// The deployment manifest [default: ./helix.toml if present]
    #[arg(long, global = true, value_name = "PATH", env = "HELIX_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log line format [default: pretty]
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process, each on its own port
    Up(up::Args),
    /// Run one service (the start command of a container)
    Serve(serve::Args),
    /// Apply the database schema (idempotent; safe to run from several processes)
    Migrate(migrate::Args),
    /// Print the connection matrix: which service needs what, and why
    Matrix(matrix::Args),
    /// Print the built-in configuration
    Config(config_cmd::Args),
    /// Print the resolved environment of one service
    Env(env::Args),
    /// Validate the manifest and environment against the matrix
    Check(check::Args),
    /// Verify the audit log's hash chain, sign checkpoints of its head
    Audit(audit::Args),
    /// Switch maintenance mode on or off for every service
    Maintenance(maintenance::Args),
    /// Manage agent-orchestration's roster (seed the default agents)
    Agents(agents::Args),
    /// Enqueue, inspect, retry and cancel background jobs; per-queue stats
    Jobs(jobs::Args),
    /// Add, list, pause, resume and remove the beat's periodic schedules
    Schedule(schedule::Args),
    /// Print backend-api's OpenAPI document
    Openapi,
}

/// Why a command failed, and so its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// The command already printed why (e.g. `helix check` found problems).
    #[error("")]
    Reported,
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Config(_) => ExitCode::from(2),
            _ => ExitCode::from(1),
        }
    }
}

/// Commands that need no configuration run before it is loaded, so they work anywhere.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Matrix(args) => return finish(matrix::run(args)),
        Command::Config(args) => return finish(config_cmd::run(args)),
        Command::Openapi => {
            print!("{}", crate::services::backend_api::openapi::document());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let config = match Config::load(cli.config.as_deref(), cli.log_format) {
        Ok(c) => c,
        Err(e) => return finish(Err(e.into())),
    };
    crate::telemetry::init(
        config.settings.log_format,
        config.settings.log_filter.as_deref(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return finish(Err(anyhow::Error::from(e).into())),
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) => up::run(config, args).await,
            Command::Serve(args) => serve::run(config, args).await,
            Command::Migrate(args) => migrate::run(config, args).await,
            Command::Env(args) => env::run(config, args),
            Command::Check(args) => check::run(config, args).await,
            Command::Audit(args) => audit::run(config, args).await,
            Command::Maintenance(args) => maintenance::run(config, args).await,
            Command::Agents(args) => agents::run(config, args).await,
            Command::Jobs(args) => jobs::run(config, args).await,
            Command::Schedule(args) => schedule::run(config, args).await,
            Command::Matrix(_) | Command::Config(_) | Command::Openapi => {
                unreachable!("handled above")
            }
        }
    });
    finish(result)
}

fn finish(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
