//! `helix-load ws-rooms`: many small conversations. One user creates R conversations; each gets
//! exactly two connections subscribed to its `conversation:<id>` channel (2R connections). The
//! total `--rate` is spread round-robin over the rooms ([`super::pace`], open loop: sends are
//! scheduled by time, acks never waited for, late sends counted), each publish sent as a WS
//! publish frame by the room's first connection. Both connections (the first receives its own
//! message too) time each delivery from its `ts`: expected deliveries = publishes × 2.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use futures::StreamExt;
use serde_json::{json, Map};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::client::{self, Endpoint, Socket};
use super::frame::PublishTemplate;
use super::gate::{self, Gate, Opened};
use super::pace::{Pacer, Turns};
use super::publish::{self, Sends};
use super::summary;
use super::tally::{self, Counts, Deliveries, Phase, Window};
use super::{TimingArgs, WsArgs};

/// How long connection tasks get to close after the run.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct RoomsArgs {
    #[command(flatten)]
    pub ws: WsArgs,
    #[command(flatten)]
    timing: TimingArgs,
    /// Conversations, each with two connections.
    #[arg(long, default_value_t = 5_000)]
    rooms: usize,
    /// Publishes/s in total, round-robin over the rooms.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
}

/// What one connection did and saw.
#[derive(Debug, Default)]
struct Conn {
    deliveries: Deliveries,
    sends: Sends,
    lost: Option<String>,
}

/// A room's two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Publishes the room's share of the schedule, and receives.
    First,
    /// Only receives.
    Second,
}

pub async fn run(args: RoomsArgs) -> Result<()> {
    let timing = args.timing.check()?;
    let rooms = super::check_count("--rooms", args.rooms, 1..=50_000)?;
    let rate = super::check_rate(args.rate, false)?;
    super::host::raise_open_files(2 * rooms)?;
    let (api, endpoint) = args.ws.resolve().await?;
    let token = super::setup::user_token(&api, timing.total_secs() + 600.0).await?;
    let channels = super::setup::conversations(&api, &token, rooms).await?;
    super::setup::probe(&endpoint, &token, &channels[0], Some(&token)).await?;

    eprintln!("opening {} connections, two per room…", 2 * rooms);
    let (phase, watcher) = watch::channel(Phase::Opening);
    let (gate, opening) = gate::gate(args.ws.open_concurrency);
    let room = Room {
        endpoint: endpoint.clone(),
        token,
        gate,
        phase: watcher,
        payload_bytes: timing.payload_bytes,
    };
    let tasks = room.spawn_all(&channels);
    let opened = opening.wait(2 * rooms, "subscribed").await?;

    let window = Window::after(timing.warmup, timing.duration);
    eprintln!(
        "publishing for {:.1} s…",
        (window.end - window.start).as_secs_f64()
    );
    let (pacer, due) = Pacer::over(&window, rate, rooms);
    phase.send_replace(Phase::Running {
        window,
        pacer: Some(pacer),
    });
    let due = due.await?;
    tokio::time::sleep_until((window.end + timing.drain).into()).await;
    phase.send_replace(Phase::Stopping);

    let (total, lost) = collect(tasks).await;
    print(&endpoint, &args, &opened, &total, &lost, due, &window);
    Ok(())
}

/// What every connection task of the run shares.
struct Room {
    endpoint: Endpoint,
    token: String,
    gate: Gate,
    phase: watch::Receiver<Phase>,
    payload_bytes: usize,
}

impl Room {
    /// Both connections of every room, each opening through the gate.
    fn spawn_all(&self, channels: &[String]) -> Vec<JoinHandle<Option<Conn>>> {
        let mut tasks = Vec::with_capacity(2 * channels.len());
        for (room, channel) in channels.iter().enumerate() {
            for role in [Role::First, Role::Second] {
                let template = PublishTemplate::new(channel, self.payload_bytes);
                let (endpoint, token) = (self.endpoint.clone(), self.token.clone());
                let open = open_one(endpoint, token, channel.clone(), self.gate.clone());
                let phase = self.phase.clone();
                tasks.push(tokio::spawn(run_one(open, role, room, template, phase)));
            }
        }
        tasks
    }
}

/// Merge what the connections did, once they have stopped.
async fn collect(tasks: Vec<JoinHandle<Option<Conn>>>) -> (Conn, Counts) {
    let mut total = Conn::default();
    let mut lost = Counts::default();
    let conns = gate::join_all(tasks, CLOSE_GRACE).await;
    for conn in conns.into_iter().flatten() {
        total.deliveries.merge(&conn.deliveries);
        total.sends.merge(&conn.sends);
        if let Some(how) = conn.lost {
            lost.add(how);
        }
    }
    (total, lost)
}

