//! The worker across a real Redis restart: a private `redis-server` (append-only file, so the
//! jobs survive as they would on a production broker) is killed mid-run and started again on the
//! same port. The worker keeps trying, resumes on its own, and every job completes; an enqueue
//! while the server is down gets a clear "unavailable" error, not a hang.
//!
//! Runs when `redis-server` is on the PATH and `HELIX_TEST_REDIS_URL` is set (the Redis variant
//! of the suite); otherwise prints a note and returns.

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use helix_jobs::{
    EnqueueOptions, JobContext, JobError, JobFailure, JobKind, Jobs, QueueConfig, Registry, Target,
    Worker, WorkerOptions,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

struct Server {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Server {
    fn start(port: u16, dir: &std::path::Path) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = Self {
            child,
            port,
            dir: dir.to_owned(),
        };
        server.wait_up();
        server
    }

    fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        *self = Server::start(self.port, &self.dir.clone());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[derive(Debug, Serialize, Deserialize)]
struct Step {
    n: u32,
}

/// Records every job it ran, after a short pause.
struct Record(Arc<Mutex<Vec<u32>>>);

impl JobKind for Record {
    const NAME: &'static str = "record";
    type Payload = Step;

    async fn run(&self, payload: Step, _ctx: JobContext) -> Result<(), JobFailure> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.0.lock().unwrap().push(payload.n);
        Ok(())
    }
}

async fn eventually(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "{what}: gave up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_resumes_after_a_redis_restart() {
    if std::env::var("HELIX_TEST_REDIS_URL").is_err() || which_redis_server().is_none() {
        eprintln!("note: HELIX_TEST_REDIS_URL unset or no redis-server; skipping the restart test");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = Server::start(free_port(), dir.path());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let backend = helix_jobs::open(Target::Redis {
        url: &url,
        prefix: "",
    })
    .await
    .expect("open");
    let done = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::new();
    registry.register(Record(done.clone()));
    let jobs = Jobs::new(backend.clone(), Arc::new(registry));
    for n in 0..400 {
        let payload = Step { n };
        jobs.enqueue::<Record>(&payload, EnqueueOptions::default())
            .await
            .expect("enqueue");
    }
    let queue = QueueConfig {
        concurrency: 4,
        lease: Duration::from_secs(2),
        ..QueueConfig::new("default")
    };
    let options = WorkerOptions {
        poll: Duration::from_millis(100),
        ..WorkerOptions::default()
    };
    let worker = Worker::new(
        backend.clone(),
        jobs.registry().clone(),
        vec![queue],
        options,
    );
    let stop = CancellationToken::new();
    let running = tokio::spawn(worker.run(stop.clone()));

    eventually("a first hundred jobs", Duration::from_secs(30), || {
        done.lock().unwrap().len() >= 100
    })
    .await;
    server.kill();
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        jobs.enqueue::<Record>(&Step { n: 9999 }, EnqueueOptions::default()),
    )
    .await
    .expect("an enqueue while Redis is down answers, it does not hang");
    assert!(
        matches!(refused, Err(JobError::Unavailable { .. })),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    eventually(
        "every job after the restart",
        Duration::from_secs(60),
        || {
            let seen: HashSet<u32> = done.lock().unwrap().iter().copied().collect();
            seen.len() == 400
        },
    )
    .await;
    stop.cancel();
    running.await.expect("the worker stops");
    let stats = backend.stats().await.expect("stats");
    let default = stats
        .iter()
        .find(|s| s.queue == "default")
        .expect("default");
    assert_eq!((default.available, default.running), (0, 0), "{default:?}");
    assert_eq!(default.completed_total, 400, "{default:?}");
}

fn which_redis_server() -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("redis-server"))
            .find(|p| p.is_file())
    })
}
