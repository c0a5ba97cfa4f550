//! `helix-load ws-broadcast`: fan-out of one channel. N connections (one signed-up user)
//! subscribe to `consciousness:stream`; once all are subscribed, admin publisher connections
//! ([`super::publish`]: WS publish frames, open loop at `--rate` or one in flight per connection
//! with `--rate 0`) publish `{"ts":<unix ns>,"seq":n,"pad":…}` for warm-up + duration. Every
//! subscriber reads every frame, takes `ts` out of `message` frames without parsing them, and
//! times the delivery; expected deliveries are publishes in the window × subscribers.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Map};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{self, Endpoint, Socket};
use super::frame::PublishTemplate;
use super::gate::{self, Gate, Opened};
use super::host;
use super::pace::Pacer;
use super::publish::{self, Published};
use super::summary::{self, Memory};
use super::tally::{self, Counts, Deliveries, Phase, Window};
use super::{TimingArgs, WsArgs};

const CHANNEL: &str = "consciousness:stream";
/// How long subscriber tasks get to close after the run.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct BroadcastArgs {
    #[command(flatten)]
    pub ws: WsArgs,
    #[command(flatten)]
    timing: TimingArgs,
    /// Subscriber connections.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Publishes/s in total (open loop); 0: each publisher keeps one publish in flight.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Admin publisher connections sharing the rate (default: one per 100/s, 4 with --rate 0).
    #[arg(long)]
    publishers: Option<usize>,
    /// The server's process id: its VmRSS is read before, once subscribed, and at the end.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What one subscriber saw.
#[derive(Debug)]
struct Subscriber {
    deliveries: Deliveries,
    /// How it was disconnected before the end, if it was.
    lost: Option<String>,
}

pub async fn run(args: BroadcastArgs) -> Result<()> {
    let timing = args.timing.check()?;
    let subscribers = super::check_count("--subscribers", args.subscribers, 1..=100_000)?;
    let rate = super::check_rate(args.rate, true)?;
    let publishers = publish::publisher_count(args.publishers, rate)?;
    host::raise_open_files(subscribers + publishers)?;
    let (api, endpoint) = args.ws.resolve().await?;
    let token = super::setup::user_token(&api, timing.total_secs() + 600.0).await?;
    let ws = &args.ws;
    let admin = super::setup::admin_token(&api, &ws.admin_email, &ws.admin_password).await?;
    super::setup::probe(&endpoint, &token, CHANNEL, Some(&admin)).await?;
    if let Some(pid) = args.server_pid {
        host::warn_if_server_cannot_hold(pid, subscribers + publishers);
    }
    let mut memory = Memory::default();
    memory.record("before", server_rss(args.server_pid)?);

    eprintln!("subscribing {subscribers} connections to {CHANNEL}…");
    let (phase, watcher) = watch::channel(Phase::Opening);
    let (gate, opening) = gate::gate(ws.open_concurrency);
    let tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            let (endpoint, token) = (endpoint.clone(), token.clone());
            tokio::spawn(subscribe_one(
                endpoint,
                token,
                gate.clone(),
                watcher.clone(),
            ))
        })
        .collect();
    let opened = opening.wait(subscribers, "subscribed").await?;
    memory.record("subscribed", server_rss(args.server_pid)?);

    let sockets = publish::connect(&endpoint, &admin, publishers).await?;
    let window = Window::after(timing.warmup, timing.duration);
    phase.send_replace(Phase::Running {
        window,
        pacer: None,
    });
    let (published, due) = publish_through(sockets, &window, rate, timing.payload_bytes).await?;
    tokio::time::sleep_until((window.end + timing.drain).into()).await;
    memory.record("end", server_rss(args.server_pid)?);
    phase.send_replace(Phase::Stopping);

    let (deliveries, lost) = collect(tasks).await;
    let outcome = Outcome {
        opened,
        published,
        due,
        deliveries,
        lost,
        memory,
        window,
        rate,
        publishers,
    };
    outcome.print(&endpoint, &args);
    Ok(())
}

/// Publish through the window (open loop at `rate`, or closed with 0); what was published, and
/// (open loop) how many publishes were due in the measured window.
async fn publish_through(
    sockets: Vec<Socket>,
    window: &Window,
    rate: f64,
    payload_bytes: usize,
) -> Result<(Published, Option<u64>)> {
    eprintln!(
        "publishing for {:.1} s…",
        (window.end - window.start).as_secs_f64()
    );
    let (pacer, due) = if rate > 0.0 {
        let (pacer, due) = Pacer::over(window, rate, sockets.len());
        (Some(pacer), Some(due))
    } else {
        (None, None)
    };
    let plan = publish::Plan {
        templates: vec![PublishTemplate::new(CHANNEL, payload_bytes)],
        window: *window,
        pacer,
    };
    let published = publish::spawn(sockets, plan).await?;
    let due = match due {
        Some(due) => Some(due.await?),
        None => None,
    };
    Ok((published, due))
}

