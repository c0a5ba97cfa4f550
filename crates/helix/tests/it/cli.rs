//! The `helix` binary as an operator meets it: exit codes, messages for bad input, `helix up` and
//! `helix serve` from start to a clean stop, concurrent migrations, `env` and `matrix`.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use helix::platform::catalog;

use crate::support::bin::{free_ports, helix, run, signal, wait_bounded, wait_healthy};
use crate::support::TestBackends;

fn embedded() -> (TestBackends, BTreeMap<String, String>) {
    let mut backends = TestBackends::new();
    backends.database_url = None;
    backends.redis_url = None;
    let env = backends.env();
    (backends, env)
}

#[test]
fn malformed_manifests_name_file_line_and_column_and_exit_2() {
    let (b, env) = embedded();
    let cases = [
        (
            "syntax.toml",
            "[shared\nJWT_SECRET = \"x\"\n",
            "syntax.toml:1:",
        ),
        (
            "unknown.toml",
            "[helix]\nhost = \"0.0.0.0\"\ncolour = true\n",
            "unknown.toml:3:1",
        ),
        (
            "type.toml",
            "[helix]\nconnect_attempts = \"many\"\n",
            "type.toml:2:",
        ),
    ];
    for (file, text, at) in cases {
        std::fs::write(b.dir.path().join(file), text).expect("write");
        let mut cmd = helix(b.dir.path(), &env);
        cmd.args(["--config", file, "up"]);
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(2), "{file}: {out:?}");
        assert!(
            out.stderr.contains(at),
            "{file}: expected `{at}` in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn unknown_service_lists_the_valid_ones() {
    let (b, env) = embedded();
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["serve", "backend"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(2), "{out:?}");
    for name in catalog::names() {
        assert!(
            out.stderr.contains(name),
            "{name} missing from:\n{}",
            out.stderr
        );
    }
}

#[test]
fn bad_values_name_the_variable_and_what_was_expected() {
    let (b, base) = embedded();
    let cases = [
        ("PORT", "abc", "expected a port number"),
        ("PORT", "70000", "expected a port number"),
        ("HELIX_DB_POOL_SIZE", "0", "from 1 to 1000"),
        ("HELIX_MIGRATE", "perhaps", "true or false"),
        ("HELIX_LOG_FORMAT", "xml", "\"pretty\" or \"json\""),
        ("DATABASE_URL", "mysql://root@127.0.0.1/test", "mysql"),
        ("JWT_SECRET", "too-short", "at least 32 characters"),
        (
            "HELIX_CORS_ORIGINS",
            "https://app.example.com/path",
            "comma-separated origins",
        ),
        (
            "HELIX_RATE_LIMIT_PER_MINUTE",
            "0",
            "a whole number from 1 to",
        ),
        (
            "HELIX_REFRESH_GRACE_SECS",
            "ten",
            "a whole number from 0 to 60",
        ),
    ];
    for (var, value, expected) in cases {
        let mut env = base.clone();
        env.insert("JWT_SECRET".into(), "j".repeat(32));
        env.insert(var.into(), value.into());
        let mut cmd = helix(b.dir.path(), &env);
        cmd.args(["serve", "backend-api"]);
        let out = run(&mut cmd);
        assert_eq!(out.code, Some(2), "{var}={value}: {out:?}");
        assert!(
            out.stderr.contains(var),
            "{var}={value}: variable not named in:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains(expected),
            "{var}={value}: `{expected}` not in:\n{}",
            out.stderr
        );
    }
}

#[test]
fn unreachable_database_is_one_clear_line_without_the_password() {
    let (b, mut env) = embedded();
    env.insert(
        "DATABASE_URL".into(),
        "postgres://app:planted-pw-123@127.0.0.1:1/helix".into(),
    );
    env.insert("JWT_SECRET".into(), "j".repeat(32));
    env.insert("HELIX_CONNECT_ATTEMPTS".into(), "2".into());
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["serve", "backend-api"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "last line: {last}");
    assert!(last.contains("127.0.0.1:1"), "host not named: {last}");
    assert!(
        !out.all().contains("planted-pw-123"),
        "password leaked:\n{}",
        out.all()
    );
    assert!(!out.all().contains("panicked"), "{}", out.all());
}

#[test]
fn unreachable_redis_is_one_clear_line_without_the_password() {
    let (b, mut env) = embedded();
    env.insert(
        "REDIS_URL".into(),
        "redis://:planted-pw-456@127.0.0.1:1/0".into(),
    );
    env.insert("HELIX_CONNECT_ATTEMPTS".into(), "2".into());
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["serve", "dashboard"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(1), "{out:?}");
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("127.0.0.1:1"), "host not named: {last}");
    assert!(
        !out.all().contains("planted-pw-456"),
        "password leaked:\n{}",
        out.all()
    );
}

