//! The usage recorder: a write-behind buffer between the handlers that meter calls and the store,
//! so recording a call never waits for the database.
//!
//! Data flow: a handler hands a row to [`UsageRecorder::record`], which puts it in a bounded
//! channel and returns at once → one task per recorder takes rows off the channel and writes them
//! in batches (`Usage::record_usage`: one transaction with the users' token counters) when
//! `max_batch` rows are waiting or `interval` after the first row of a batch arrived → a failed
//! write is logged (row counts and the error, never row contents) and retried with backoff, the
//! rows held meanwhile; while that lasts the channel fills and `record` answers
//! [`RecordError::Busy`] instead of growing without bound.
//!
//! Shutdown: [`UsageRecorder::close`] runs after every HTTP server has stopped and finished its
//! requests (`Backends::close`), so no row can arrive any more; the task then writes everything
//! still buffered before it ends, and `close` waits for that up to a bound. Rows are lost only if
//! the process is killed, or the database stays unreachable past that bound (logged with a count).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use helix_store::usage::UsageRow;
use helix_store::{Store, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The variable that sets how long a row may wait before its batch is written, in milliseconds.
pub const FLUSH_VAR: &str = "HELIX_USAGE_FLUSH_MS";
pub const DEFAULT_FLUSH_MS: i64 = 250;
/// Rows per batch: a full batch is written at once.
pub const MAX_BATCH: usize = 500;
/// Rows buffered at most; beyond, `record` answers busy (the database is not keeping up).
pub const CAPACITY: usize = 20_000;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where batches go: the store, or a stand-in in tests.
#[async_trait]
pub trait UsageSink: Send + Sync + 'static {
    async fn write(&self, rows: &[UsageRow]) -> Result<(), StoreError>;
}

#[async_trait]
impl UsageSink for Arc<dyn Store> {
    async fn write(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
        self.usage().record_usage(rows).await
    }
}

/// How a recorder batches.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// A row waits at most this long for its batch to be written.
    pub interval: Duration,
    pub max_batch: usize,
    pub capacity: usize,
}

impl Options {
    /// The defaults, with the interval from `FLUSH_VAR` (validated at start) if set.
    pub fn with_interval_ms(ms: Option<i64>) -> Self {
        let ms = ms.unwrap_or(DEFAULT_FLUSH_MS).max(1);
        Self {
            interval: Duration::from_millis(ms as u64),
            max_batch: MAX_BATCH,
            capacity: CAPACITY,
        }
    }
}

/// Why a row was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("the usage buffer is full; the database is not keeping up")]
    Busy,
    #[error("the usage recorder has shut down")]
    Closed,
}

/// A handle on one recorder; cheap to clone, every clone feeds the same task.
#[derive(Clone)]
pub struct UsageRecorder {
    tx: mpsc::Sender<UsageRow>,
    shared: Arc<Shared>,
}

struct Shared {
    /// Cancelled by `close`: the task drains the channel and ends.
    stop: CancellationToken,
    /// Taken by the first `close`, which waits for it.
    task: Mutex<Option<JoinHandle<()>>>,
    /// Rows taken by `record` and not written yet, for the log line if some are lost.
    pending: AtomicUsize,
}

impl std::fmt::Debug for UsageRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageRecorder")
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl UsageRecorder {
    /// Start the recorder's task on the current runtime.
    pub fn spawn(sink: impl UsageSink, options: Options) -> Self {
        // Why bounded: an unreachable database must show as refused records, not as a process that
        // buffers until it runs out of memory.
        let (tx, rx) = mpsc::channel(options.capacity.max(1));
        let shared = Arc::new(Shared {
            stop: CancellationToken::new(),
            task: Mutex::new(None),
            pending: AtomicUsize::new(0),
        });
        // Why a task: batching needs one owner of the buffer, apart from any request.
        let task = tokio::spawn(run(sink, rx, options, Arc::clone(&shared)));
        *shared.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Self { tx, shared }
    }

    /// Take a row for the next batch, without waiting.
    pub fn record(&self, row: UsageRow) -> Result<(), RecordError> {
        if self.shared.stop.is_cancelled() {
            return Err(RecordError::Closed);
        }
        // Counted before sending: the writer may take and subtract the row before `try_send`
        // even returns, and the count must never wrap below zero.
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        let sent = self.tx.try_send(row);
        if sent.is_err() {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => Err(RecordError::Busy),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(RecordError::Closed),
        }
    }

    /// Stop taking rows, write every buffered one, and wait for that up to `grace`; after it the
    /// task is stopped and the rows still unwritten are logged as lost. Later calls return at once.
    pub async fn close(&self, grace: Duration) {
        self.shared.stop.cancel();
        let task = self
            .shared
            .task
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(mut task) = task else {
            return;
        };
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
            let lost = self.shared.pending.load(Ordering::Relaxed);
            tracing::error!(rows = lost, "usage rows not written before shutdown");
        }
    }
}

/// The task: fill a batch until it is full or due, write it, repeat; drain when stopped or when
/// every handle is gone.
async fn run(
    sink: impl UsageSink,
    mut rx: mpsc::Receiver<UsageRow>,
    options: Options,
    shared: Arc<Shared>,
) {
    let max = options.max_batch.max(1);
    let mut batch = Vec::with_capacity(max);
    loop {
        tokio::select! {
            biased;
            () = shared.stop.cancelled() => break,
            n = rx.recv_many(&mut batch, max) => if n == 0 { break },
        }
        let due = Instant::now() + options.interval;
        while batch.len() < max && !fill(&mut rx, &mut batch, max, due, &shared.stop).await {}
        write(&sink, &mut batch, &shared).await;
    }
    // No row can arrive any more (stopped, or no handle left): write what is buffered.
    rx.close();
    loop {
        // A full batch was written just below, so there is always room here.
        let room = max - batch.len();
        let n = rx.recv_many(&mut batch, room).await;
        if n == 0 || batch.len() >= max {
            write(&sink, &mut batch, &shared).await;
        }
        if n == 0 {
            return;
        }
    }
}