/// Connect and subscribe to the room's channel.
async fn open_one(
    endpoint: Endpoint,
    token: String,
    channel: String,
    gate: Gate,
) -> Option<Socket> {
    gate.open(async {
        let mut socket = endpoint.connect(&token).await?;
        client::subscribe(&mut socket, &channel, None).await?;
        anyhow::Ok(socket)
    })
    .await
}

/// One connection of a room: receive until the run stops, publishing on the room's turns if it
/// is the first.
async fn run_one(
    open: impl std::future::Future<Output = Option<Socket>>,
    role: Role,
    room: usize,
    template: PublishTemplate,
    mut phase: watch::Receiver<Phase>,
) -> Option<Conn> {
    let mut socket = open.await?;
    let mut conn = Conn::default();
    let mut window: Option<Window> = None;
    let mut turns: Option<Turns> = None;
    loop {
        tokio::select! {
            next = socket.next() => {
                if let Err(how) = tally::receive(next, &mut conn.deliveries, window.as_ref()) {
                    conn.lost = Some(how);
                    return Some(conn);
                }
            }
            due = publish::next_turn(&mut turns) => match (due, window.as_ref()) {
                (Some(due), Some(window)) => {
                    if let Err(err) = conn.sends.publish(&mut socket, &template, due.k, due.late, window).await {
                        conn.lost = Some(format!("send failed: {err:#}"));
                        return Some(conn);
                    }
                }
                _ => turns = None,
            },
            changed = phase.changed() => {
                let current = phase.borrow_and_update().clone();
                match current {
                    Phase::Running { window: w, pacer } if changed.is_ok() => {
                        window = Some(w);
                        turns = pacer.filter(|_| role == Role::First).map(|p| Turns::new(p, room));
                    }
                    Phase::Opening if changed.is_ok() => {}
                    _ => break,
                }
            }
        }
    }
    client::close(socket).await;
    Some(conn)
}

fn print(
    endpoint: &Endpoint,
    args: &RoomsArgs,
    opened: &Opened,
    total: &Conn,
    lost: &Counts,
    due: u64,
    window: &Window,
) {
    let (sends, deliveries) = (&total.sends, &total.deliveries);
    let secs = window.seconds();
    let expected = sends.in_window * 2;
    println!(
        "helix-load ws-rooms: {} rooms × 2 connections at {}, {} publishes/s open loop",
        args.rooms, endpoint.url, args.rate
    );
    println!(
        "  connections   {} subscribed, {} failed, in {:.1} s",
        opened.ok, opened.failed, opened.seconds
    );
    println!(
        "  publishes     {due} due in the {secs:.3} s window, {} sent ({:.1}/s), {} never sent, \
         {} sent >1 ms late; {} acked of {} sent in all",
        sends.in_window,
        summary::per_second(sends.in_window, secs),
        due.saturating_sub(sends.in_window),
        sends.late,
        deliveries.acks,
        sends.sent
    );
    println!(
        "  deliveries    {} of {expected} expected ({:.3}%), {:.1}/s",
        deliveries.measured,
        summary::percent(deliveries.measured, expected),
        summary::per_second(deliveries.measured, secs)
    );
    println!(
        "  latency ms    {}   (publish → delivery, from ts)",
        summary::latency(&deliveries.latency)
    );
    println!(
        "  errors        error frames: {}; disconnects: {}",
        deliveries.errors.describe(),
        lost.describe()
    );
    let fields = Map::from_iter([
        ("command".to_owned(), json!("ws-rooms")),
        ("rooms".to_owned(), json!(args.rooms)),
        ("connections".to_owned(), json!(opened.ok)),
        ("connect_failed".to_owned(), json!(opened.failed)),
        ("target_rate".to_owned(), json!(args.rate)),
        ("payload_bytes".to_owned(), json!(args.timing.payload_bytes)),
        ("window_s".to_owned(), json!(crate::report::round(secs, 3))),
        ("publishes_due".to_owned(), json!(due)),
        ("publishes".to_owned(), json!(sends.in_window)),
        (
            "publishes_per_s".to_owned(),
            json!(summary::per_second(sends.in_window, secs)),
        ),
        (
            "unsent".to_owned(),
            json!(due.saturating_sub(sends.in_window)),
        ),
        ("late_sends".to_owned(), json!(sends.late)),
        ("acked".to_owned(), json!(deliveries.acks)),
        ("deliveries".to_owned(), json!(deliveries.measured)),
        ("expected_deliveries".to_owned(), json!(expected)),
        (
            "deliveries_per_s".to_owned(),
            json!(summary::per_second(deliveries.measured, secs)),
        ),
        ("error_frames".to_owned(), deliveries.errors.to_json()),
        ("disconnects".to_owned(), json!(lost.total())),
        ("disconnects_by".to_owned(), lost.to_json()),
    ]);
    summary::print(fields, Some(&deliveries.latency));
}
