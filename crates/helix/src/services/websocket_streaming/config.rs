//! The hub's settings, from its variables (declared in [`super::SPEC`], so checked at start).

use std::time::Duration;

use helix_bus::Retention;

use crate::config::ServiceEnv;
use crate::platform::catalog::VarSpec;

pub const HISTORY_SIZE_VAR: &str = "HELIX_WS_HISTORY_SIZE";
pub const HISTORY_TTL_VAR: &str = "HELIX_WS_HISTORY_TTL_SECS";
pub const MAX_FRAME_VAR: &str = "HELIX_WS_MAX_FRAME_BYTES";
pub const MAX_SUBSCRIPTIONS_VAR: &str = "HELIX_WS_MAX_SUBSCRIPTIONS";
pub const SEND_QUEUE_VAR: &str = "HELIX_WS_SEND_QUEUE";
pub const FRAMES_PER_SECOND_VAR: &str = "HELIX_WS_FRAMES_PER_SECOND";
pub const TOKEN_GRACE_VAR: &str = "HELIX_WS_TOKEN_GRACE_SECS";
pub const DRAIN_VAR: &str = "HELIX_WS_DRAIN_SECS";

/// The variables, for the service's declaration.
pub const VARS: [VarSpec; 8] = [
    VarSpec::optional(
        HISTORY_SIZE_VAR,
        "messages each channel keeps for recovery (default 300)",
    )
    .integer(1, 100_000),
    VarSpec::optional(
        HISTORY_TTL_VAR,
        "seconds a message stays recoverable (default 300)",
    )
    .integer(1, 86_400),
    VarSpec::optional(
        MAX_FRAME_VAR,
        "largest frame a client may send, in bytes (default 65536)",
    )
    .integer(256, 16_777_216),
    VarSpec::optional(
        MAX_SUBSCRIPTIONS_VAR,
        "channels one connection may subscribe to (default 100)",
    )
    .integer(1, 10_000),
    VarSpec::optional(
        SEND_QUEUE_VAR,
        "batches (a channel's messages that arrived together) queued for one connection before it counts as a slow consumer (default 1024)",
    )
    .integer(16, 1_000_000),
    VarSpec::optional(
        FRAMES_PER_SECOND_VAR,
        "frames one connection may send per second, with a burst of twice that (default 200)",
    )
    .integer(1, 1_000_000),
    VarSpec::optional(
        TOKEN_GRACE_VAR,
        "seconds a connection whose token expired has to send a fresh one (default 30)",
    )
    .integer(1, 3600),
    VarSpec::optional(
        DRAIN_VAR,
        "seconds over which connections are closed at shutdown (default 5)",
    )
    .integer(0, 600),
];

#[derive(Debug, Clone)]
pub struct HubConfig {
    pub retention: Retention,
    pub max_frame_bytes: usize,
    pub max_subscriptions: usize,
    pub send_queue: usize,
    pub frames_per_second: u32,
    pub token_grace: Duration,
    pub drain: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            max_frame_bytes: 64 * 1024,
            max_subscriptions: 100,
            send_queue: 1024,
            frames_per_second: 200,
            token_grace: Duration::from_secs(30),
            drain: Duration::from_secs(5),
        }
    }
}

impl HubConfig {
    pub fn from_env(env: &ServiceEnv) -> Self {
        let d = Self::default();
        let int = |name: &str| env.integer(name).map(|n| n.max(0) as u64);
        Self {
            retention: Retention {
                max_messages: int(HISTORY_SIZE_VAR)
                    .map_or(d.retention.max_messages, |n| n as usize),
                max_age: int(HISTORY_TTL_VAR).map_or(d.retention.max_age, Duration::from_secs),
            },
            max_frame_bytes: int(MAX_FRAME_VAR).map_or(d.max_frame_bytes, |n| n as usize),
            max_subscriptions: int(MAX_SUBSCRIPTIONS_VAR)
                .map_or(d.max_subscriptions, |n| n as usize),
            send_queue: int(SEND_QUEUE_VAR).map_or(d.send_queue, |n| n as usize),
            frames_per_second: int(FRAMES_PER_SECOND_VAR).map_or(d.frames_per_second, |n| n as u32),
            token_grace: int(TOKEN_GRACE_VAR).map_or(d.token_grace, Duration::from_secs),
            drain: int(DRAIN_VAR).map_or(d.drain, Duration::from_secs),
        }
    }
}
