//! The two ways of applying load, one task per connection.
//!
//! Closed loop: each connection sends its next request as soon as the previous answer is read, so
//! the figure is the throughput the server sustains at that concurrency.
//!
//! Open loop: requests are scheduled at a fixed total rate, round-robin over the connections, and
//! latency runs from each request's *intended* send time. A slow answer therefore also charges the
//! requests due behind it (no coordinated omission), and requests still unsent when the window
//! closes are counted, so a rate the server cannot sustain shows up instead of quietly shrinking.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::cpu;
use crate::http::Conn;
use crate::stats::{Outcome, Tally, LATE_SEND};
use crate::target::Target;

/// After a connect or connection failure: a refused connect fails instantly, and without a pause
/// every task would spin a core on errors against a server that is down.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// Produces the next request a connection sends (the same one, or e.g. the next account's).
pub type Workload = Arc<dyn Fn() -> Request<Full<Bytes>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total requests/s for an open loop; `None` for a closed loop.
    pub rate: Option<f64>,
    pub timeout: Duration,
}

/// The measured window: requests sent (or, open loop, scheduled) before `measure_from` are warm-up
/// and recorded nowhere; nothing new is sent from `end` on.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

#[derive(Debug)]
pub struct RunResult {
    pub tally: Tally,
    /// Wall time the counts are divided by.
    pub window: Duration,
    /// Open loop: requests scheduled in the measured window.
    pub scheduled: Option<u64>,
    /// CPU the load generator itself used during the window, in cores.
    pub client_cores: Option<f64>,
}

pub async fn run(target: Target, plan: &Plan, workload: Workload) -> Result<RunResult> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let clock = Clock {
        start,
        measure_from,
        end: measure_from + plan.duration,
    };
    // Samples our own CPU time when the window opens, to report how busy the client was.
    let cpu_at_window = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        cpu::process_cpu_time().ok()
    });
    let target = Arc::new(target);
    let (tasks, dispatcher) = match plan.rate {
        None => (spawn_closed(&target, plan, &workload, clock), None),
        Some(rate) => {
            let (tasks, dispatcher) = spawn_open(&target, plan, &workload, clock, rate);
            (tasks, Some(dispatcher))
        }
    };
    let mut tally = Tally::new(plan.rate.is_some());
    for task in tasks {
        tally.merge(&task.await?);
    }
    let scheduled = match dispatcher {
        Some(dispatcher) => Some(dispatcher.await?),
        None => None,
    };
    // Every measured request that was sent ended in exactly one recorded outcome.
    tally.unsent = scheduled.map_or(0, |scheduled| scheduled.saturating_sub(tally.total()));
    let window = match plan.rate {
        Some(_) => plan.duration,
        // In-flight requests started before `end` finish after it and are counted: stretch the
        // window to cover them.
        None => {
            tally
                .last_done
                .map_or(clock.end, |done| done.max(clock.end))
                - measure_from
        }
    };
    let cpu_used = cpu::process_cpu_time().ok().zip(cpu_at_window.await?);
    let client_cores = cpu_used.map(|(now, then)| {
        now.saturating_sub(then).as_secs_f64() / measure_from.elapsed().as_secs_f64()
    });
    Ok(RunResult {
        tally,
        window,
        scheduled,
        client_cores,
    })
}

fn spawn_closed(
    target: &Arc<Target>,
    plan: &Plan,
    workload: &Workload,
    clock: Clock,
) -> Vec<JoinHandle<Tally>> {
    (0..plan.connections)
        .map(|_| {
            let (target, workload, timeout) = (target.clone(), workload.clone(), plan.timeout);
            tokio::spawn(async move { closed_loop(&target, &workload, clock, timeout).await })
        })
        .collect()
}

async fn closed_loop(
    target: &Target,
    workload: &Workload,
    clock: Clock,
    timeout: Duration,
) -> Tally {
    let mut tally = Tally::new(false);
    let mut conn = None;
    loop {
        let sent = Instant::now();
        if sent >= clock.end {
            return tally;
        }
        let outcome = exchange(target, &mut conn, workload(), timeout).await;
        if sent >= clock.measure_from {
            let latency = sent.elapsed();
            tally.record(outcome, latency, latency);
        }
        pause_after_error(outcome).await;
    }
}

/// The open-loop schedule: request `k` (0, 1, 2, …) is due at `start + k / rate` and belongs to
/// connection `k mod connections`, so each connection runs at `rate / connections`, staggered.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    start: Instant,
    rate: f64,
    connections: u64,
}

impl Schedule {
    /// Computed from the start, not by adding intervals, so rounding never drifts the rate.
    fn due(&self, k: u64) -> Instant {
        self.start + Duration::from_secs_f64(k as f64 / self.rate)
    }
}

fn spawn_open(
    target: &Arc<Target>,
    plan: &Plan,
    workload: &Workload,
    clock: Clock,
    rate: f64,
) -> (Vec<JoinHandle<Tally>>, JoinHandle<u64>) {
    let schedule = Schedule {
        start: clock.start,
        rate,
        connections: plan.connections as u64,
    };
    // One wake-up per connection. A `Notify` keeps at most one permit, so a connection that falls
    // behind accumulates no queue: it computes its own due times and simply finds them past.
    let wakes: Arc<[Notify]> = (0..plan.connections).map(|_| Notify::new()).collect();
    let tasks = (0..schedule.connections)
        .map(|first| {
            let (target, workload, timeout) = (target.clone(), workload.clone(), plan.timeout);
            let wakes = wakes.clone();
            tokio::spawn(async move {
                let wake = &wakes[first as usize];
                open_loop(&target, &workload, clock, timeout, schedule, first, wake).await
            })
        })
        .collect();
    // The pacing runs on a blocking-pool thread with `std::thread::sleep`, whose timer has
    // tens-of-microseconds precision; tokio's timer rounds up to whole milliseconds, which would
    // add up to a millisecond of the client's own making to every intended-time latency.
    let dispatcher = tokio::task::spawn_blocking(move || dispatch(&wakes, schedule, clock));
    (tasks, dispatcher)
}

