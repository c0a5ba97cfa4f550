//! The fixture of the conformance suite: a private key prefix per test (every Redis key under it
//! deleted afterwards, passed or failed), raw Redis access beside the bus, bounded waits, and the
//! macros that declare each test once per backend.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use helix_bus::{open, Bus, BusOptions, Event, Subscription};
use redis::aio::MultiplexedConnection;

pub const REDIS_ENV: &str = "HELIX_TEST_REDIS_URL";

/// Upper bound on any single wait: a broken bus fails the test instead of hanging it. Generous on
/// purpose, as it only ever elapses when something is wrong.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Upper bound on a whole test, for calls that no single wait covers (a `subscribe` that never
/// answers, say).
const WHOLE_TEST: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Memory,
    Redis,
}

/// One test's private corner of the backend: what to pass to `open`, and raw access beside it.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub engine: Engine,
    url: Option<String>,
    /// `helix_test_<uuid>`: every prefix handed out starts with it, so one SCAN finds all keys.
    stem: String,
}

impl Fixture {
    /// The Redis URL (`None` on memory).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The test's main prefix.
    pub fn prefix(&self) -> String {
        format!("{}:", self.stem)
    }

    /// Another prefix of this test that neither contains nor is contained in [`Self::prefix`],
    /// for a second, isolated bus on the same Redis.
    pub fn other_prefix(&self, name: &str) -> String {
        format!("{}.{name}:", self.stem)
    }

    pub fn options(&self) -> BusOptions {
        BusOptions {
            prefix: self.prefix(),
            connect_timeout: Duration::from_secs(2),
            connect_attempts: 3,
            ..BusOptions::default()
        }
    }

    pub async fn open(&self) -> Arc<dyn Bus> {
        self.open_with(&self.options()).await
    }

    pub async fn open_with(&self, options: &BusOptions) -> Arc<dyn Bus> {
        open(self.url(), options).await.expect("open the bus")
    }

    /// A plain connection to the test Redis, as an operator with `redis-cli` would have.
    pub async fn raw(&self) -> Option<MultiplexedConnection> {
        Some(raw(self.url()?).await)
    }

    /// How many connections Redis counts as subscribed to `channel` of `prefix`
    /// (`None` on memory, which has no outside view).
    pub async fn subscribers(&self, prefix: &str, channel: &str) -> Option<i64> {
        let mut conn = self.raw().await?;
        let (_, count): (String, i64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(format!("{prefix}{channel}"))
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        Some(count)
    }

    /// Every key under this test's prefixes.
    pub async fn keys(&self) -> Vec<String> {
        match self.raw().await {
            Some(mut conn) => scan(&mut conn, &format!("{}*", self.stem)).await,
            None => Vec::new(),
        }
    }
}

pub async fn raw(url: &str) -> MultiplexedConnection {
    let client = redis::Client::open(url).expect("redis client");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("raw redis connection")
}

async fn scan(conn: &mut MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Delete every key of the test; checked, so a leak in the cleanup itself is noticed.
async fn clean(url: &str, stem: &str) {
    let mut conn = raw(url).await;
    let pattern = format!("{stem}*");
    for key in scan(&mut conn, &pattern).await {
        redis::cmd("DEL")
            .arg(&key)
            .exec_async(&mut conn)
            .await
            .expect("DEL");
    }
    let left = scan(&mut conn, &pattern).await;
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

/// Run `test` with a fresh prefix on `engine`, then clean up even if it panicked.
pub async fn run<F, Fut>(engine: Engine, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = match engine {
        Engine::Memory => None,
        Engine::Redis => match std::env::var(REDIS_ENV) {
            Ok(url) => Some(url),
            Err(_) => {
                eprintln!("note: {REDIS_ENV} is unset; skipping the Redis variant");
                return;
            }
        },
    };
    let stem = format!("helix_test_{}", uuid::Uuid::new_v4().simple());
    let fixture = Fixture { engine, url, stem };
    let body = test(fixture.clone());
    // Why a task: a panic inside it comes back as a JoinError, so the cleanup below still runs.
    // Why a bound on the whole test: a call that never returns fails the test, not the run.
    let outcome = tokio::spawn(async move {
        let finished = tokio::time::timeout(WHOLE_TEST, body).await;
        finished.expect("the test did not finish within its bound");
    })
    .await;
    if let Some(url) = fixture.url() {
        clean(url, &fixture.stem).await;
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The next event, failing the test if none comes within [`PATIENCE`] or the subscription ends.
pub async fn next_event(sub: &mut Subscription) -> Event {
    tokio::time::timeout(PATIENCE, sub.recv())
        .await
        .expect("no event within the patience bound")
        .expect("the subscription ended")
}

/// The next event, which must be a message on `channel`; returns its payload.
pub async fn next_payload(sub: &mut Subscription, channel: &str) -> Bytes {
    match next_event(sub).await {
        Event::Message(m) => {
            assert_eq!(m.channel, channel, "channel as the subscriber sees it");
            m.payload
        }
        other => panic!("expected a message on {channel}, got {other:?}"),
    }
}

/// Poll `probe` every few milliseconds until it yields `Some`, failing after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Declare each contract test twice: `memory::<name>` and `redis::<name>`.
macro_rules! on_every_backend {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Memory, super::$test).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Redis, super::$test).await;
                }
            )*
        }
    };
}

/// Declare tests of behaviour only Redis has (reconnects, several buses sharing state):
/// `redis_only::<name>`, skipped with a note when no Redis is configured.
macro_rules! on_redis_only {
    ($($test:ident),* $(,)?) => {
        mod redis_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    crate::support::run(crate::support::Engine::Redis, super::$test).await;
                }
            )*
        }
    };
}
