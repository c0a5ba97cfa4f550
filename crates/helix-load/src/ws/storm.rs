//! `helix-load ws-storm`: does recovery after a mass disconnect lose or repeat anything? One user
//! owns `--channels` conversations; C clients subscribe, client i to channel i mod channels. The
//! owner's publisher connections ([`super::publish`]) publish round-robin over the channels at
//! `--rate` throughout. After `--live` seconds every client disconnects at once; publishing goes
//! on for `--offline` seconds; then the clients reconnect spread evenly over `--window` seconds,
//! each subscribing with `since` = the last offset it received and that offset's `epoch`.
//! Publishing stops `--tail` seconds after the last reconnect; the channels' last offsets (from
//! the publishers' acks) are then the finish line, and clients are given `--settle` seconds to
//! reach it.
//!
//! Each client checks ([`super::track`]) that its offsets ran contiguously from its first
//! `subscribed` offset to the finish line, across the disconnect, and that the resubscribe said
//! `recovered: true`. The command fails (exit 1) unless every client passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Map};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::client::{self, Endpoint, Socket, Subscribed};
use super::frame::{Frame, PublishTemplate};
use super::gate::{self, Gate, Opened};
use super::pace::Pacer;
use super::publish::{self, Published};
use super::summary;
use super::tally::{text_of, Counts, Window};
use super::track::Track;
use super::WsArgs;

/// How long client tasks get to finish after being told to stop.
const STOP_GRACE: Duration = Duration::from_secs(30);
/// Messages websocket-streaming keeps per channel for recovery, by default.
const DEFAULT_HISTORY: usize = 300;

#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub ws: WsArgs,
    /// Clients (connections), client i on channel i mod --channels.
    #[arg(long, default_value_t = 10_000)]
    clients: usize,
    /// Conversation channels.
    #[arg(long, default_value_t = 100)]
    channels: usize,
    /// Publishes/s in total, round-robin over the channels, for the whole run.
    #[arg(long, default_value_t = 500.0)]
    rate: f64,
    /// Owner publisher connections sharing the rate (default: one per 100/s).
    #[arg(long)]
    publishers: Option<usize>,
    /// Seconds of publishing with every client connected, before the disconnect.
    #[arg(long, default_value_t = 5.0)]
    live: f64,
    /// Seconds every client stays disconnected while publishing goes on.
    #[arg(long, default_value_t = 10.0)]
    offline: f64,
    /// Seconds over which the clients reconnect, spread evenly.
    #[arg(long, default_value_t = 5.0)]
    window: f64,
    /// Seconds publishing goes on after the last reconnect.
    #[arg(long, default_value_t = 2.0)]
    tail: f64,
    /// Seconds clients get, once publishing stopped, to receive up to the last offset.
    #[arg(long, default_value_t = 10.0)]
    settle: f64,
}

/// When things happen, fixed once every client is subscribed.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    start: Instant,
    disconnect_at: Instant,
    reconnect_from: Instant,
    spread: Duration,
    publish_end: Instant,
}

impl Timeline {
    fn from_now(live: Duration, offline: Duration, spread: Duration, tail: Duration) -> Timeline {
        let start = Instant::now();
        Timeline {
            start,
            disconnect_at: start + live,
            reconnect_from: start + live + offline,
            spread,
            publish_end: start + live + offline + spread + tail,
        }
    }

    fn reconnect_at(&self, client: usize, clients: usize) -> Instant {
        self.reconnect_from + self.spread.mul_f64(client as f64 / clients.max(1) as f64)
    }
}

/// What the coordinator tells every client.
#[derive(Debug, Clone)]
enum Control {
    Live,
    /// Disconnect now; reconnect at your time in the timeline.
    Offline(Timeline),
    /// Publishing is over: each channel's last acked offset.
    Final(Timeline, Arc<HashMap<String, u64>>),
    /// Give up waiting and report (the last offsets again, for clients that missed `Final`).
    Stop(Arc<HashMap<String, u64>>),
}

impl Control {
    fn timeline(&self) -> Option<Timeline> {
        match self {
            Control::Offline(timeline) | Control::Final(timeline, _) => Some(*timeline),
            Control::Live | Control::Stop(_) => None,
        }
    }

