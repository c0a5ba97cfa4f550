//! `helix schedule add|list|pause|resume|remove`: the beat's schedules, edited in the database
//! while beats run (they re-read the table at least once a second; no restart).

use std::sync::Arc;

use chrono::Utc;
use helix_jobs::schedule::{self, parse_every, Cadence, CatchUp, NewSchedule, Schedule};
use helix_jobs::{Jobs, Target};

use super::jobs::Format;
use super::Failure;
use crate::config::Config;
use crate::platform::runtime::StartError;
use helix_store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Add a schedule: a job of KIND every interval, or at the times a cron expression matches
    Add {
        name: String,
        kind: String,
        /// A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first
        #[arg(long, conflicts_with = "every", required_unless_present = "every")]
        cron: Option<String>,
        /// The cron expression's time zone (an IANA name) [default: UTC]
        #[arg(long, requires = "cron")]
        tz: Option<String>,
        /// A fixed interval: `30s`, `5m`, `1h30m`, `1d`
        #[arg(long)]
        every: Option<String>,
        /// The jobs' payload, as JSON
        #[arg(long, default_value = "{}")]
        payload: String,
        #[arg(long, default_value = "default")]
        queue: String,
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// What to do with fire times missed while no beat ran: skip or run_once
        #[arg(long, default_value = "run_once")]
        catch_up: String,
        /// Add it paused
        #[arg(long)]
        paused: bool,
    },
    /// Every schedule with its next fire time
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop firing a schedule (it stays, with its settings)
    Pause { name: String },
    /// Fire again, from the first fire time after now (missed ones are not made up)
    Resume { name: String },
    /// Delete a schedule
    Remove { name: String },
}

pub async fn run(config: Config, args: Args) -> Result<(), Failure> {
    let store = open(&config).await?;
    let result = dispatch(&store, args.command).await;
    store.close().await;
    result
}

fn fail(e: schedule::ScheduleError) -> Failure {
    anyhow::anyhow!("{e}").into()
}

async fn dispatch(store: &Arc<dyn Store>, command: ScheduleCommand) -> Result<(), Failure> {
    let schedules = schedule::open(&**store);
    let now = Utc::now();
    match command {
        ScheduleCommand::Add {
            name,
            kind,
            cron,
            tz,
            every,
            payload,
            queue,
            priority,
            catch_up,
            paused,
        } => {
            let cadence = match (cron, every) {
                (Some(expr), _) => Cadence::cron(&expr, tz.as_deref()),
                (None, Some(every)) => parse_every(&every).and_then(Cadence::every),
                (None, None) => unreachable!("clap requires --cron or --every"),
            }
            .map_err(fail)?;
            let mut new = NewSchedule::new(name, kind, cadence);
            new.payload = payload;
            new.queue = queue;
            new.priority = priority;
            new.catch_up = catch_up.parse::<CatchUp>().map_err(fail)?;
            new.paused = paused;
            let jobs = helix_jobs::open(Target::Store(store.clone()))
                .await
                .map_err(StartError::from)?;
            new.check_job(&Jobs::new(jobs, crate::shared::jobs::registry()))
                .map_err(fail)?;
            let added = schedules.add(new, now).await.map_err(fail)?;
            println!("{}", describe(&added));
        }
        ScheduleCommand::List { format } => {
            let all = schedules.list().await.map_err(fail)?;
            match format {
                Format::Json => {
                    println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default())
                }
                Format::Text if all.is_empty() => println!("no schedules"),
                Format::Text => all.iter().for_each(|s| println!("{}", describe(s))),
            }
        }
        ScheduleCommand::Pause { name } => {
            println!(
                "{}",
                describe(&schedules.pause(&name, now).await.map_err(fail)?)
            );
        }
        ScheduleCommand::Resume { name } => {
            println!(
                "{}",
                describe(&schedules.resume(&name, now).await.map_err(fail)?)
            );
        }
        ScheduleCommand::Remove { name } => {
            schedules.remove(&name).await.map_err(fail)?;
            println!("removed {name}");
        }
    }
    Ok(())
}

/// One line per schedule: name, what, when, state.
fn describe(s: &Schedule) -> String {
    let when = match &s.cadence {
        Cadence::Every(every) => format!("every {}", schedule::format_every(*every)),
        Cadence::Cron { expr, timezone } => format!("cron {expr:?} {timezone}"),
    };
    let state = if s.paused {
        "paused".to_owned()
    } else {
        format!("next {}", s.next_fire_at.format("%Y-%m-%d %H:%M:%S%.3fZ"))
    };
    format!(
        "{}: {} on {} {when}, catch-up {}, {state}",
        s.name, s.kind, s.queue, s.catch_up
    )
}

/// The beat's database (schedules live beside its other rows), migrated.
async fn open(config: &Config) -> Result<Arc<dyn Store>, Failure> {
    let planned = super::schema_owner::plan(config, "beat")?;
    super::schema_owner::open_migrated(config, &planned).await
}
