//! The coordinator's view of every service's health: each service's `/health` is polled on an
//! interval, every change of a service's status is published on [`CHANNEL`], and the board is what
//! `GET /api/services` and the aggregated `GET /health` answer from.
//!
//! Data flow: a task (one per service-integration instance) checks every target at once, each with
//! a timeout → compares with the board → writes the board → publishes the changes. A target is
//! `up` when its `/health` answers 2xx within the timeout, `down` otherwise (the reason kept), and
//! `unknown` until its first check.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use helix_bus::Bus;
use serde::Serialize;

use crate::config::ServiceEnv;

/// Where status changes are published.
pub const CHANNEL: &str = "service:health";
/// How often every service is checked, in milliseconds.
pub const INTERVAL_VAR: &str = "HELIX_HEALTH_INTERVAL_MS";
pub const DEFAULT_INTERVAL_MS: i64 = 10_000;
/// A `/health` that has not answered within this long counts as down.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The services watched, and the variable that says where each answers (the platform's names).
pub const TARGETS: &[(&str, &str)] = &[
    ("backend-api", "BACKEND_API_URL"),
    ("discord-bot", "DISCORD_BOT_URL"),
    ("dashboard", "DASHBOARD_URL"),
    ("claude-api", "CLAUDE_API_URL"),
    ("websocket-streaming", "WEBSOCKET_SERVICE_URL"),
    ("agent-orchestration", "AGENT_ORCHESTRATOR_URL"),
    ("zapier-integration", "ZAPIER_SERVICE_URL"),
    ("voice-processing", "VOICE_PROCESSOR_URL"),
];

/// One service as last seen.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceHealth {
    pub service: &'static str,
    /// Where it is checked (`<url>/health`), without any credentials the URL held.
    pub url: String,
    /// `up`, `down` or `unknown` (not checked yet).
    pub status: &'static str,
    /// The HTTP status of the last answer, if there was one.
    pub http_status: Option<u16>,
    /// How long the last check took.
    pub latency_ms: Option<f64>,
    /// Why it is down: the HTTP status or the connection error.
    pub error: Option<String>,
    /// When `status` last changed (`null` until the first check).
    pub since: Option<DateTime<Utc>>,
    pub checked_at: Option<DateTime<Utc>>,
}

/// Every watched service, in [`TARGETS`] order.
pub struct Board {
    services: Mutex<Vec<ServiceHealth>>,
    urls: Vec<String>,
    pub interval: Duration,
}

impl Board {
    /// The board for the services `env` names, every one `unknown`.
    pub fn new(env: &ServiceEnv) -> Self {
        let (services, urls) = TARGETS
            .iter()
            .filter_map(|&(service, var)| {
                let url = env.get(var)?.trim_end_matches('/').to_owned();
                let shown = without_credentials(&url);
                Some((unknown(service, shown), url))
            })
            .unzip();
        let interval = env
            .integer(INTERVAL_VAR)
            .unwrap_or(DEFAULT_INTERVAL_MS)
            .max(1) as u64;
        Self {
            services: Mutex::new(services),
            urls,
            interval: Duration::from_millis(interval),
        }
    }

    pub fn snapshot(&self) -> Vec<ServiceHealth> {
        self.lock().clone()
    }

    /// Start checking on the interval, for as long as the board exists.
    pub fn watch(self: &Arc<Self>, bus: Option<Arc<dyn Bus>>) {
        tokio::spawn(poll(Arc::downgrade(self), bus));
    }

    /// Write one round of checks; the entries whose status changed.
    fn record(&self, checks: Vec<Check>) -> Vec<ServiceHealth> {
        let now = Utc::now();
        let mut services = self.lock();
        let mut changed = Vec::new();
        for (entry, check) in services.iter_mut().zip(checks) {
            let status = if check.up { "up" } else { "down" };
            let moved = entry.status != status;
            entry.status = status;
            entry.http_status = check.http_status;
            entry.latency_ms = Some(check.latency_ms);
            entry.error = check.error;
            entry.checked_at = Some(now);
            if moved {
                entry.since = Some(now);
                changed.push(entry.clone());
            }
        }
        changed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ServiceHealth>> {
        // A board half-written by a panic is corrected by the next round of checks.
        self.services.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn unknown(service: &'static str, url: String) -> ServiceHealth {
    ServiceHealth {
        service,
        url,
        status: "unknown",
        http_status: None,
        latency_ms: None,
        error: None,
        since: None,
        checked_at: None,
    }
}

/// The outcome of one `/health` request.
struct Check {
    up: bool,
    http_status: Option<u16>,
    latency_ms: f64,
    error: Option<String>,
}

async fn poll(board: Weak<Board>, bus: Option<Arc<dyn Bus>>) {
    let client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("a client with a timeout builds");
    loop {
        let Some(held) = board.upgrade() else { return };
        let (urls, interval) = (held.urls.clone(), held.interval);
        drop(held);
        let checks = futures::future::join_all(urls.iter().map(|url| check(&client, url))).await;
        let Some(held) = board.upgrade() else { return };
        let changed = held.record(checks);
        drop(held);
        if let Some(bus) = &bus {
            announce(&**bus, &changed).await;
        }
        tokio::time::sleep(interval).await;
    }
}

async fn check(client: &reqwest::Client, base: &str) -> Check {
    let started = Instant::now();
    let answer = client.get(format!("{base}/health")).send().await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    match answer {
        Ok(response) => {
            let code = response.status();
            Check {
                up: code.is_success(),
                http_status: Some(code.as_u16()),
                latency_ms,
                error: (!code.is_success()).then(|| format!("answered {code}")),
            }
        }
        Err(error) => Check {
            up: false,
            http_status: None,
            latency_ms,
            error: Some(reason(&error)),
        },
    }
}

/// A short reason without the URL (which may hold credentials).
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if error.is_connect() {
        "connection refused or unreachable".into()
    } else {
        "the request failed".into()
    }
}

/// Publish each change as `{"type":"service.health", …the entry…}`; best-effort (logged).
async fn announce(bus: &dyn Bus, changed: &[ServiceHealth]) {
    for entry in changed {
        let mut event = serde_json::to_value(entry).expect("an entry serialises");
        event["type"] = "service.health".into();
        if let Err(error) = bus
            .append(
                CHANNEL,
                event.to_string().into(),
                &helix_bus::Retention::default(),
            )
            .await
        {
            tracing::warn!(service = entry.service, %error, "could not publish a health change");
        }
    }
}

/// `scheme://user:pass@host/…` → `scheme://host/…`.
fn without_credentials(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, path)) => {
                let host = authority.rsplit('@').next().unwrap_or(authority);
                format!("{scheme}://{host}/{path}")
            }
            None => format!("{scheme}://{}", rest.rsplit('@').next().unwrap_or(rest)),
        },
        None => url.to_owned(),
    }
}

/// How the platform looks as a whole: `healthy` when every watched service is up, `degraded`
/// otherwise, with each service's status by name.
pub fn summary(services: &[ServiceHealth]) -> (&'static str, BTreeMap<&'static str, &'static str>) {
    let all_up = services.iter().all(|s| s.status == "up");
    let by_name = services.iter().map(|s| (s.service, s.status)).collect();
    (if all_up { "healthy" } else { "degraded" }, by_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_a_url() {
        assert_eq!(
            without_credentials("https://user:pw@api.example.com/v1"),
            "https://api.example.com/v1"
        );
        assert_eq!(
            without_credentials("http://u:p@127.0.0.1:8000"),
            "http://127.0.0.1:8000"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:8000"),
            "http://127.0.0.1:8000"
        );
    }
}