    fn final_offset(&self, channel: &str) -> Option<u64> {
        match self {
            Control::Final(_, finals) | Control::Stop(finals) => {
                Some(finals.get(channel).copied().unwrap_or(0))
            }
            Control::Live | Control::Offline(_) => None,
        }
    }
}

/// Shared by every client task.
#[derive(Debug)]
struct Ctx {
    endpoint: Endpoint,
    token: String,
    channels: Vec<String>,
    clients: usize,
}

/// What one client saw.
#[derive(Debug)]
struct ClientReport {
    track: Track,
    /// `recovered` of the resubscribe.
    recovered: Option<bool>,
    /// Dropped by the server before the planned disconnect (still resumes).
    early_close: Option<String>,
    /// Reconnecting failed, or the connection dropped afterwards.
    failure: Option<String>,
    reconnected_at: Option<Instant>,
    /// When it had received everything published before its reconnect.
    caught_up_at: Option<Instant>,
    /// `error` frames by code.
    errors: Counts,
}

impl ClientReport {
    fn new(track: Track) -> ClientReport {
        ClientReport {
            track,
            recovered: None,
            early_close: None,
            failure: None,
            reconnected_at: None,
            caught_up_at: None,
            errors: Counts::default(),
        }
    }

    /// Account for what `socket.next()` gave; `Err(how)` once the connection has ended.
    fn on_next(
        &mut self,
        next: Option<Result<Message, WsError>>,
        channel: &str,
    ) -> Result<(), String> {
        let Some(text) = text_of(next)? else {
            return Ok(());
        };
        let Some(frame) = Frame::parse(text.as_str()) else {
            self.errors.add("frame that is not JSON");
            return Ok(());
        };
        match frame.kind.as_ref() {
            "message" if frame.channel.as_deref() == Some(channel) => {
                match (frame.epoch, frame.offset) {
                    (Some(epoch), Some(offset)) => {
                        self.track.observe(&epoch, offset);
                    }
                    _ => self.errors.add("message without epoch or offset"),
                }
            }
            "error" => self.errors.add(frame.code.as_deref().unwrap_or("?")),
            _ => {}
        }
        Ok(())
    }

    /// Every reason this client fails the check (none: it passed).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(failure) = &self.failure {
            problems.push(failure.clone());
        }
        match self.recovered {
            Some(true) => {}
            Some(false) => problems.push("recovered: false".to_owned()),
            None if self.failure.is_none() => problems.push("no recovered flag".to_owned()),
            None => {}
        }
        if self.track.gaps > 0 {
            problems.push("gap".to_owned());
        }
        if self.track.duplicates > 0 {
            problems.push("duplicate".to_owned());
        }
        if self.track.epoch_changes > 0 {
            problems.push("epoch changed".to_owned());
        }
        problems
    }
}

pub async fn run(args: StormArgs) -> Result<()> {
    let clients = super::check_count("--clients", args.clients, 1..=100_000)?;
    let channels = super::check_count("--channels", args.channels, 1..=10_000)?;
    let rate = super::check_rate(args.rate, false)?;
    let publishers = publish::publisher_count(args.publishers, rate)?;
    let timing = timing(&args)?;
    warn_if_history_too_short(&args);
    super::host::raise_open_files(clients + publishers)?;
    let (api, endpoint) = args.ws.resolve().await?;
    let run_secs = timing.iter().map(Duration::as_secs_f64).sum::<f64>();
    let token = super::setup::user_token(&api, run_secs + 600.0).await?;
    let channels = super::setup::conversations(&api, &token, channels).await?;
    super::setup::probe(&endpoint, &token, &channels[0], Some(&token)).await?;
    let ctx = Arc::new(Ctx {
        endpoint,
        token,
        channels,
        clients,
    });

    eprintln!("subscribing {clients} clients…");
    let (control, watcher) = watch::channel(Control::Live);
    let (done, mut finished) = mpsc::unbounded_channel();
    let (gate, opening) = gate::gate(args.ws.open_concurrency);
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (ctx, gate, watcher) = (ctx.clone(), gate.clone(), watcher.clone());
            tokio::spawn(client(i, ctx, gate, watcher, done.clone()))
        })
        .collect();
    drop(done);
    let opened = opening.wait(clients, "subscribed").await?;

    let sockets = publish::connect(&ctx.endpoint, &ctx.token, publishers).await?;
    let [live, offline, spread, tail, settle] = timing;
    let timeline = Timeline::from_now(live, offline, spread, tail);
    let published = storm(sockets, &ctx.channels, rate, timeline, &control).await?;
    let finals = Arc::new(published.last_offsets.clone());
    eprintln!(
        "publishing stopped; waiting up to {settle:?} for clients to reach the last offsets…"
    );
    let settled = settle_within(&mut finished, opened.ok, settle).await;
    control.send_replace(Control::Stop(finals));
    let reports = gate::join_all(tasks, STOP_GRACE).await;
    let reports: Vec<ClientReport> = reports.into_iter().flatten().collect();
    let outcome = Outcome::new(&reports, opened, published, timeline, settled);
    outcome.print(&ctx.endpoint, &args);
    if outcome.failed > 0 {
        let (failed, of) = (outcome.failed, outcome.opened.ok);
        bail!("{failed} of {of} clients failed verification");
    }
    Ok(())
}

