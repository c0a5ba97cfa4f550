//! Progress lines on stderr for runs that take more than a few seconds: `label: done / total
//! (rate/s)` every [`EVERY`], from a counter the measured tasks bump.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::thousands;

pub const EVERY: Duration = Duration::from_secs(2);

/// Prints while alive; stops when dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start printing `label`'s progress towards `total`.
pub fn spawn(label: String, total: u64, done: Arc<AtomicU64>) -> Progress {
    let task = tokio::spawn(async move {
        let start = Instant::now();
        loop {
            tokio::time::sleep(EVERY).await;
            let n = done.load(Ordering::Relaxed);
            eprintln!("{}", line(&label, n, total, start.elapsed()));
        }
    });
    Progress { task }
}

/// One progress line.
pub fn line(label: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "  … {label}: {} / {} ({}/s)",
        thousands(done as f64),
        thousands(total as f64),
        thousands(rate)
    )
}
