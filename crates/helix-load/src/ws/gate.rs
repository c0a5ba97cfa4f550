//! Opening thousands of connections: at most `--open-concurrency` handshakes (connect, upgrade,
//! welcome, subscribe) in flight at once, each connection task reporting once whether it made
//! it, and the coordinator waiting for every report while printing progress every 1000.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use tokio::sync::{mpsc, Semaphore};

use super::tally::Counts;

/// Progress is printed each time this many more connections have reported.
const PROGRESS_EVERY: usize = 1000;

/// Handed to every connection task.
#[derive(Debug, Clone)]
pub struct Gate {
    permits: Arc<Semaphore>,
    reports: mpsc::UnboundedSender<Result<(), String>>,
}

/// Kept by the coordinator.
#[derive(Debug)]
pub struct Opening {
    reports: mpsc::UnboundedReceiver<Result<(), String>>,
}

/// How the opening went.
#[derive(Debug, Default)]
pub struct Opened {
    pub ok: usize,
    pub failed: usize,
    /// Failures by reason.
    pub errors: Counts,
    pub seconds: f64,
}

pub fn gate(concurrency: usize) -> (Gate, Opening) {
    let (reports, receiver) = mpsc::unbounded_channel();
    let gate = Gate {
        permits: Arc::new(Semaphore::new(concurrency.max(1))),
        reports,
    };
    (gate, Opening { reports: receiver })
}

impl Gate {
    /// Run `setup` while holding a permit and report its outcome; the opened connection, if any.
    pub async fn open<T>(&self, setup: impl Future<Output = Result<T>>) -> Option<T> {
        let outcome = match self.permits.acquire().await {
            Ok(_permit) => setup.await,
            Err(_) => Err(anyhow::anyhow!("the run was abandoned")),
        };
        let report = outcome
            .as_ref()
            .map(|_| ())
            .map_err(|err| format!("{err:#}"));
        // The coordinator may have given up waiting; then nobody needs the report.
        let _ = self.reports.send(report);
        outcome.ok()
    }
}

impl Opening {
    /// Wait until `expected` connections have reported, printing progress. Fails when every
    /// connection failed, naming why.
    pub async fn wait(mut self, expected: usize, what: &str) -> Result<Opened> {
        let started = Instant::now();
        let mut opened = Opened::default();
        while opened.ok + opened.failed < expected {
            let Some(report) = self.reports.recv().await else {
                break; // every task ended without reporting: only if they panicked
            };
            match report {
                Ok(()) => opened.ok += 1,
                Err(reason) => {
                    opened.failed += 1;
                    opened.errors.add(reason);
                }
            }
            let done = opened.ok + opened.failed;
            if done.is_multiple_of(PROGRESS_EVERY) || done == expected {
                eprintln!(
                    "  {what}: {done}/{expected} ({} failed) after {:.1} s",
                    opened.failed,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        opened.seconds = started.elapsed().as_secs_f64();
        if opened.ok == 0 {
            bail!(
                "no connection could be opened: {}",
                opened.errors.describe()
            );
        }
        if opened.failed > 0 {
            eprintln!("  failures: {}", opened.errors.describe());
        }
        Ok(opened)
    }
}

/// Wait for tasks after telling them to stop; those still running after `grace` are abandoned.
pub async fn join_all<T>(tasks: Vec<tokio::task::JoinHandle<T>>, grace: Duration) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + grace;
    let mut done = Vec::with_capacity(tasks.len());
    let mut tasks = tasks.into_iter();
    for mut task in tasks.by_ref() {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(Ok(value)) => done.push(value),
            Ok(Err(err)) => eprintln!("warning: a connection task failed: {err}"),
            Err(_) => {
                eprintln!(
                    "warning: connection tasks still running {grace:?} after the stop were \
                     abandoned; their figures are missing"
                );
                task.abort();
                break;
            }
        }
    }
    tasks.for_each(|task| task.abort());
    done
}
