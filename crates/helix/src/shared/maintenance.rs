//! Maintenance mode: one switch that makes every service of the deployment answer 503 (with
//! `Retry-After` and a JSON body) except `/health`, `/metrics` and the admin switch itself.
//!
//! Where the switch lives: durably in the database (`helix_meta`, key `maintenance`), written by
//! the admin endpoint or `helix maintenance on|off`; mirrored on the bus (a key/value entry plus a
//! message on `helix:maintenance`) so that services without a database see it too. Every service
//! process watches: it reacts at once to the message and re-reads the switch every second, so a
//! missed message (a Redis reconnect, a CLI run without Redis) still flips every instance within
//! about a second. A service with a database re-mirrors what the database says onto the bus.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use helix_bus::{Bus, Event};
use helix_store::Store;
use serde::{Deserialize, Serialize};

use crate::shared::error::ApiError;

/// The `helix_meta` key and the bus key holding the switch.
pub const KEY: &str = "maintenance";
/// The channel announcing a flip.
pub const CHANNEL: &str = "helix:maintenance";
/// How often the switch is re-read when no message arrives.
const POLL: Duration = Duration::from_secs(1);
/// Paths that keep answering during maintenance.
const EXEMPT: [&str; 3] = ["/health", "/metrics", "/api/admin/maintenance"];

/// The switch, as stored and published. `on: false` is the same as no switch at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Switch {
    pub on: bool,
    pub message: String,
    /// Seconds clients are told to wait.
    pub retry_after: u64,
    pub since: DateTime<Utc>,
}

impl Switch {
    pub fn off() -> Self {
        Self {
            on: false,
            message: String::new(),
            retry_after: 0,
            since: Utc::now(),
        }
    }

    /// Longest message shown to clients.
    const MAX_MESSAGE: usize = 500;

    fn parse(raw: &[u8]) -> Option<Self> {
        serde_json::from_slice(raw).ok()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a switch serialises")
    }
}

/// Build a switch from what an operator gave, checking each field; errors name the field.
pub fn switch(
    on: bool,
    message: Option<String>,
    retry_after: Option<u64>,
) -> Result<Switch, (&'static str, &'static str)> {
    let message = message
        .unwrap_or_else(|| "Helix is down for maintenance; please retry shortly.".to_owned());
    if message.chars().count() > Switch::MAX_MESSAGE || message.chars().any(char::is_control) {
        return Err((
            "message",
            "must be at most 500 characters without control characters",
        ));
    }
    let retry_after = retry_after.unwrap_or(60);
    if !(1..=86_400).contains(&retry_after) {
        return Err(("retry_after", "must be from 1 to 86400 seconds"));
    }
    Ok(Switch {
        on,
        message,
        retry_after,
        since: Utc::now(),
    })
}

/// What one service process currently believes.
#[derive(Debug, Default)]
pub struct Maintenance {
    current: RwLock<Option<Switch>>,
    /// Bumped by every flip made by this process, so a re-read that started before the flip
    /// cannot put back what it read.
    flips: AtomicU64,
}

impl Maintenance {
    pub fn get(&self) -> Option<Switch> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .filter(|s| s.on)
    }

    /// Apply a flip made by this process at once: the instance that took the request must not
    /// answer as if the flip had not happened while its watcher catches up.
    pub fn flip(&self, switch: Switch) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        self.flips.fetch_add(1, Ordering::SeqCst);
        Self::replace(&mut current, Some(switch));
    }

    fn flips(&self) -> u64 {
        self.flips.load(Ordering::SeqCst)
    }

    /// Apply a re-read unless this process flipped the switch since the re-read began.
    fn set_unless_flipped(&self, seen: u64, switch: Option<Switch>) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if self.flips() == seen {
            Self::replace(&mut current, switch);
        }
    }

    fn replace(current: &mut Option<Switch>, switch: Option<Switch>) {
        if *current != switch {
            match &switch {
                Some(s) if s.on => tracing::warn!(message = %s.message, "maintenance mode is on"),
                _ => tracing::info!("maintenance mode is off"),
            }
            *current = switch;
        }
    }
}

/// Axum middleware: answer 503 during maintenance, except on the exempt paths.
pub async fn gate(State(state): State<Arc<Maintenance>>, request: Request, next: Next) -> Response {
    let Some(switch) = state.get() else {
        return next.run(request).await;
    };
    if EXEMPT.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let mut error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "maintenance",
        switch.message.clone(),
    );
    error
        .fields
        .insert("since".into(), switch.since.to_rfc3339().into());
    error
        .headers
        .insert("retry-after", HeaderValue::from(switch.retry_after.max(1)));
    error.into_response()
}

/// Write the switch durably (by the caller, in the store) and announce it on the bus.
pub async fn announce(bus: &dyn Bus, switch: &Switch) {
    let json = switch.to_json();
    if let Err(e) = bus.set(KEY, Bytes::from(json.clone()), None).await {
        tracing::warn!(error = %e, "could not mirror the maintenance switch on the bus");
    }
    if let Err(e) = bus.publish(CHANNEL, Bytes::from(json)).await {
        tracing::warn!(error = %e, "could not announce the maintenance switch");
    }
}

/// Watch the switch for one service until the service's state is gone or the bus closes.
pub fn watch(state: &Arc<Maintenance>, store: Option<Arc<dyn Store>>, bus: Arc<dyn Bus>) {
    let weak = Arc::downgrade(state);
    // Why a task: the switch must flip while the service is idle too, not only on requests.
    tokio::spawn(async move {
        let mut subscription = bus.subscribe(CHANNEL).await.ok();
        loop {
            let Some(state) = weak.upgrade() else { return };
            refresh(&state, store.as_deref(), &*bus).await;
            drop(state);
            let message = async {
                match subscription.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = message => match event {
                    Some(Event::Message(m)) => apply(&weak, Switch::parse(&m.payload)),
                    Some(_) => {}
                    None => return, // the bus closed: the service is stopping
                },
                () = tokio::time::sleep(POLL) => {}
            }
        }
    });
}

/// Apply an announced flip. One older than what this process already holds is a message that
/// was still queued when a later flip was made here; it is dropped (should clocks disagree
/// between instances, the next re-read still converges on what the database says).
fn apply(weak: &Weak<Maintenance>, switch: Option<Switch>) {
    let (Some(state), Some(switch)) = (weak.upgrade(), switch) else {
        return;
    };
    let mut current = state.current.write().unwrap_or_else(|e| e.into_inner());
    if current.as_ref().is_none_or(|c| c.since <= switch.since) {
        Maintenance::replace(&mut current, Some(switch));
    }
}

/// Re-read the switch: from the database when there is one (mirroring it onto the bus if the bus
/// disagrees), else from the bus.
async fn refresh(state: &Maintenance, store: Option<&dyn Store>, bus: &dyn Bus) {
    let seen = state.flips();
    let on_bus = match bus.get(KEY).await {
        Ok(v) => v.and_then(|raw| Switch::parse(&raw)),
        Err(_) => return, // keep what we believe until the bus answers again
    };
    let Some(store) = store else {
        state.set_unless_flipped(seen, on_bus);
        return;
    };
    let Ok(stored) = store.meta_get(KEY).await else {
        return;
    };
    let stored = stored.and_then(|raw| Switch::parse(raw.as_bytes()));
    let on = |s: &Option<Switch>| s.as_ref().is_some_and(|s| s.on);
    if on(&stored) != on(&on_bus) {
        announce(bus, stored.as_ref().unwrap_or(&Switch::off())).await;
    }
    state.set_unless_flipped(seen, stored);
}
