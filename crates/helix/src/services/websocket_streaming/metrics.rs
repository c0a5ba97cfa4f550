//! The hub's own Prometheus metrics, registered in the service's registry (so they appear on its
//! `/metrics` beside the HTTP ones).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

#[derive(Debug, Clone)]
pub struct HubMetrics {
    pub connections: IntGauge,
    pub subscriptions: IntGauge,
    pub channels: IntGauge,
    /// Frames received from clients.
    pub frames_in: IntCounter,
    /// Message frames written to clients.
    pub messages_out: IntCounter,
    /// Messages appended (published) through this instance.
    pub published: IntCounter,
    /// Messages not queued for a connection because its queue was full.
    pub dropped: IntCounter,
    /// Connections closed by the hub, by reason.
    pub closed: IntCounterVec,
    /// Connections refused at connect (no valid credential, draining).
    pub refused: IntCounter,
    /// Channel replays after a bus interruption (a reconnect or a lagged bus subscription).
    pub recoveries: IntCounter,
}

impl HubMetrics {
    pub fn new(registry: &Registry) -> Self {
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("static metric definition is valid");
            registry
                .register(Box::new(g.clone()))
                .expect("registered once");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("static metric definition is valid");
            registry
                .register(Box::new(c.clone()))
                .expect("registered once");
            c
        };
        let closed = IntCounterVec::new(
            Opts::new(
                "ws_closed_total",
                "WebSocket connections closed by the hub, by reason",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        registry
            .register(Box::new(closed.clone()))
            .expect("registered once");
        Self {
            connections: gauge("ws_connections", "Open WebSocket connections"),
            subscriptions: gauge(
                "ws_subscriptions",
                "Channel subscriptions of open connections",
            ),
            channels: gauge(
                "ws_channels",
                "Channels this instance listens to on the bus",
            ),
            frames_in: counter("ws_frames_in_total", "Frames received from clients"),
            messages_out: counter("ws_messages_out_total", "Message frames sent to clients"),
            published: counter(
                "ws_published_total",
                "Messages published through this instance",
            ),
            dropped: counter(
                "ws_dropped_total",
                "Messages dropped for a connection whose send queue was full",
            ),
            closed,
            refused: counter("ws_refused_total", "Connections refused at connect"),
            recoveries: counter(
                "ws_recoveries_total",
                "Channel replays from history after a bus interruption",
            ),
        }
    }
}