/// Publish through the timeline, telling the clients when to disconnect and, once publishing
/// is over, where each channel ended.
async fn storm(
    sockets: Vec<Socket>,
    channels: &[String],
    rate: f64,
    timeline: Timeline,
    control: &watch::Sender<Control>,
) -> Result<Published> {
    let published = publish_through(sockets, channels, rate, &timeline);
    tokio::time::sleep_until(timeline.disconnect_at.into()).await;
    eprintln!(
        "disconnecting every client; reconnecting {:?} later, over {:?}…",
        timeline.reconnect_from - timeline.disconnect_at,
        timeline.spread
    );
    control.send_replace(Control::Offline(timeline));
    let published = published.await?;
    let finals = Arc::new(published.last_offsets.clone());
    control.send_replace(Control::Final(timeline, finals));
    Ok(published)
}

/// `[live, offline, window, tail, settle]`, checked.
fn timing(args: &StormArgs) -> Result<[Duration; 5]> {
    Ok([
        crate::seconds("--live", args.live, 0.0, 3600.0)?,
        crate::seconds("--offline", args.offline, 0.0, 3600.0)?,
        crate::seconds("--window", args.window, 0.0, 3600.0)?,
        crate::seconds("--tail", args.tail, 0.0, 3600.0)?,
        crate::seconds("--settle", args.settle, 0.0, 3600.0)?,
    ])
}

/// The server keeps `HELIX_WS_HISTORY_SIZE` messages per channel (default 300): a client away
/// longer than that many messages cannot recover, which is then the server's setting, not a bug.
fn warn_if_history_too_short(args: &StormArgs) {
    let per_channel = args.rate / args.channels as f64;
    let away = per_channel * (args.offline + args.window);
    if away > DEFAULT_HISTORY as f64 {
        eprintln!(
            "warning: a client may miss up to {away:.0} messages per channel while away, more than \
             the server's default history of {DEFAULT_HISTORY} (HELIX_WS_HISTORY_SIZE): expect \
             recovered: false unless the server keeps more"
        );
    }
}

/// Publish from now until the timeline's end, round-robin over the channels.
fn publish_through(
    sockets: Vec<Socket>,
    channels: &[String],
    rate: f64,
    timeline: &Timeline,
) -> tokio::task::JoinHandle<Published> {
    let window = Window::after(Duration::ZERO, timeline.publish_end - timeline.start);
    let (pacer, _due) = Pacer::over(&window, rate, sockets.len());
    let templates = channels
        .iter()
        .map(|channel| PublishTemplate::new(channel, 0))
        .collect();
    publish::spawn(
        sockets,
        publish::Plan {
            templates,
            window,
            pacer: Some(pacer),
        },
    )
}

/// Wait until `expected` clients have finished or `settle` has passed; whether all finished.
async fn settle_within(
    finished: &mut mpsc::UnboundedReceiver<()>,
    expected: usize,
    settle: Duration,
) -> bool {
    let all = async {
        for _ in 0..expected {
            if finished.recv().await.is_none() {
                break;
            }
        }
    };
    tokio::time::timeout(settle, all).await.is_ok()
}

