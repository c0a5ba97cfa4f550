//! `helix-load hooks-out`: deliveries from the worker to local endpoints.
//!
//! The run serves `--endpoints` endpoints itself on 127.0.0.1 (the server must allow that range
//! in HELIX_OUTBOUND_ALLOW): a share of them (`--slow-share`) hold every request open for
//! `--slow-ms`, longer than the server's delivery timeout; the rest answer 204 at once. It signs
//! up accounts on backend-api (100 subscriptions each), subscribes every endpoint to every event,
//! sends `--events` signed events to zapier-integration, and then counts what arrives: the
//! healthy endpoints' deliveries per second (first event sent → last delivery received), each
//! group's latency from the event's acceptance to the delivery's arrival, and any delivery that
//! arrived twice. Subscriptions are removed at the end.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hdrhistogram::Histogram;
use http_body_util::Full;
use serde_json::{json, Value};

use super::inbound::{value, Signer};
use crate::http::{Conn, RequestTemplate};
use crate::report::{percentiles, round};
use crate::setup::{self, Account};
use crate::target::Target;

/// Subscriptions one account may hold.
const PER_ACCOUNT: usize = 100;

#[derive(clap::Args)]
pub struct HooksOutArgs {
    /// zapier-integration's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8005")]
    pub url: String,
    /// backend-api's base URL (accounts).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub api_url: String,
    /// Inbound source and its secret, as in the server's HELIX_HOOK_SECRETS.
    #[arg(long, default_value = "bench")]
    pub source: String,
    #[arg(long, default_value = "whsec_YmVuY2gtc2lnbmluZy1rZXk=")]
    pub secret: String,
    /// Endpoints served and subscribed.
    #[arg(long, default_value_t = 10)]
    pub endpoints: usize,
    /// Share of the endpoints that answer only after `--slow-ms`.
    #[arg(long, default_value_t = 0.0)]
    pub slow_share: f64,
    #[arg(long, default_value_t = 60_000)]
    pub slow_ms: u64,
    /// Events sent; each is delivered to every endpoint.
    #[arg(long, default_value_t = 2_000)]
    pub events: usize,
    /// Connections the events are sent on.
    #[arg(long, default_value_t = 8)]
    pub connections: usize,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub wait_secs: u64,
    /// Client runtime threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// What the endpoints saw.
struct Seen {
    healthy: Histogram<u64>,
    slow: Histogram<u64>,
    healthy_count: u64,
    slow_count: u64,
    last_healthy: Option<Instant>,
    twice: u64,
    keys: HashSet<(u64, u64)>,
}

type Shared = Arc<(Mutex<Seen>, u64)>;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

async fn endpoint(
    State(shared): State<Shared>,
    Path((kind, index)): Path<(String, u64)>,
    body: Bytes,
) -> StatusCode {
    let arrived = now_us();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let sent = json["data"]["sent_us"].as_u64().unwrap_or(arrived);
    let n = json["data"]["n"].as_u64().unwrap_or(u64::MAX);
    let latency = arrived.saturating_sub(sent).max(1);
    let slow = kind == "slow";
    {
        let mut seen = shared.0.lock().unwrap();
        if !seen.keys.insert((index, n)) {
            seen.twice += 1;
        } else if slow {
            seen.slow_count += 1;
            let _ = seen.slow.record(latency);
        } else {
            seen.healthy_count += 1;
            seen.last_healthy = Some(Instant::now());
            let _ = seen.healthy.record(latency);
        }
    }
    if slow {
        tokio::time::sleep(Duration::from_millis(shared.1)).await;
        return StatusCode::OK;
    }
    StatusCode::NO_CONTENT
}

async fn serve(shared: Shared) -> Result<SocketAddr> {
    let app = axum::Router::new()
        .route("/{kind}/{index}", axum::routing::post(endpoint))
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// Subscribe every endpoint; the subscriptions' paths to delete them afterwards.
async fn subscribe(
    api: &Target,
    hooks: &Target,
    addr: SocketAddr,
    endpoints: usize,
    slow: usize,
) -> Result<Vec<(String, String)>> {
    let mut made = Vec::new();
    let mut token = String::new();
    for i in 0..endpoints {
        if i % PER_ACCOUNT == 0 {
            token = setup::signup(api, &Account::generate()).await?.access_token;
        }
        let kind = if i < slow { "slow" } else { "ok" };
        let body = json!({"target_url": format!("http://{addr}/{kind}/{i}"), "event_types": ["*"]});
        let request =
            RequestTemplate::post_json(hooks, "/api/hooks/subscriptions", &body)?.bearer(&token)?;
        let created = setup::expect(hooks, &request, StatusCode::CREATED, "subscribing").await?;
        let id: Value = serde_json::from_slice(&created.body)?;
        let id = id["id"].as_str().context("a subscription id")?.to_owned();
        made.push((format!("/api/hooks/subscriptions/{id}"), token.clone()));
    }
    Ok(made)
}

async fn unsubscribe(hooks: &Target, made: &[(String, String)]) -> Result<()> {
    for (path, token) in made {
        let request = RequestTemplate::delete(hooks, path)?.bearer(token)?;
        setup::expect(hooks, &request, StatusCode::NO_CONTENT, "unsubscribing").await?;
    }
    Ok(())
}

/// Send the events on `connections` connections; when the first was sent.
async fn send_events(args: &HooksOutArgs, hooks: &Target) -> Result<Instant> {
    let signer = Arc::new(Signer::new(&args.secret)?);
    let path = format!("/api/hooks/{}", args.source);
    let template = RequestTemplate::post_json(hooks, &path, &json!({}))?;
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let (signer, template, next, hooks) = (
            signer.clone(),
            template.clone(),
            next.clone(),
            hooks.clone(),
        );
        let total = args.events;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&hooks).await?;
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(());
                }
                let body = json!({"type": "bench.out", "n": n, "sent_us": now_us()}).to_string();
                let id = signer.id();
                let t = (now_us() / 1_000_000).to_string();
                let signature = signer.sign(&id, &t, body.as_bytes());
                let mut request = template.build();
                *request.body_mut() = Full::new(body.into());
                let headers = request.headers_mut();
                headers.insert("webhook-id", value(&id));
                headers.insert("webhook-timestamp", value(&t));
                headers.insert("webhook-signature", value(&signature));
                let status = conn.send(request).await?;
                if status != StatusCode::OK {
                    bail!("an event was refused: {status}");
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(started)
}

pub async fn run(args: HooksOutArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.slow_share) || args.endpoints == 0 || args.events == 0 {
        bail!("--slow-share must be within 0..1, and --endpoints and --events at least 1");
    }
    let hooks = Target::resolve(&args.url).await?;
    let api = Target::resolve(&args.api_url).await?;
    let slow = (args.endpoints as f64 * args.slow_share).round() as usize;
    let healthy = args.endpoints - slow;
    let seen = Seen {
        healthy: Histogram::new(3)?,
        slow: Histogram::new(3)?,
        healthy_count: 0,
        slow_count: 0,
        last_healthy: None,
        twice: 0,
        keys: HashSet::new(),
    };
    let shared: Shared = Arc::new((Mutex::new(seen), args.slow_ms));
    let addr = serve(shared.clone()).await?;
    eprintln!(
        "  … subscribing {} endpoints ({slow} slow) served at {addr}",
        args.endpoints
    );
    let made = subscribe(&api, &hooks, addr, args.endpoints, slow).await?;
    eprintln!("  … sending {} events", args.events);
    let started = send_events(&args, &hooks).await?;
    let sent_in = started.elapsed();
    let want_healthy = (healthy * args.events) as u64;
    let want_slow = (slow * args.events) as u64;
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    let mut last_report = Instant::now();
    loop {
        let (h, s) = {
            let seen = shared.0.lock().unwrap();
            (seen.healthy_count, seen.slow_count)
        };
        if (h >= want_healthy && s >= want_slow) || Instant::now() > deadline {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  … healthy {h}/{want_healthy}, slow {s}/{want_slow}");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report(
        &args,
        &shared.0.lock().unwrap(),
        started,
        sent_in,
        (healthy, slow),
    );
    unsubscribe(&hooks, &made).await
}

/// Print what the endpoints saw.
fn report(
    args: &HooksOutArgs,
    seen: &Seen,
    started: Instant,
    sent_in: Duration,
    (healthy, slow): (usize, usize),
) {
    let want_healthy = (healthy * args.events) as u64;
    let want_slow = (slow * args.events) as u64;
    let span = seen
        .last_healthy
        .map_or(Duration::ZERO, |t| t.duration_since(started));
    let rate = seen.healthy_count as f64 / span.as_secs_f64().max(1e-9);
    println!(
        "helix-load hooks-out: {} events × {} endpoints ({healthy} healthy, {slow} answering after {} ms)",
        args.events, args.endpoints, args.slow_ms
    );
    println!("  events sent   in {:.3} s", sent_in.as_secs_f64());
    println!(
        "  healthy       {}/{want_healthy} delivered, {rate:.1} deliveries/s (first event sent → last delivery)",
        seen.healthy_count
    );
    println!("  healthy ms    {}", percentiles(&seen.healthy));
    println!(
        "  slow          {}/{want_slow} first attempts arrived",
        seen.slow_count
    );
    if seen.slow_count > 0 {
        println!("  slow ms       {}", percentiles(&seen.slow));
    }
    println!(
        "  twice         {} deliveries arrived more than once",
        seen.twice
    );
    let summary = json!({
        "command": "hooks-out",
        "events": args.events,
        "endpoints": args.endpoints,
        "slow_endpoints": slow,
        "healthy_delivered": seen.healthy_count,
        "healthy_expected": want_healthy,
        "deliveries_per_s": round(rate, 1),
        "healthy_p50_ms": round(seen.healthy.value_at_quantile(0.5) as f64 / 1e3, 3),
        "healthy_p99_ms": round(seen.healthy.value_at_quantile(0.99) as f64 / 1e3, 3),
        "slow_arrived": seen.slow_count,
        "slow_p50_ms": round(seen.slow.value_at_quantile(0.5) as f64 / 1e3, 3),
        "slow_p99_ms": round(seen.slow.value_at_quantile(0.99) as f64 / 1e3, 3),
        "twice": seen.twice,
    });
    println!("SUMMARY {summary}");
}
