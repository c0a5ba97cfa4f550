//! No secret reaches a log line: planted values are grepped for in captured logs, both from the
//! real binary at the most verbose level and from events that carry a secret on purpose.

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use helix::config::LogFormat;
use helix::shared::redact;
use tracing_subscriber::fmt::MakeWriter;

use crate::support::bin::{free_ports, helix, signal, wait_bounded, wait_healthy};
use crate::support::TestBackends;

const PLANTED_JWT: &str = "planted-jwt-secret-7f3a9c-0123456789";
const PLANTED_STRIPE: &str = "sk_test_planted_stripe_51x";
const PLANTED_BEARER: &str = "planted.bearer.token";
const PLANTED_DB_PW: &str = "planted-db-password-3e1";

/// Give a PostgreSQL URL a password. The test server trusts local connections, so it still works,
/// and the password is one more planted secret.
fn with_password(url: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a URL");
    if parsed.password().is_none() {
        parsed
            .set_password(Some(PLANTED_DB_PW))
            .expect("a password can be set");
    }
    parsed.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_logs_no_secret_even_at_trace_level() {
    let backends = TestBackends::new();
    let mut env = backends.env();
    if let Some(url) = env.get("DATABASE_URL").map(|u| with_password(u)) {
        env.insert("DATABASE_URL".into(), url);
    }
    let port = free_ports(1)[0];
    env.insert("PORT".into(), port.to_string());
    env.insert("HELIX_HOST".into(), "127.0.0.1".into());
    env.insert("JWT_SECRET".into(), PLANTED_JWT.into());
    env.insert("STRIPE_SECRET_KEY".into(), PLANTED_STRIPE.into());
    env.insert("RUST_LOG".into(), "trace".into());
    let child = helix(backends.dir.path(), &env)
        .args(["--log-format", "json", "serve", "backend-api"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helix serve starts");
    wait_healthy(&format!("http://127.0.0.1:{port}/health")).await;
    let client = reqwest::Client::new();
    for path in [
        "/health",
        "/api/nothing-here",
        &format!("/x?secret={PLANTED_JWT}"),
    ] {
        let response = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .header("Authorization", format!("Bearer {PLANTED_BEARER}"))
            .header("X-API-Key", PLANTED_STRIPE)
            .send()
            .await
            .expect("request");
        assert!(
            response.status().as_u16() < 500,
            "{path}: {}",
            response.status()
        );
    }
    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(60)))
        .await
        .expect("join");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{logs}");

    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "request" && l["status"] == 404),
        "the requests were logged: {logs}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "DEBUG" || l["level"] == "TRACE"),
        "RUST_LOG=trace was honoured: {logs}"
    );
    for planted in [PLANTED_JWT, PLANTED_STRIPE, PLANTED_BEARER, PLANTED_DB_PW] {
        assert!(
            !logs.contains(planted),
            "{planted} leaked into the logs:\n{logs}"
        );
    }
}

/// A sink shared between the subscriber and the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("capture lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

/// Events that carry secrets on purpose (a careless field, an error echoing a URL, a header dump)
/// come out of the real logging stack scrubbed.
#[test]
fn the_redaction_layer_scrubs_secrets_from_every_event() {
    let capture = Capture::default();
    helix::telemetry::init_with(LogFormat::Json, Some("info"), capture.clone());
    redact::register(PLANTED_JWT);
    redact::register(&format!(
        "postgres://app:{PLANTED_DB_PW}@db.internal:5432/helix"
    ));

    tracing::info!(jwt_secret = PLANTED_JWT, "careless field");
    tracing::warn!(error = %format!("connect to redis://:{PLANTED_DB_PW}@cache:6379 failed"), "echoed URL");
    tracing::error!(headers = ?[("authorization", format!("Bearer {PLANTED_BEARER}"))], "header dump");
    tracing::info!("a password in a message: {PLANTED_DB_PW} and an unregistered URL postgres://u:other-pw-123@h/db");

    let logs = String::from_utf8(capture.0.lock().expect("lock").clone()).expect("UTF-8");
    for fragment in [
        "careless field",
        "echoed URL",
        "header dump",
        "a password in a message",
    ] {
        assert!(
            logs.contains(fragment),
            "event `{fragment}` missing from:\n{logs}"
        );
    }
    for planted in [PLANTED_JWT, PLANTED_DB_PW, PLANTED_BEARER, "other-pw-123"] {
        assert!(!logs.contains(planted), "{planted} leaked:\n{logs}");
    }
    assert!(
        logs.contains("db.internal") || logs.contains("cache:6379"),
        "hosts stay visible:\n{logs}"
    );
    assert!(logs.contains(redact::HIDDEN), "{logs}");
}
