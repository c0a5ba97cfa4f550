//! WebSocket load against websocket-streaming, in its JSON protocol (welcome, subscribe with
//! `since`/`epoch` recovery, publish and its ack, per-channel offsets):
//!
//! - `ws-idle`: memory per idle authenticated connection ([`idle`]);
//! - `ws-broadcast`: one channel fanned out to many subscribers ([`broadcast`]);
//! - `ws-rooms`: many two-connection conversation channels at a fixed publish rate ([`rooms`]);
//! - `ws-storm`: every client disconnects and resumes with `since`; is recovery gap-free? ([`storm`]).
//!
//! Accounts and conversations come from backend-api over HTTP (the `setup` helpers the HTTP
//! commands use). Each command prints a few lines for people and a `SUMMARY {json}` line.

pub mod broadcast;
pub mod idle;
pub mod rooms;
pub mod storm;

mod client;
mod frame;
mod gate;
mod host;
mod pace;
mod publish;
mod setup;
mod summary;
mod tally;
mod track;

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::target::Target;
use client::Endpoint;

/// Options every WebSocket command takes.
#[derive(Args, Debug)]
pub struct WsArgs {
    /// websocket-streaming's endpoint (plain ws://).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws")]
    ws_url: String,
    /// backend-api's base URL (plain http://), for accounts and conversations.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    api_url: String,
    /// The server's HELIX_CREATOR_EMAIL (signed up, or logged into on later runs).
    #[arg(long, default_value = "bench-admin@bench.local")]
    admin_email: String,
    #[arg(long, default_value = "bench-admin-password")]
    admin_password: String,
    /// Connections being opened at once (connect, upgrade, welcome, subscribe).
    #[arg(long, default_value_t = 200)]
    open_concurrency: usize,
    /// Client runtime threads (default: all cores; lower it to leave cores to a local server).
    #[arg(long)]
    threads: Option<usize>,
}

impl WsArgs {
    pub fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        crate::runtime(self.threads)
    }

    /// backend-api and websocket-streaming, resolved once.
    async fn resolve(&self) -> Result<(Target, Endpoint)> {
        if !(1..=10_000).contains(&self.open_concurrency) {
            bail!("--open-concurrency must be 1 to 10000");
        }
        let api = Target::resolve(&self.api_url).await?;
        let endpoint = Endpoint::resolve(&self.ws_url).await?;
        Ok((api, endpoint))
    }
}

/// The measured run of `ws-broadcast` and `ws-rooms`.
#[derive(Args, Debug)]
pub struct TimingArgs {
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of publishing before measuring; messages sent then count nowhere.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Seconds to keep reading after the last publish, for deliveries still on their way.
    #[arg(long, default_value_t = 2.0)]
    drain: f64,
    /// Bytes of padding in each published message's `data`.
    #[arg(long, default_value_t = 0)]
    payload_bytes: usize,
}

/// [`TimingArgs`], checked.
#[derive(Debug, Clone, Copy)]
struct Timing {
    duration: Duration,
    warmup: Duration,
    drain: Duration,
    payload_bytes: usize,
}

impl TimingArgs {
    fn check(&self) -> Result<Timing> {
        if self.payload_bytes > 1 << 20 {
            bail!("--payload-bytes must be at most 1048576");
        }
        Ok(Timing {
            duration: crate::seconds("--duration", self.duration, 0.1, 3600.0)?,
            warmup: crate::seconds("--warmup", self.warmup, 0.0, 600.0)?,
            drain: crate::seconds("--drain", self.drain, 0.0, 600.0)?,
            payload_bytes: self.payload_bytes,
        })
    }
}

impl Timing {
    /// Seconds from the first publish to the end of the drain.
    fn total_secs(&self) -> f64 {
        (self.warmup + self.duration + self.drain).as_secs_f64()
    }
}

/// A rate in publishes/s; `allow_zero` for commands where 0 means "as fast as acks allow".
fn check_rate(rate: f64, allow_zero: bool) -> Result<f64> {
    let low_ok = if allow_zero { rate >= 0.0 } else { rate > 0.0 };
    if !(rate.is_finite() && low_ok && rate <= 1_000_000.0) {
        bail!("--rate must be a number of publishes/s, at most 1000000");
    }
    Ok(rate)
}

/// A count option within `range`.
fn check_count(flag: &str, value: usize, range: std::ops::RangeInclusive<usize>) -> Result<usize> {
    if !range.contains(&value) {
        bail!("{flag} must be {} to {}", range.start(), range.end());
    }
    Ok(value)
}