/// One client: subscribe, follow the coordinator through disconnect and resume, report.
async fn client(
    i: usize,
    ctx: Arc<Ctx>,
    gate: Gate,
    mut control: watch::Receiver<Control>,
    done: mpsc::UnboundedSender<()>,
) -> Option<ClientReport> {
    let channel = &ctx.channels[i % ctx.channels.len()];
    let (socket, subscribed) = gate.open(open(&ctx, channel, None)).await?;
    let mut report = ClientReport::new(Track::anchored(&subscribed.epoch, subscribed.offset));
    if let Some(timeline) = live(socket, channel, &mut report, &mut control).await {
        tokio::time::sleep_until(timeline.reconnect_at(i, ctx.clients).into()).await;
        resume(&ctx, channel, &mut report, &mut control).await;
    }
    let _ = done.send(());
    Some(report)
}

/// Connect and subscribe (resuming from `(since, epoch)` if given).
async fn open(
    ctx: &Ctx,
    channel: &str,
    resume: Option<(u64, &str)>,
) -> Result<(Socket, Subscribed)> {
    let mut socket = ctx.endpoint.connect(&ctx.token).await?;
    let subscribed = client::subscribe(&mut socket, channel, resume).await?;
    Ok((socket, subscribed))
}

/// Receive until told to disconnect, then close; the timeline to reconnect by.
async fn live(
    mut socket: Socket,
    channel: &str,
    report: &mut ClientReport,
    control: &mut watch::Receiver<Control>,
) -> Option<Timeline> {
    loop {
        tokio::select! {
            next = socket.next() => {
                if let Err(how) = report.on_next(next, channel) {
                    report.early_close = Some(how);
                    return disconnect_time(control).await;
                }
            }
            changed = control.changed() => {
                let current = control.borrow_and_update().clone();
                if changed.is_err() || !matches!(current, Control::Live) {
                    client::close(socket).await;
                    return current.timeline();
                }
            }
        }
    }
}

/// After an early drop: wait for the coordinator's disconnect, to reconnect on schedule.
async fn disconnect_time(control: &mut watch::Receiver<Control>) -> Option<Timeline> {
    loop {
        let current = control.borrow_and_update().clone();
        match current {
            Control::Live => control.changed().await.ok()?,
            other => return other.timeline(),
        }
    }
}

/// Reconnect with `since`, then receive until the channel's final offset (or the stop).
async fn resume(
    ctx: &Ctx,
    channel: &str,
    report: &mut ClientReport,
    control: &mut watch::Receiver<Control>,
) {
    report.reconnected_at = Some(Instant::now());
    let (since, epoch) = report.track.resume();
    let epoch = epoch.to_owned();
    let (mut socket, subscribed) = match open(ctx, channel, Some((since, &epoch))).await {
        Ok(opened) => opened,
        Err(err) => {
            report.failure = Some(format!("reconnect failed: {err:#}"));
            return;
        }
    };
    report.recovered = subscribed.recovered;
    let current = control.borrow_and_update().clone();
    let mut final_offset = current.final_offset(channel);
    let mut stopped = matches!(current, Control::Stop(_));
    loop {
        if report.caught_up_at.is_none() && report.track.last() >= subscribed.offset {
            report.caught_up_at = Some(Instant::now());
        }
        if stopped || final_offset.is_some_and(|last| report.track.last() >= last) {
            break;
        }
        tokio::select! {
            next = socket.next() => {
                if let Err(how) = report.on_next(next, channel) {
                    report.failure = Some(format!("dropped after reconnecting: {how}"));
                    break;
                }
            }
            changed = control.changed() => {
                let current = control.borrow_and_update().clone();
                final_offset = current.final_offset(channel).or(final_offset);
                stopped = changed.is_err() || matches!(current, Control::Stop(_));
            }
        }
    }
    if let Some(last) = final_offset {
        report.track.finish(last);
    }
    client::close(socket).await;
}

