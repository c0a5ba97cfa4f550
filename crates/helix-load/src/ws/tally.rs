//! What the receiving side of a run saw, per connection task and merged at the end: delivery
//! latency from each message's `ts` (its publisher's send time, in Unix nanoseconds: both ends run
//! on this machine, so one clock), delivery counts, acks, error frames, and how connections ended.
//!
//! Only messages *sent* inside the measured window count, so warm-up traffic and the drain after
//! the window are excluded however late they arrive. Latencies go into a per-task HDR histogram in
//! microseconds with 2 significant figures (±1%): with 10,000 subscriber tasks, 3 figures would
//! cost ~50 KB each.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::client::{describe_close, Socket};
use super::frame::{self, Frame};
use super::pace::Pacer;

/// Now as Unix nanoseconds (the `ts` publishers stamp and receivers subtract).
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// The measured part of a run, as monotonic instants for schedules and as Unix nanoseconds for
/// classifying the `ts` of received messages.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure_from: Instant,
    pub end: Instant,
    from_ns: u64,
    to_ns: u64,
}

impl Window {
    /// A window opening `warmup` from now and lasting `duration`.
    pub fn after(warmup: Duration, duration: Duration) -> Window {
        let (start, now_ns) = (Instant::now(), unix_nanos());
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Window {
            start,
            measure_from: start + warmup,
            end: start + warmup + duration,
            from_ns: now_ns.saturating_add(nanos(warmup)),
            to_ns: now_ns.saturating_add(nanos(warmup + duration)),
        }
    }

    /// Whether a message sent at `ts` (Unix ns) belongs to the measured window.
    pub fn contains_ns(&self, ts: u64) -> bool {
        (self.from_ns..self.to_ns).contains(&ts)
    }

    pub fn seconds(&self) -> f64 {
        (self.end - self.measure_from).as_secs_f64()
    }
}

/// Where a run is, told to every connection task through a `watch` channel.
#[derive(Debug, Clone)]
pub enum Phase {
    /// Connections are being opened; nothing is published yet.
    Opening,
    /// Publishing; `pacer` is set when connections publish on a schedule themselves.
    Running {
        window: Window,
        pacer: Option<Arc<Pacer>>,
    },
    /// Stop reading and close.
    Stopping,
}

/// Occurrences by description (close codes, error codes), for reports.
#[derive(Debug, Clone, Default)]
pub struct Counts(BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, key: impl Into<String>) {
        *self.0.entry(key.into()).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Counts) {
        for (key, n) in &other.0 {
            *self.0.entry(key.clone()).or_default() += n;
        }
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// `close 4001 (slow consumer) ×3, …`, or `none`.
    pub fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".to_owned();
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(key, n)| format!("{key} ×{n}"))
            .collect();
        parts.join(", ")
    }

    pub fn to_json(&self) -> Value {
        json!(self.0)
    }
}

/// What receiving connections saw.
#[derive(Debug, Clone)]
pub struct Deliveries {
    /// µs from the message's `ts` to its arrival, for messages sent in the window.
    pub latency: Histogram<u64>,
    /// `message` frames of messages sent in the window.
    pub measured: u64,
    /// Every `message` frame, warm-up and drain included.
    pub total: u64,
    /// `message` frames without a readable `ts` (not ours).
    pub untimed: u64,
    /// `published` acks.
    pub acks: u64,
    /// `error` frames by code.
    pub errors: Counts,
}

impl Default for Deliveries {
    fn default() -> Self {
        Deliveries {
            latency: Histogram::new(2).expect("2 significant figures is a valid precision"),
            measured: 0,
            total: 0,
            untimed: 0,
            acks: 0,
            errors: Counts::default(),
        }
    }
}

impl Deliveries {
    /// Account for one received text frame.
    pub fn on_text(&mut self, text: &str, window: Option<&Window>) {
        match frame::kind(text) {
            Some("message") => self.on_message(text, window),
            Some("published") => self.acks += 1,
            Some("error") => {
                let code = Frame::parse(text).and_then(|f| f.code.map(|code| code.into_owned()));
                self.errors.add(code.unwrap_or_else(|| "?".to_owned()));
            }
            _ => {}
        }
    }

    fn on_message(&mut self, text: &str, window: Option<&Window>) {
        self.total += 1;
        let Some(ts) = frame::u64_field(text, "ts") else {
            self.untimed += 1;
            return;
        };
        if window.is_some_and(|window| window.contains_ns(ts)) {
            self.measured += 1;
            let micros = unix_nanos().saturating_sub(ts) / 1000;
            if self.latency.record(micros).is_err() {
                self.latency.saturating_record(micros);
            }
        }
    }