#[test]
fn matrix_json_lists_every_service_with_its_needs() {
    let (b, env) = embedded();
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["matrix", "--format", "json"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out:?}");
    let matrix: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    let services = matrix["services"].as_array().expect("services");
    let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, catalog::names());
    let needs = |name: &str| {
        let s = services.iter().find(|s| s["name"] == name).expect(name);
        (
            s["postgres"]["needed"].as_bool(),
            s["redis"]["needed"].as_bool(),
        )
    };
    assert_eq!(needs("dashboard"), (Some(false), Some(true)));
    assert_eq!(needs("service-integration"), (Some(false), Some(true)));
    assert_eq!(needs("backend-api"), (Some(true), Some(true)));
    let discord = services
        .iter()
        .find(|s| s["name"] == "discord-bot")
        .expect("discord-bot");
    let token = discord["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .find(|v| v["name"] == "DISCORD_BOT_TOKEN");
    assert_eq!(
        token.map(|t| (t["secret"].as_bool(), t["scoped"].as_bool())),
        Some((Some(true), Some(true)))
    );
}

/// docs/matrix.md is generated; this fails when the code and the document drift apart.
#[test]
fn docs_matrix_is_what_helix_matrix_prints() {
    let (b, env) = embedded();
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["matrix", "--format", "markdown"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out:?}");
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/matrix.md");
    let doc = std::fs::read_to_string(doc_path).expect("docs/matrix.md exists");
    assert!(
        doc == out.stdout,
        "docs/matrix.md is stale: regenerate it with `cargo run -- matrix --format markdown > docs/matrix.md`"
    );
}

#[test]
fn config_default_is_a_valid_manifest() {
    let (b, env) = embedded();
    let mut cmd = helix(b.dir.path(), &env);
    cmd.args(["config", "default"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("[plugins.postgres]"), "{}", out.stdout);
    std::fs::write(b.dir.path().join("helix.toml"), &out.stdout).expect("write");
    let out = run(helix(b.dir.path(), &env).arg("check"));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("0 error(s)"), "{}", out.stdout);
}