/// The run's figures, from every client's report.
struct Outcome {
    opened: Opened,
    published: Published,
    passed: usize,
    failed: usize,
    /// Clients whose offsets ran contiguously (whatever the `recovered` flag said).
    contiguous: usize,
    problems: Counts,
    early_closes: Counts,
    errors: Counts,
    received: u64,
    missed: u64,
    duplicates: u64,
    /// First reconnect → last client caught up.
    catch_up: Option<Duration>,
    /// Per client, reconnect → caught up, in ms.
    catch_up_ms: Histogram<u64>,
    never_caught_up: usize,
    settled: bool,
    timeline: Timeline,
}

impl Outcome {
    fn new(
        reports: &[ClientReport],
        opened: Opened,
        published: Published,
        timeline: Timeline,
        settled: bool,
    ) -> Outcome {
        let mut outcome = Outcome {
            opened,
            published,
            passed: 0,
            failed: 0,
            contiguous: 0,
            problems: Counts::default(),
            early_closes: Counts::default(),
            errors: Counts::default(),
            received: 0,
            missed: 0,
            duplicates: 0,
            catch_up: None,
            catch_up_ms: Histogram::new(3).expect("3 significant figures is a valid precision"),
            never_caught_up: 0,
            settled,
            timeline,
        };
        for report in reports {
            outcome.add(report);
        }
        let first_reconnect = reports.iter().filter_map(|r| r.reconnected_at).min();
        let last_caught_up = reports.iter().filter_map(|r| r.caught_up_at).max();
        outcome.catch_up = first_reconnect
            .zip(last_caught_up)
            .map(|(from, to)| to.saturating_duration_since(from));
        outcome
    }