/// Merge what the subscribers saw, once they have stopped.
async fn collect(tasks: Vec<JoinHandle<Option<Subscriber>>>) -> (Deliveries, Counts) {
    let mut deliveries = Deliveries::default();
    let mut lost = Counts::default();
    let subscribers = gate::join_all(tasks, CLOSE_GRACE).await;
    for subscriber in subscribers.into_iter().flatten() {
        deliveries.merge(&subscriber.deliveries);
        if let Some(how) = subscriber.lost {
            lost.add(how);
        }
    }
    (deliveries, lost)
}

/// Open and subscribe one connection, then read it until the run stops.
async fn subscribe_one(
    endpoint: Endpoint,
    token: String,
    gate: Gate,
    mut phase: watch::Receiver<Phase>,
) -> Option<Subscriber> {
    let mut socket = gate
        .open(async {
            let mut socket = endpoint.connect(&token).await?;
            client::subscribe(&mut socket, CHANNEL, None).await?;
            anyhow::Ok(socket)
        })
        .await?;
    let mut deliveries = Deliveries::default();
    let lost = tally::listen(&mut socket, &mut phase, &mut deliveries).await;
    if lost.is_none() {
        client::close(socket).await;
    }
    Some(Subscriber { deliveries, lost })
}

fn server_rss(pid: Option<u32>) -> Result<Option<u64>> {
    pid.map(host::rss_kib).transpose()
}

/// Everything the report needs.
struct Outcome {
    opened: Opened,
    published: Published,
    /// Open loop: publishes due in the window.
    due: Option<u64>,
    deliveries: Deliveries,
    lost: Counts,
    memory: Memory,
    window: Window,
    rate: f64,
    publishers: usize,
}

impl Outcome {
    fn print(&self, endpoint: &Endpoint, args: &BroadcastArgs) {
        let sends = &self.published.sends;
        let secs = self.window.seconds();
        let expected = sends.in_window * self.opened.ok as u64;
        let mode = if self.rate > 0.0 {
            format!("{} publishes/s open loop", self.rate)
        } else {
            "one publish in flight per publisher".to_owned()
        };
        println!(
            "helix-load ws-broadcast: {} subscribers on {CHANNEL} at {}, {mode} by {} admin \
             connection(s), {}-byte pad",
            args.subscribers, endpoint.url, self.publishers, args.timing.payload_bytes
        );
        println!(
            "  subscribers   {} subscribed, {} failed, in {:.1} s",
            self.opened.ok, self.opened.failed, self.opened.seconds
        );
        println!(
            "  publishes     {} in the {secs:.3} s window ({:.1}/s{}), {} sent in all, {} acked, \
             errors: {}; publisher connections lost: {}",
            sends.in_window,
            summary::per_second(sends.in_window, secs),
            self.due.map_or(String::new(), |due| format!(
                "; {due} due, {} never sent, {} sent >1 ms late",
                due.saturating_sub(sends.in_window),
                sends.late
            )),
            sends.sent,
            self.published.acked,
            self.published.errors.describe(),
            self.published.lost.describe()
        );
        println!(
            "  deliveries    {} of {expected} expected ({:.3}%), {:.1}/s",
            self.deliveries.measured,
            summary::percent(self.deliveries.measured, expected),
            summary::per_second(self.deliveries.measured, secs)
        );
        println!(
            "  latency ms    {}   (publish → delivery, from ts)",
            summary::latency(&self.deliveries.latency)
        );
        println!(
            "  disconnects   {}; error frames: {}",
            self.lost.describe(),
            self.deliveries.errors.describe()
        );
        self.memory.print(self.opened.ok);
        summary::print(
            self.fields(args, expected, secs),
            Some(&self.deliveries.latency),
        );
    }

    fn fields(
        &self,
        args: &BroadcastArgs,
        expected: u64,
        secs: f64,
    ) -> Map<String, serde_json::Value> {
        let sends = &self.published.sends;
        let mut fields = Map::from_iter([
            ("command".to_owned(), json!("ws-broadcast")),
            ("subscribers".to_owned(), json!(args.subscribers)),
            ("subscribed".to_owned(), json!(self.opened.ok)),
            ("subscribe_failed".to_owned(), json!(self.opened.failed)),
            ("target_rate".to_owned(), json!(self.rate)),
            ("publishers".to_owned(), json!(self.publishers)),
            ("payload_bytes".to_owned(), json!(args.timing.payload_bytes)),
            ("window_s".to_owned(), json!(crate::report::round(secs, 3))),
            ("publishes".to_owned(), json!(sends.in_window)),
            (
                "publishes_per_s".to_owned(),
                json!(summary::per_second(sends.in_window, secs)),
            ),
            ("publishes_due".to_owned(), json!(self.due)),
            ("late_sends".to_owned(), json!(sends.late)),
            ("acked".to_owned(), json!(self.published.acked)),
            ("publish_errors".to_owned(), self.published.errors.to_json()),
            ("deliveries".to_owned(), json!(self.deliveries.measured)),
            ("expected_deliveries".to_owned(), json!(expected)),
            (
                "deliveries_per_s".to_owned(),
                json!(summary::per_second(self.deliveries.measured, secs)),
            ),
            ("disconnects".to_owned(), json!(self.lost.total())),
            ("disconnects_by".to_owned(), self.lost.to_json()),
            ("error_frames".to_owned(), self.deliveries.errors.to_json()),
        ]);
        fields.extend(self.memory.to_json(self.opened.ok));
        fields
    }
}
