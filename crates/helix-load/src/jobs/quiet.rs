//! Measuring on a shared machine (`--quiet <cores>`): wait until other processes leave the
//! machine alone before a measurement, and repeat one they disturbed. Without `--quiet` every
//! measurement runs at once and counts; each one prints what other processes used either way.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::{usage, BackendArgs};

/// Longest wait for a quiet machine before one measurement.
const WAIT_LIMIT: Duration = Duration::from_secs(30 * 60);
/// The window over which the machine must be quiet.
const WINDOW: Duration = Duration::from_secs(2);
/// Tries of one measurement before its last result is kept with a warning.
const TRIES: u32 = 5;

/// Run `measure` (again while `other` of its result exceeds `--quiet`).
pub async fn guarded<T, F, Fut>(
    args: &BackendArgs,
    what: &str,
    mut measure: F,
    other: impl Fn(&T) -> f64,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let Some(limit) = args.quiet else {
        return measure().await;
    };
    let mut attempt = 1;
    loop {
        wait_idle(args, limit).await?;
        let out = measure().await?;
        let seen = other(&out);
        if seen <= limit {
            return Ok(out);
        }
        if attempt == TRIES {
            eprintln!(
                "  … {what}: other processes used {seen:.2} cores in every try; kept the last"
            );
            return Ok(out);
        }
        eprintln!(
            "  … {what}: other processes used {seen:.2} cores (over {limit}); measuring again"
        );
        attempt += 1;
    }
}

/// Return once everything but this process used less than `limit` cores over [`WINDOW`].
async fn wait_idle(args: &BackendArgs, limit: f64) -> Result<()> {
    let start = Instant::now();
    let mut said = false;
    loop {
        let before = usage::snapshot(args.backend);
        tokio::time::sleep(WINDOW).await;
        // While this process waits, the server's work is someone else's too.
        let cpu = before.until(&usage::snapshot(args.backend));
        let other = (cpu.machine - cpu.own).max(0.0);
        if other < limit {
            return Ok(());
        }
        if !said {
            eprintln!(
                "  … waiting for other processes to use less than {limit} cores (now {other:.2})"
            );
            said = true;
        }
        if start.elapsed() > WAIT_LIMIT {
            bail!("other processes kept using more than {limit} cores for 30 minutes");
        }
    }
}