    fn add(&mut self, report: &ClientReport) {
        let problems = report.problems();
        if problems.is_empty() {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        problems
            .into_iter()
            .for_each(|problem| self.problems.add(problem));
        self.contiguous += usize::from(report.track.contiguous());
        if let Some(how) = &report.early_close {
            self.early_closes.add(how.clone());
        }
        self.errors.merge(&report.errors);
        self.received += report.track.received;
        self.missed += report.track.missed;
        self.duplicates += report.track.duplicates;
        match report.reconnected_at.zip(report.caught_up_at) {
            Some((from, to)) => {
                let ms = u64::try_from(to.saturating_duration_since(from).as_millis())
                    .unwrap_or(u64::MAX);
                self.catch_up_ms.saturating_record(ms);
            }
            None => self.never_caught_up += 1,
        }
    }

    fn print(&self, endpoint: &Endpoint, args: &StormArgs) {
        let sends = &self.published.sends;
        println!(
            "helix-load ws-storm: {} clients on {} channels at {}, {} publishes/s; {:.1} s live, \
             {:.1} s offline, reconnects over {:.1} s",
            args.clients,
            args.channels,
            endpoint.url,
            args.rate,
            args.live,
            args.offline,
            args.window
        );
        println!(
            "  clients       {} subscribed, {} failed to subscribe",
            self.opened.ok, self.opened.failed
        );
        println!(
            "  publishes     {} sent, {} acked, errors: {}; publisher connections lost: {}",
            sends.sent,
            self.published.acked,
            self.published.errors.describe(),
            self.published.lost.describe()
        );
        println!(
            "  verification  {} clients recovered cleanly, {} failed: {}; {} with contiguous \
             offsets",
            self.passed,
            self.failed,
            self.problems.describe(),
            self.contiguous
        );
        println!(
            "  messages      {} received, {} missed, {} duplicates",
            self.received, self.missed, self.duplicates
        );
        println!(
            "  catch-up      {} from the first reconnect to the last client caught up; per client \
             ms p50 {} p99 {} max {}; {} never caught up",
            self.catch_up
                .map_or("n/a".to_owned(), |d| format!("{:.3} s", d.as_secs_f64())),
            self.catch_up_ms.value_at_quantile(0.5),
            self.catch_up_ms.value_at_quantile(0.99),
            self.catch_up_ms.max(),
            self.never_caught_up
        );
        if !self.settled {
            println!("  WARNING       not every client reached the last offsets within --settle");
        }
        println!(
            "  disconnects   early (before the planned one): {}; error frames: {}",
            self.early_closes.describe(),
            self.errors.describe()
        );
        summary::print(self.fields(args), None);
    }

    fn fields(&self, args: &StormArgs) -> Map<String, serde_json::Value> {
        let publish_s = (self.timeline.publish_end - self.timeline.start).as_secs_f64();
        Map::from_iter([
            ("command".to_owned(), json!("ws-storm")),
            ("clients".to_owned(), json!(args.clients)),
            ("channels".to_owned(), json!(args.channels)),
            ("target_rate".to_owned(), json!(args.rate)),
            ("live_s".to_owned(), json!(args.live)),
            ("offline_s".to_owned(), json!(args.offline)),
            ("window_s".to_owned(), json!(args.window)),
            (
                "publish_s".to_owned(),
                json!(crate::report::round(publish_s, 3)),
            ),
            ("subscribed".to_owned(), json!(self.opened.ok)),
            ("subscribe_failed".to_owned(), json!(self.opened.failed)),
            ("publishes".to_owned(), json!(self.published.sends.sent)),
            ("acked".to_owned(), json!(self.published.acked)),
            ("publish_errors".to_owned(), self.published.errors.to_json()),
            ("recovered".to_owned(), json!(self.passed)),
            ("failed".to_owned(), json!(self.failed)),
            ("contiguous".to_owned(), json!(self.contiguous)),
            ("problems".to_owned(), self.problems.to_json()),
            ("received".to_owned(), json!(self.received)),
            ("missed".to_owned(), json!(self.missed)),
            ("duplicates".to_owned(), json!(self.duplicates)),
            (
                "catch_up_s".to_owned(),
                json!(self
                    .catch_up
                    .map(|d| crate::report::round(d.as_secs_f64(), 3))),
            ),
            (
                "catch_up_p50_ms".to_owned(),
                json!(self.catch_up_ms.value_at_quantile(0.5)),
            ),
            (
                "catch_up_p99_ms".to_owned(),
                json!(self.catch_up_ms.value_at_quantile(0.99)),
            ),
            ("catch_up_max_ms".to_owned(), json!(self.catch_up_ms.max())),
            ("never_caught_up".to_owned(), json!(self.never_caught_up)),
            ("settled".to_owned(), json!(self.settled)),
            ("early_disconnects".to_owned(), self.early_closes.to_json()),
            ("error_frames".to_owned(), self.errors.to_json()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(recovered: Option<bool>) -> ClientReport {
        let mut report = ClientReport::new(Track::anchored("e", 0));
        report.recovered = recovered;
        report
    }

    #[test]
    fn a_clean_recovered_client_passes() {
        let mut client = report(Some(true));
        client.track.observe("e", 1);
        client.track.finish(1);
        assert!(client.problems().is_empty());
    }

    #[test]
    fn gaps_duplicates_and_failed_recovery_are_problems() {
        let mut client = report(Some(false));
        client.track.observe("e", 2);
        client.track.observe("e", 2);
        assert_eq!(client.problems(), ["recovered: false", "gap", "duplicate"]);
        let mut lost = report(None);
        lost.failure = Some("reconnect failed: refused".to_owned());
        assert_eq!(lost.problems(), ["reconnect failed: refused"]);
    }

    #[test]
    fn only_messages_of_the_client_channel_are_tracked() {
        let mut client = report(None);
        let frame = |channel: &str, offset: u64| {
            Some(Ok(Message::text(format!(
                r#"{{"type":"message","channel":"{channel}","offset":{offset},"epoch":"e","data":{{}}}}"#
            ))))
        };
        assert!(client.on_next(frame("c", 1), "c").is_ok());
        assert!(client.on_next(frame("other", 5), "c").is_ok());
        assert!(client.on_next(frame("c", 2), "c").is_ok());
        assert!(client.track.contiguous());
        assert_eq!(client.track.received, 2);
        assert!(client.on_next(None, "c").is_err());
    }

    #[test]
    fn reconnects_spread_evenly_over_the_window() {
        let now = Instant::now();
        let timeline = Timeline {
            start: now,
            disconnect_at: now,
            reconnect_from: now,
            spread: Duration::from_secs(5),
            publish_end: now,
        };
        assert_eq!(timeline.reconnect_at(0, 10), now);
        assert_eq!(
            timeline.reconnect_at(5, 10),
            now + Duration::from_millis(2500)
        );
    }
}
