//! The printed result of a load run: a few aligned lines for people, then one `SUMMARY {json}`
//! line for scripts (`grep '^SUMMARY' | cut -c9- | jq`).

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::drive::{Plan, RunResult};

/// Below this share of the target, an open-loop rate counts as not sustained.
const SUSTAINED_SHARE: f64 = 0.99;

/// Describes the run being reported.
#[derive(Debug)]
pub struct Heading<'a> {
    /// Subcommand name, also the summary's `command`.
    pub command: &'a str,
    /// What was requested, e.g. `GET http://127.0.0.1:8000/api/me, auth jwt`.
    pub what: String,
    /// What a 429 means for this command: which server limit to raise.
    pub limit_hint: String,
    /// Extra summary fields (e.g. `auth`, `accounts`).
    pub extra: Map<String, Value>,
}

pub fn print(heading: Heading<'_>, plan: &Plan, result: &RunResult) {
    let tally = &result.tally;
    let secs = result.window.as_secs_f64();
    let rps = tally.total() as f64 / secs;
    let ok_rps = tally.ok() as f64 / secs;
    println!("helix-load {}: {}", heading.command, heading.what);
    println!("  mode          {}", mode(plan, result));
    println!(
        "  requests      {} total: {} ok (2xx), {} rate-limited (429), {} other errors",
        tally.total(),
        tally.ok(),
        tally.status(429),
        tally.other_errors()
    );
    if tally.other_errors() > 0 {
        println!("  other errors  {}", error_breakdown(result));
    }
    println!("  throughput    {rps:.1} requests/s ({ok_rps:.1} ok/s)");
    let sustained = plan.rate.map(|target| print_rate(target, result));
    let from = if plan.rate.is_some() {
        "from intended send time"
    } else {
        "from send"
    };
    println!(
        "  latency ms    {}   (2xx, {from})",
        percentiles(&tally.latency)
    );
    if let Some(service) = &tally.service {
        println!(
            "  service ms    {}   (2xx, from actual send)",
            percentiles(service)
        );
    }
    if let Some(cores) = result.client_cores {
        println!("  client CPU    {cores:.2} cores used by helix-load itself");
    }
    if tally.status(429) > 0 {
        println!(
            "  note          429s are never successes: {}",
            heading.limit_hint
        );
    }
    let mut summary = json!({
        "command": heading.command,
        "mode": if plan.rate.is_some() { "open" } else { "closed" },
        "connections": plan.connections,
        "warmup_s": plan.warmup.as_secs_f64(),
        "window_s": round(secs, 3),
        "target_rps": plan.rate,
        "sustained": sustained,
        "total": tally.total(),
        "ok": tally.ok(),
        "rate_limited": tally.status(429),
        "unauthorized": tally.status(401),
        "other_errors": tally.other_errors(),
        "unsent": tally.unsent,
        "rps": round(rps, 1),
        "ok_rps": round(ok_rps, 1),
        "client_cores": result.client_cores.map(|cores| round(cores, 2)),
    });
    if let Value::Object(fields) = &mut summary {
        fields.extend(latency_fields(&tally.latency));
        fields.extend(heading.extra);
    }
    println!("SUMMARY {summary}");
}

fn mode(plan: &Plan, result: &RunResult) -> String {
    let kind = match plan.rate {
        Some(rate) => format!("open loop at {rate} requests/s"),
        None => "closed loop".to_owned(),
    };
    format!(
        "{kind}, {} connections, {:.1} s warm-up, {:.3} s measured",
        plan.connections,
        plan.warmup.as_secs_f64(),
        result.window.as_secs_f64()
    )
}

fn error_breakdown(result: &RunResult) -> String {
    let tally = &result.tally;
    let mut parts: Vec<String> = tally
        .error_statuses()
        .map(|(code, n)| format!("{code} ×{n}"))
        .collect();
    if tally.transport_errors > 0 {
        parts.push(format!("connection errors ×{}", tally.transport_errors));
    }
    if tally.timeouts > 0 {
        parts.push(format!("timeouts ×{}", tally.timeouts));
    }
    parts.join(", ")
}

/// Print the open-loop rate line; whether the target rate was sustained.
fn print_rate(target: f64, result: &RunResult) -> bool {
    let tally = &result.tally;
    let scheduled = result.scheduled.unwrap_or(0);
    let achieved = scheduled.saturating_sub(tally.unsent) as f64 / result.window.as_secs_f64();
    let sustained = tally.unsent == 0 && achieved >= target * SUSTAINED_SHARE;
    println!(
        "  rate          target {target}/s, sent {achieved:.1}/s; {} of {scheduled} scheduled \
         never sent, {} sent >1 ms late",
        tally.unsent, tally.late_sends
    );
    if !sustained {
        println!(
            "  WARNING       target rate NOT sustained: the server (or the client: see client CPU) \
             fell behind; latencies include the queueing"
        );
    }
    sustained
}

pub fn percentiles(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "no 2xx responses".to_owned();
    }
    let q = |quantile| ms(histogram.value_at_quantile(quantile));
    format!(
        "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        ms(histogram.max())
    )
}

pub fn latency_fields(histogram: &Histogram<u64>) -> Map<String, Value> {
    let mut fields = Map::new();
    let quantiles = [
        ("p50_ms", 0.5),
        ("p90_ms", 0.9),
        ("p99_ms", 0.99),
        ("p999_ms", 0.999),
    ];
    for (name, quantile) in quantiles {
        let value =
            (!histogram.is_empty()).then(|| round(ms(histogram.value_at_quantile(quantile)), 3));
        fields.insert(name.to_owned(), json!(value));
    }
    let max = (!histogram.is_empty()).then(|| round(ms(histogram.max()), 3));
    fields.insert("max_ms".to_owned(), json!(max));
    fields
}

pub fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

pub fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}