/// Add what arrives to `batch` until `due`; `true` when the batch should be written now.
async fn fill(
    rx: &mut mpsc::Receiver<UsageRow>,
    batch: &mut Vec<UsageRow>,
    max: usize,
    due: Instant,
    stop: &CancellationToken,
) -> bool {
    let room = max - batch.len();
    tokio::select! {
        biased;
        () = stop.cancelled() => true,
        () = tokio::time::sleep_until(due) => true,
        n = rx.recv_many(batch, room) => n == 0,
    }
}

/// Write `batch` (retrying until it is written), then empty it.
async fn write(sink: &impl UsageSink, batch: &mut Vec<UsageRow>, shared: &Shared) {
    if batch.is_empty() {
        return;
    }
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1u32.. {
        match sink.write(batch).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(rows = batch.len(), attempt, %error, "writing usage rows failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    shared.pending.fetch_sub(batch.len(), Ordering::Relaxed);
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    /// A sink that keeps what it was given and fails the first `failures` writes.
    #[derive(Default)]
    struct Memory {
        batches: Mutex<Vec<usize>>,
        failures: AtomicUsize,
        attempts: AtomicUsize,
    }

    #[async_trait]
    impl UsageSink for Arc<Memory> {
        async fn write(&self, rows: &[UsageRow]) -> Result<(), StoreError> {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            let failing = self.failures.load(Ordering::SeqCst);
            if failing > 0 {
                self.failures.store(failing - 1, Ordering::SeqCst);
                return Err(StoreError::Database("connection reset".into()));
            }
            self.batches.lock().unwrap().push(rows.len());
            Ok(())
        }
    }

    impl Memory {
        fn written(&self) -> usize {
            self.batches.lock().unwrap().iter().sum()
        }
    }

    fn row() -> UsageRow {
        UsageRow {
            user_id: Uuid::new_v4(),
            api_key_id: None,
            endpoint: "/v1/messages".into(),
            model: "m".into(),
            tokens_in: 1,
            tokens_out: 1,
            cost_micros: 1,
            at: Utc::now(),
        }
    }

    /// Never due by time during a test: only a full batch or `close` writes.
    fn slow(max_batch: usize, capacity: usize) -> Options {
        Options {
            interval: Duration::from_secs(3600),
            max_batch,
            capacity,
        }
    }

    const GRACE: Duration = Duration::from_secs(30);

    #[tokio::test]
    async fn rows_buffered_at_close_are_written_before_it_returns() {
        let sink = Arc::new(Memory::default());
        let recorder = UsageRecorder::spawn(Arc::clone(&sink), slow(500, 100));
        for _ in 0..3 {
            recorder.record(row()).unwrap();
        }
        assert_eq!(sink.written(), 0, "not due yet");

        recorder.close(GRACE).await;

        assert_eq!(sink.written(), 3);
        assert_eq!(recorder.record(row()), Err(RecordError::Closed));
        recorder.close(GRACE).await;
    }

    #[tokio::test]
    async fn a_full_batch_is_written_without_waiting_for_its_time() {
        let sink = Arc::new(Memory::default());
        let recorder = UsageRecorder::spawn(Arc::clone(&sink), slow(2, 100));
        for _ in 0..5 {
            recorder.record(row()).unwrap();
        }
        // A bound against a hang, not a timing check.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink.written() < 4 {
            assert!(
                std::time::Instant::now() < deadline,
                "full batches never written"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        recorder.close(GRACE).await;
        assert_eq!(*sink.batches.lock().unwrap(), vec![2, 2, 1]);
    }

    #[tokio::test]
    async fn a_failed_write_is_retried_and_written_once() {
        let sink = Arc::new(Memory::default());
        sink.failures.store(2, Ordering::SeqCst);
        let recorder = UsageRecorder::spawn(Arc::clone(&sink), slow(500, 100));
        recorder.record(row()).unwrap();
        recorder.record(row()).unwrap();

        recorder.close(GRACE).await;

        assert_eq!(*sink.batches.lock().unwrap(), vec![2]);
        assert_eq!(sink.attempts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_full_buffer_refuses_instead_of_waiting() {
        let sink = Arc::new(Memory::default());
        let recorder = UsageRecorder::spawn(Arc::clone(&sink), slow(500, 1));
        let results: Vec<_> = (0..3).map(|_| recorder.record(row())).collect();

        assert!(results.contains(&Err(RecordError::Busy)), "{results:?}");
        let taken = results.iter().filter(|r| r.is_ok()).count();
        recorder.close(GRACE).await;
        assert_eq!(sink.written(), taken, "every row taken is written");
    }

    #[tokio::test]
    async fn dropping_every_handle_writes_what_is_buffered() {
        let sink = Arc::new(Memory::default());
        let recorder = UsageRecorder::spawn(Arc::clone(&sink), slow(500, 100));
        recorder.record(row()).unwrap();
        let task = recorder.shared.task.lock().unwrap().take().unwrap();

        drop(recorder);

        task.await.unwrap();
        assert_eq!(sink.written(), 1);
    }
}