#[test]
fn env_hides_secrets_unless_asked() {
    let (b, mut env) = embedded();
    env.insert(
        "JWT_SECRET".into(),
        "planted-jwt-secret-for-env-0123456789".into(),
    );
    env.insert("STRIPE_PUBLISHABLE_KEY".into(), "pk_test_visible".into());
    let out = run(helix(b.dir.path(), &env).args(["env", "backend-api"]));
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        !out.all().contains("planted-jwt-secret-for-env-0123456789"),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains("«hidden»"), "{}", out.stdout);
    assert!(
        out.stdout.contains("pk_test_visible"),
        "non-secrets are shown: {}",
        out.stdout
    );
    let out = run(helix(b.dir.path(), &env).args(["env", "backend-api", "--show-secrets"]));
    assert!(
        out.stdout.contains("planted-jwt-secret-for-env-0123456789"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_lists_every_problem_and_fails() {
    let (b, env) = embedded();
    let manifest = "\
[plugins.postgres]
DATABASE_URL = \"postgres://postgres@127.0.0.1:5432/test\"

[shared]
JWT_SECRET = \"${{nope.JWT_SECRET}}\"
DISCORD_BOT_TOKEN = \"abc\"
";
    std::fs::write(b.dir.path().join("helix.toml"), manifest).expect("write");
    let out = run(helix(b.dir.path(), &env).arg("check"));
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("helix.toml:5:14: JWT_SECRET:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("helix.toml:6:21: DISCORD_BOT_TOKEN:"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("2 error(s)"), "{}", out.stdout);
}

/// The whole platform in one process on the test backends: every HTTP service answers, `check
/// --probe` sees them healthy, SIGTERM stops everything with exit 0, and then the probe fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_every_service_and_stops_on_sigterm() {
    let backends = TestBackends::new();
    let env = backends.env();
    let http: Vec<&str> = catalog::all()
        .iter()
        .filter(|s| s.port.is_some())
        .map(|s| s.name)
        .collect();
    let ports = free_ports(http.len());
    let manifest: String = http
        .iter()
        .zip(&ports)
        .map(|(name, port)| format!("[services.{name}]\nPORT = {port}\n\n"))
        .collect();
    std::fs::write(backends.dir.path().join("helix.toml"), manifest).expect("write");

    let child = helix(backends.dir.path(), &env)
        .arg("up")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helix up starts");
    for port in &ports {
        wait_healthy(&format!("http://127.0.0.1:{port}/health")).await;
    }
    let probe = run(helix(backends.dir.path(), &env).args(["check", "--probe"]));
    assert_eq!(probe.code, Some(0), "{probe:?}");
    for name in &http {
        let row = probe
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default();
        assert!(
            row.contains("✅ healthy"),
            "{name} not healthy:\n{}",
            probe.stdout
        );
    }

    signal(&child, "TERM");
    let out = tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(60)))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for (name, port) in http.iter().zip(&ports) {
        assert!(
            stdout.contains(&format!("http://127.0.0.1:{port}")),
            "{name} missing from the table:\n{stdout}"
        );
    }
    assert!(stderr.contains("all services stopped"), "{stderr}");

    let probe = run(helix(backends.dir.path(), &env).args(["check", "--probe"]));
    assert_eq!(probe.code, Some(1), "{probe:?}");
    assert!(probe.stdout.contains("unreachable"), "{}", probe.stdout);
}

/// `helix serve` reads PORT as a PaaS sets it and stops on Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reads_port_and_stops_on_sigint() {
    let backends = TestBackends::new();
    let mut env = backends.env();
    let port = free_ports(1)[0];
    env.insert("PORT".into(), port.to_string());
    env.insert("HELIX_HOST".into(), "127.0.0.1".into());
    let child = helix(backends.dir.path(), &env)
        .args(["serve", "service-integration"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("helix serve starts");
    let url = format!("http://127.0.0.1:{port}/health");
    wait_healthy(&url).await;
    let body: serde_json::Value = reqwest::get(&url)
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(body["service"], "service-integration");
    signal(&child, "INT");
    let out = tokio::task::spawn_blocking(move || wait_bounded(child, Duration::from_secs(60)))
        .await
        .expect("join");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two `helix migrate` at once on one database: both succeed, each migration is applied once.
#[test]
fn concurrent_migrate_is_safe_and_idempotent() {
    let backends = TestBackends::new();
    let env = backends.env();
    let children: Vec<_> = (0..2)
        .map(|_| {
            helix(backends.dir.path(), &env)
                .arg("migrate")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("helix migrate starts")
        })
        .collect();
    for child in children {
        let out = wait_bounded(child, Duration::from_secs(60));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let status = run(helix(backends.dir.path(), &env).args(["migrate", "--status"]));
    assert_eq!(status.code, Some(0), "{status:?}");
    assert!(status.stdout.contains("foundation"), "{}", status.stdout);
    assert!(!status.stdout.contains("pending"), "{}", status.stdout);
    let again = run(helix(backends.dir.path(), &env).arg("migrate"));
    assert_eq!(again.code, Some(0), "{again:?}");
}

/// docs/openapi/backend-api.json is generated; this fails when the code and the copy drift apart.
#[test]
fn committed_openapi_document_is_current() {
    let doc_path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/openapi/backend-api.json"
    );
    let committed =
        std::fs::read_to_string(doc_path).expect("docs/openapi/backend-api.json exists");
    assert!(
        committed == helix::services::backend_api::openapi::document(),
        "docs/openapi/backend-api.json is stale: regenerate it with `cargo run -- openapi > docs/openapi/backend-api.json`"
    );
}
