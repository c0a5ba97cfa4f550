//! `helix-load ws-idle`: what an idle connection costs the server. One user is signed up, N
//! connections authenticate as it and subscribe to nothing; once every one has its `welcome` and
//! they have sat idle for `--settle` seconds, the server's resident memory is compared with its
//! baseline (`--server-pid`): KiB per connection = (after − before) / connections open. The
//! connections are then held `--hold` seconds, each task reading its socket so tungstenite answers
//! the server's pings, and any that drop are reported.

use std::time::Duration;

use anyhow::Result;
use clap::Args;
use serde_json::{json, Map};
use tokio::sync::watch;

use super::client::{self, Endpoint};
use super::gate::{self, Gate};
use super::host;
use super::summary::{self, Memory};
use super::tally::{self, Counts, Deliveries, Phase};
use super::WsArgs;

/// How long connection tasks get to close after the hold.
const CLOSE_GRACE: Duration = Duration::from_secs(30);

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub ws: WsArgs,
    /// Connections opened and held.
    #[arg(long, default_value_t = 15_000)]
    connections: usize,
    /// The server's process id: its VmRSS is read before and after opening.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds all connections sit idle before memory is read.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// Seconds the connections are then kept open (pings answered).
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
}

pub async fn run(args: IdleArgs) -> Result<()> {
    let connections = super::check_count("--connections", args.connections, 1..=100_000)?;
    let settle = crate::seconds("--settle", args.settle, 0.0, 600.0)?;
    let hold = crate::seconds("--hold", args.hold, 0.0, 86_400.0)?;
    let open_files = host::raise_open_files(connections)?;
    let (api, endpoint) = args.ws.resolve().await?;
    let token = super::setup::user_token(&api, hold.as_secs_f64() + 600.0).await?;
    // One connection first, so a refusal is reported once, not N times.
    client::close(endpoint.connect(&token).await?).await;
    if let Some(pid) = args.server_pid {
        host::warn_if_server_cannot_hold(pid, connections);
    }
    let mut memory = Memory::default();
    memory.record("before", server_rss(args.server_pid)?);
    let client_before = host::rss_kib(std::process::id()).ok();

    eprintln!("opening {connections} connections (open-file limit {open_files})…");
    let (phase, watcher) = watch::channel(Phase::Opening);
    let (gate, opening) = gate::gate(args.ws.open_concurrency);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            tokio::spawn(hold_one(
                endpoint.clone(),
                token.clone(),
                gate.clone(),
                watcher.clone(),
            ))
        })
        .collect();
    let opened = opening.wait(connections, "open").await?;
    tokio::time::sleep(settle).await;
    memory.record("open", server_rss(args.server_pid)?);
    let client_open = host::rss_kib(std::process::id()).ok();
    eprintln!("all open; holding for {:.0} s…", hold.as_secs_f64());
    tokio::time::sleep(hold).await;
    phase.send_replace(Phase::Stopping);
    let mut dropped = Counts::default();
    for how in gate::join_all(tasks, CLOSE_GRACE)
        .await
        .into_iter()
        .flatten()
    {
        dropped.add(how);
    }
    let client_kib = client_before
        .zip(client_open)
        .map(|(before, after)| summary::per_connection(before, after, opened.ok));
    print(&endpoint, &args, &opened, &memory, &dropped, client_kib);
    Ok(())
}

/// Open one connection, then read it until told to stop; how it dropped, if it did.
async fn hold_one(
    endpoint: Endpoint,
    token: String,
    gate: Gate,
    mut phase: watch::Receiver<Phase>,
) -> Option<String> {
    let mut socket = gate.open(endpoint.connect(&token)).await?;
    let dropped = tally::listen(&mut socket, &mut phase, &mut Deliveries::default()).await;
    if dropped.is_none() {
        client::close(socket).await;
    }
    dropped
}

fn server_rss(pid: Option<u32>) -> Result<Option<u64>> {
    pid.map(host::rss_kib).transpose()
}

fn print(
    endpoint: &Endpoint,
    args: &IdleArgs,
    opened: &gate::Opened,
    memory: &Memory,
    dropped: &Counts,
    client_kib: Option<f64>,
) {
    println!(
        "helix-load ws-idle: {} idle connections to {}",
        args.connections, endpoint.url
    );
    println!(
        "  connections   {} open, {} failed, in {:.1} s ({:.0}/s)",
        opened.ok,
        opened.failed,
        opened.seconds,
        opened.ok as f64 / opened.seconds.max(f64::EPSILON)
    );
    if opened.failed > 0 {
        println!("  failures      {}", opened.errors.describe());
    }
    memory.print(opened.ok);
    if let Some(kib) = client_kib {
        println!("  client RSS    {kib:+.2} KiB per connection in helix-load itself");
    }
    println!(
        "  during hold   {} of {} dropped: {}",
        dropped.total(),
        opened.ok,
        dropped.describe()
    );
    let mut fields = Map::from_iter([
        ("command".to_owned(), json!("ws-idle")),
        ("connections".to_owned(), json!(args.connections)),
        ("open".to_owned(), json!(opened.ok)),
        ("failed".to_owned(), json!(opened.failed)),
        (
            "open_s".to_owned(),
            json!(crate::report::round(opened.seconds, 3)),
        ),
        ("hold_s".to_owned(), json!(args.hold)),
        ("dropped".to_owned(), json!(dropped.total())),
        ("dropped_by".to_owned(), dropped.to_json()),
        ("failures".to_owned(), opened.errors.to_json()),
        (
            "client_kib_per_connection".to_owned(),
            json!(client_kib.map(|kib| crate::report::round(kib, 3))),
        ),
    ]);
    fields.extend(memory.to_json(opened.ok));
    summary::print(fields, None);
}
