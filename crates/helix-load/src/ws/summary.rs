//! Printing WebSocket results like the HTTP commands' (`report`): aligned lines for people, then
//! one `SUMMARY {json}` line for scripts (`grep '^SUMMARY' | cut -c9- | jq`).

use hdrhistogram::Histogram;
use serde_json::{json, Map, Value};

use crate::report;

/// `p50 … p99.9 … max …` in ms, or why there is none.
pub fn latency(histogram: &Histogram<u64>) -> String {
    if histogram.is_empty() {
        return "no timed deliveries".to_owned();
    }
    report::percentiles(histogram)
}

/// `part` as a percentage of `whole` (100 when nothing was expected).
pub fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 100.0;
    }
    report::round(part as f64 * 100.0 / whole as f64, 3)
}

pub fn per_second(count: u64, seconds: f64) -> f64 {
    report::round(count as f64 / seconds.max(f64::EPSILON), 1)
}

/// Server memory samples (KiB), for the human line and the summary.
#[derive(Debug, Default)]
pub struct Memory {
    pub samples: Vec<(&'static str, u64)>,
}

impl Memory {
    pub fn record(&mut self, label: &'static str, kib: Option<u64>) {
        if let Some(kib) = kib {
            self.samples.push((label, kib));
        }
    }

    /// `  server RSS    before 12.0 MiB, open 80.5 MiB (+5.6 KiB per connection)`.
    pub fn print(&self, connections: usize) {
        let Some(&(_, baseline)) = self.samples.first() else {
            return;
        };
        let parts: Vec<String> = self
            .samples
            .iter()
            .map(|(label, kib)| format!("{label} {:.1} MiB", *kib as f64 / 1024.0))
            .collect();
        let growth = self.samples.get(1).map_or(String::new(), |(_, after)| {
            format!(
                " ({:+.2} KiB per connection, {} → {})",
                per_connection(baseline, *after, connections),
                self.samples[0].0,
                self.samples[1].0
            )
        });
        println!("  server RSS    {}{growth}", parts.join(", "));
    }

    pub fn to_json(&self, connections: usize) -> Map<String, Value> {
        let mut fields = Map::new();
        for (label, kib) in &self.samples {
            fields.insert(format!("server_rss_{label}_kib"), json!(kib));
        }
        if let [(_, before), (_, after), ..] = self.samples[..] {
            fields.insert(
                "server_kib_per_connection".to_owned(),
                json!(report::round(per_connection(before, after, connections), 3)),
            );
        }
        fields
    }
}

/// (after − before) / connections, in KiB.
pub fn per_connection(before: u64, after: u64, connections: usize) -> f64 {
    (after as f64 - before as f64) / connections.max(1) as f64
}

/// Print `SUMMARY {…}` with the latency figures (ms) merged in when given.
pub fn print(mut fields: Map<String, Value>, latency: Option<&Histogram<u64>>) {
    if let Some(histogram) = latency {
        fields.extend(report::latency_fields(histogram));
    }
    println!("SUMMARY {}", Value::Object(fields));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_per_connection_is_the_growth_over_the_connections() {
        assert_eq!(per_connection(10_000, 40_000, 10_000), 3.0);
        assert_eq!(per_connection(10_000, 9_000, 1_000), -1.0);
        let mut memory = Memory::default();
        memory.record("before", Some(1024));
        memory.record("missing", None);
        memory.record("open", Some(3072));
        let fields = memory.to_json(1024);
        assert_eq!(fields["server_kib_per_connection"], json!(2.0));
        assert_eq!(fields["server_rss_open_kib"], json!(3072));
    }

    #[test]
    fn percentages_round_and_handle_nothing_expected() {
        assert_eq!(percent(1, 3), 33.333);
        assert_eq!(percent(0, 0), 100.0);
    }
}