    pub fn merge(&mut self, other: &Deliveries) {
        // Auto-resizing histograms: adding cannot fail for lack of range.
        let _ = self.latency.add(&other.latency);
        self.measured += other.measured;
        self.total += other.total;
        self.untimed += other.untimed;
        self.acks += other.acks;
        self.errors.merge(&other.errors);
    }
}

/// Read frames into `deliveries` until the run stops (`None`) or the connection ends (how).
pub async fn listen(
    socket: &mut Socket,
    phase: &mut watch::Receiver<Phase>,
    deliveries: &mut Deliveries,
) -> Option<String> {
    let mut window = running_window(&phase.borrow_and_update())?;
    loop {
        tokio::select! {
            next = socket.next() => {
                if let Err(ended) = receive(next, deliveries, window.as_ref()) {
                    return Some(ended);
                }
            }
            changed = phase.changed() => {
                if changed.is_err() {
                    return None;
                }
                window = running_window(&phase.borrow_and_update())?;
            }
        }
    }
}

/// Account for what `socket.next()` gave; `Err(how)` once the connection has ended.
pub fn receive(
    next: Option<Result<Message, WsError>>,
    deliveries: &mut Deliveries,
    window: Option<&Window>,
) -> Result<(), String> {
    if let Some(text) = text_of(next)? {
        deliveries.on_text(text.as_str(), window);
    }
    Ok(())
}

/// The text of what `socket.next()` gave (`None` for pings and other control frames, which
/// tungstenite answers itself); `Err(how)` once the connection has ended.
pub fn text_of(next: Option<Result<Message, WsError>>) -> Result<Option<Utf8Bytes>, String> {
    match next {
        Some(Ok(Message::Text(text))) => Ok(Some(text)),
        Some(Ok(Message::Close(close))) => Err(describe_close(close.as_ref())),
        Some(Ok(_)) => Ok(None),
        Some(Err(err)) => Err(lost(&err)),
        None => Err("ended without a close frame".to_owned()),
    }
}

/// The window of a running phase; `None` (outer) once stopping.
pub fn running_window(phase: &Phase) -> Option<Option<Window>> {
    match phase {
        Phase::Opening => Some(None),
        Phase::Running { window, .. } => Some(Some(*window)),
        Phase::Stopping => None,
    }
}

/// A connection error as a disconnect reason, without per-connection details.
pub fn lost(err: &WsError) -> String {
    match err {
        WsError::Io(io) => format!("I/O error: {:?}", io.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_owned(),
        WsError::Protocol(protocol) => format!("protocol error: {protocol}"),
        other => format!("error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(ts: u64) -> String {
        format!(
            r#"{{"type":"message","channel":"c","offset":1,"epoch":"e","data":{{"ts":{ts},"seq":0}}}}"#
        )
    }

    #[test]
    fn only_messages_sent_in_the_window_are_timed() {
        let window = Window::after(Duration::from_millis(0), Duration::from_secs(60));
        let mut deliveries = Deliveries::default();
        let sent = unix_nanos();
        std::thread::sleep(Duration::from_millis(2));
        deliveries.on_text(&message(sent), Some(&window)); // 2 ms in flight
        deliveries.on_text(&message(1), Some(&window)); // long before the window
        deliveries.on_text(&message(unix_nanos()), None); // no window yet
        deliveries.on_text(
            r#"{"type":"message","channel":"c","data":{"x":1}}"#,
            Some(&window),
        );
        deliveries.on_text(
            r#"{"type":"published","channel":"c","offset":1}"#,
            Some(&window),
        );
        deliveries.on_text(
            r#"{"type":"error","code":"rate_limited","message":"slow"}"#,
            None,
        );
        assert_eq!((deliveries.total, deliveries.measured), (4, 1));
        assert_eq!((deliveries.untimed, deliveries.acks), (1, 1));
        assert_eq!(deliveries.errors.describe(), "rate_limited ×1");
        assert!(deliveries.latency.max() >= 1900, "2 ms in µs, ±1%");
    }

    #[test]
    fn counts_merge_and_describe() {
        let mut a = Counts::default();
        a.add("close 4001 (slow consumer)");
        let mut b = Counts::default();
        b.add("close 4001 (slow consumer)");
        b.add("closed");
        a.merge(&b);
        assert_eq!(a.total(), 3);
        assert_eq!(a.describe(), "close 4001 (slow consumer) ×2, closed ×1");
        assert_eq!(Counts::default().describe(), "none");
    }
}
