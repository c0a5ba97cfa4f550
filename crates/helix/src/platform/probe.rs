//! `helix check --probe`: connect to the deployment's PostgreSQL and Redis and call each
//! service's `/health`, like the platform's old `check-services.sh`.

use std::collections::BTreeSet;
use std::time::Duration;

use helix_bus::BusOptions;
use helix_store::StoreOptions;
use secrecy::ExposeSecret;

use super::deployment::Deployment;
use super::table::Table;
use crate::config::DatabaseTarget;
use crate::shared::redact;

const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The verdict on one target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// Answered, but not 200 (the HTTP status is kept).
    Degraded(u16),
    Unreachable(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub target: String,
    pub address: String,
    pub verdict: Verdict,
}

/// Probe every dependency and service of the deployment. Services are looked for on `host`.
pub async fn run(deployment: &Deployment, host: &str) -> Vec<Row> {
    let mut rows = dependencies(deployment).await;
    let client = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .build()
        .expect("a plain HTTP client builds");
    let checks = deployment.services.iter().filter_map(|p| {
        let port = p.config.port?;
        let url = format!("http://{host}:{port}/health");
        let client = client.clone();
        Some(async move {
            let verdict = match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => Verdict::Healthy,
                Ok(r) => Verdict::Degraded(r.status().as_u16()),
                Err(e) => Verdict::Unreachable(short_reason(&e)),
            };
            Row {
                target: p.env.spec.name.to_owned(),
                address: url,
                verdict,
            }
        })
    });
    rows.extend(futures::future::join_all(checks).await);
    rows
}

async fn dependencies(deployment: &Deployment) -> Vec<Row> {
    let databases: BTreeSet<&str> = deployment
        .services
        .iter()
        .filter_map(|p| match &p.config.database {
            Some(DatabaseTarget::Url(u)) if !u.expose_secret().starts_with("sqlite:") => {
                Some(u.expose_secret())
            }
            _ => None,
        })
        .collect();
    let redis: BTreeSet<&str> = deployment
        .services
        .iter()
        .filter_map(|p| p.config.redis_url.as_ref().map(|u| u.expose_secret()))
        .collect();
    let mut rows = Vec::new();
    for url in databases {
        let options = StoreOptions {
            connect_attempts: 1,
            connect_timeout: PROBE_TIMEOUT,
            ..StoreOptions::default()
        };
        let verdict = match helix_store::open(url, &options).await {
            Ok(store) => {
                let v = store.ping().await.map_or_else(
                    |e| Verdict::Unreachable(e.to_string()),
                    |_| Verdict::Healthy,
                );
                store.close().await;
                v
            }
            Err(e) => Verdict::Unreachable(e.to_string()),
        };
        rows.push(Row {
            target: "postgres".into(),
            address: redact::url(url),
            verdict,
        });
    }
    for url in redis {
        let options = BusOptions {
            connect_attempts: 1,
            connect_timeout: PROBE_TIMEOUT,
            ..BusOptions::default()
        };
        let verdict = match helix_bus::open(Some(url), &options).await {
            Ok(bus) => {
                let v = bus.ping().await.map_or_else(
                    |e| Verdict::Unreachable(e.to_string()),
                    |_| Verdict::Healthy,
                );
                bus.close().await;
                v
            }
            Err(e) => Verdict::Unreachable(e.to_string()),
        };
        rows.push(Row {
            target: "redis".into(),
            address: redact::url(url),
            verdict,
        });
    }
    rows
}

fn short_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused".into()
    } else {
        "request failed".into()
    }
}

/// Render the rows, coloured when `colour` is set: green healthy, yellow degraded, red unreachable.
pub fn render(rows: &[Row], colour: bool) -> String {
    let mut table = Table::new(&["TARGET", "STATUS", "ADDRESS", "DETAIL"]);
    for row in rows {
        let (status, detail) = match &row.verdict {
            Verdict::Healthy => ("✅ healthy".to_owned(), String::new()),
            Verdict::Degraded(code) => ("⚠️ degraded".to_owned(), format!("HTTP {code}")),
            Verdict::Unreachable(why) => ("❌ unreachable".to_owned(), why.clone()),
        };
        table.row(vec![
            row.target.clone(),
            status,
            row.address.clone(),
            detail,
        ]);
    }
    table.render_with(|r, c, text| {
        if !colour || r == 0 || c != 1 {
            return text;
        }
        let code = match &rows[r - 1].verdict {
            Verdict::Healthy => "32",
            Verdict::Degraded(_) => "33",
            Verdict::Unreachable(_) => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    })
}

/// Whether every row is healthy.
pub fn all_healthy(rows: &[Row]) -> bool {
    rows.iter().all(|r| r.verdict == Verdict::Healthy)
}