/// Wake each request's connection at its due time until the window ends; returns how many
/// requests were due in the measured window.
fn dispatch(wakes: &[Notify], schedule: Schedule, clock: Clock) -> u64 {
    let mut scheduled = 0;
    for k in 0u64.. {
        let due = schedule.due(k);
        if due >= clock.end {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        wakes[(k % schedule.connections) as usize].notify_one();
        scheduled += u64::from(due >= clock.measure_from);
    }
    scheduled
}

/// Connection `first`'s share of the schedule: requests `first`, `first + N`, `first + 2N`, …
/// each sent at its due time or, if the previous answer came later, right after it.
async fn open_loop(
    target: &Target,
    workload: &Workload,
    clock: Clock,
    timeout: Duration,
    schedule: Schedule,
    first: u64,
    wake: &Notify,
) -> Tally {
    let mut tally = Tally::new(true);
    let mut conn = None;
    for k in (first..).step_by(schedule.connections as usize) {
        let intended = schedule.due(k);
        if intended >= clock.end {
            break;
        }
        // The dispatcher wakes us at (just after) `intended`; a permit left over from a request
        // we were late for wakes us early, so check the time and wait again.
        while Instant::now() < intended {
            wake.notified().await;
        }
        let sent = Instant::now();
        if sent >= clock.end {
            break; // what is left of the schedule counts as unsent
        }
        let measured = intended >= clock.measure_from;
        tally.late_sends += u64::from(measured && sent - intended > LATE_SEND);
        let outcome = exchange(target, &mut conn, workload(), timeout).await;
        if measured {
            tally.record(outcome, intended.elapsed(), sent.elapsed());
        }
        pause_after_error(outcome).await;
    }
    tally
}

/// Send one request on the connection in `slot`, opening one first if there is none; after a
/// failure the slot is emptied so the next request starts on a fresh connection.
async fn exchange(
    target: &Target,
    slot: &mut Option<Conn>,
    request: Request<Full<Bytes>>,
    timeout: Duration,
) -> Outcome {
    if slot.as_ref().is_some_and(Conn::is_closed) {
        *slot = None; // closed by the server between requests: not an error of this request
    }
    let attempt = async {
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(Conn::open(target).await?),
        };
        anyhow::Ok(conn.send(request).await?)
    };
    let outcome = match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(status)) => return Outcome::Status(status.as_u16()),
        Ok(Err(_)) => Outcome::TransportError,
        Err(_) => Outcome::Timeout,
    };
    *slot = None;
    outcome
}

async fn pause_after_error(outcome: Outcome) {
    if matches!(outcome, Outcome::TransportError) {
        tokio::time::sleep(ERROR_PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::http::RequestTemplate;

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"id\":\"u1\"}";
    const LIMITED: &str =
        "HTTP/1.1 429 Too Many Requests\r\nretry-after: 1\r\ncontent-length: 0\r\n\r\n";

    /// A stand-in for backend-api on an ephemeral loopback port: keep-alive HTTP/1.1 where every
    /// third request on a connection is rate limited.
    async fn stub_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket));
            }
        });
        addr
    }

    async fn serve(mut socket: TcpStream) {
        let (mut pending, mut chunk, mut served) = (Vec::new(), [0u8; 4096], 0u64);
        while let Ok(read @ 1..) = socket.read(&mut chunk).await {
            pending.extend_from_slice(&chunk[..read]);
            // The load's requests are bodiless GETs: each ends at the blank line.
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                pending.drain(..end + 4);
                served += 1;
                let reply = if served % 3 == 0 { LIMITED } else { OK };
                if socket.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }

    async fn load(rate: Option<f64>) -> RunResult {
        let addr = stub_server().await;
        let target = Target::resolve(&format!("http://{addr}")).await.unwrap();
        let request = RequestTemplate::get(&target, "/api/me").unwrap();
        let workload: Workload = Arc::new(move || request.build());
        let plan = Plan {
            connections: 2,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(400),
            rate,
            timeout: Duration::from_secs(5),
        };
        run(target, &plan, workload).await.unwrap()
    }

    #[tokio::test]
    async fn closed_loop_counts_429s_apart_from_successes() {
        let tally = load(None).await.tally;
        assert!(tally.ok() > 0 && tally.status(429) > 0, "{tally:?}");
        assert_eq!(tally.ok() + tally.status(429), tally.total());
        assert_eq!(tally.other_errors(), 0);
        assert_eq!(
            tally.latency.len(),
            tally.ok(),
            "only 2xx answers are timed"
        );
    }

    #[tokio::test]
    async fn open_loop_accounts_for_every_scheduled_request() {
        let result = load(Some(200.0)).await;
        let tally = &result.tally;
        // 200/s over the 0.4 s window: 80 intended sends.
        assert_eq!(result.scheduled, Some(80));
        assert!(
            tally.total() > 0 && tally.total() + tally.unsent == 80,
            "{tally:?}"
        );
        assert_eq!(tally.other_errors(), 0);
        assert!(tally
            .service
            .as_ref()
            .is_some_and(|service| service.len() == tally.ok()));
    }
}
