//! The single-machine supervisor: runs several services in one process under one cancellation
//! token, and stops them all when one fails or a signal arrives.

use std::time::Duration;

use axum::serve::ListenerExt;
use axum::Router;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::services::ServiceState;

/// One thing to run.
pub enum Unit {
    /// An HTTP service on an already-bound listener (so tests can bind port 0).
    Http {
        name: &'static str,
        listener: TcpListener,
        router: Router,
        /// The service's state: its long-lived connections are drained before it counts as
        /// stopped.
        state: ServiceState,
    },
}

impl Unit {
    fn name(&self) -> &'static str {
        match self {
            Unit::Http { name, .. } => name,
        }
    }
}

/// Serve one router until `shutdown` is cancelled; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Connection info gives handlers the peer address (audit entries, per-IP rate limits).
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = listener.tap_io(tune);
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Serve one service's router; once shutdown begins, tell its long-lived connections to close
/// (at once, while in-flight requests finish) and wait for them too.
async fn serve_and_drain(
    listener: TcpListener,
    router: Router,
    state: ServiceState,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let stopping = state.stopping().clone();
    let signal = shutdown.clone();
    let (served, ()) = tokio::join!(serve(listener, router, shutdown), async move {
        signal.cancelled().await;
        stopping.cancel();
    });
    served?;
    state.tasks().close();
    state.tasks().wait().await;
    Ok(())
}

/// Options of every accepted connection. Why no Nagle: a WebSocket push or a small response must
/// leave at once, not wait for the peer's (delayed) acknowledgement of the previous one. Why
/// keepalive: a WebSocket client that vanished without closing (a laptop shut, a network gone)
/// is found by the kernel within about [`KEEPALIVE_IDLE`] + 3 × [`KEEPALIVE_INTERVAL`] and its
/// connection freed, at no cost to the process.
fn tune(tcp: &mut tokio::net::TcpStream) {
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(%error, "could not set TCP_NODELAY");
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(3);
    if let Err(error) = socket2::SockRef::from(&*tcp).set_tcp_keepalive(&keepalive) {
        tracing::debug!(%error, "could not set TCP keepalive");
    }
}

const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

/// Run every unit until `shutdown` is cancelled or one of them stops. Returns an error naming
/// the first unit that failed. After cancellation units get `grace` to finish, then are aborted.
pub async fn run(
    units: Vec<Unit>,
    shutdown: CancellationToken,
    grace: Duration,
) -> anyhow::Result<()> {
    // Why a JoinSet: it lets us wait for whichever unit stops first, then for the rest.
    let mut set = JoinSet::new();
    for unit in units {
        let name = unit.name();
        let token = shutdown.clone();
        let future: BoxFuture<'static, anyhow::Result<()>> = match unit {
            Unit::Http {
                listener,
                router,
                state,
                ..
            } => Box::pin(serve_and_drain(listener, router, state, token)),
        };
        set.spawn(async move { (name, future.await) });
    }
    let mut first_failure = None;
    if let Some(joined) = set.join_next().await {
        first_failure = report(joined, &shutdown);
        shutdown.cancel();
    }
    let drain = async {
        while let Some(joined) = set.join_next().await {
            if let Some(failure) = report(joined, &shutdown) {
                first_failure.get_or_insert(failure);
            }
        }
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        tracing::warn!(
            grace_secs = grace.as_secs(),
            "services did not stop in time; aborting them"
        );
        set.abort_all();
    }
    match first_failure {
        Some(failure) => Err(anyhow::anyhow!(failure)),
        None => Ok(()),
    }
}

type Joined = Result<(&'static str, anyhow::Result<()>), tokio::task::JoinError>;

/// Log how a unit stopped; return a description if it failed.
fn report(joined: Joined, shutdown: &CancellationToken) -> Option<String> {
    match joined {
        Ok((name, Ok(()))) if shutdown.is_cancelled() => {
            tracing::info!(service = name, "stopped");
            None
        }
        Ok((name, Ok(()))) => {
            tracing::error!(service = name, "stopped unexpectedly; stopping the others");
            Some(format!("{name} stopped unexpectedly"))
        }
        Ok((name, Err(e))) => {
            tracing::error!(service = name, error = %e, "failed; stopping the others");
            Some(format!("{name} failed: {e}"))
        }
        Err(e) => {
            tracing::error!(error = %e, "a service task panicked; stopping the others");
            Some(format!("a service task panicked: {e}"))
        }
    }
}
