//! Configuration: the only place that reads environment variables and files.
//!
//! Layers, lowest first: built-in defaults → `helix.toml` → the process environment (`HELIX_*` and
//! the platform's own variables) → command-line flags. [`Config::load`] reads everything once;
//! process settings are validated into typed [`Settings`] here (a bad value is a [`ConfigError`]
//! naming the variable and what was expected); per-service variables are resolved by
//! [`resolve`] and validated by `platform::check`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod generated;
pub mod manifest;
pub mod problem;
pub mod resolve;
mod typed;

pub use manifest::{Manifest, ManifestError};
pub use problem::{Problem, Severity};
pub use typed::{parse_limit, DatabaseTarget, ServiceConfig, ServiceEnv};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Process-wide settings, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// Listening address; `None` lets the command pick (127.0.0.1 for `up`, 0.0.0.0 for `serve`).
    pub host: Option<String>,
    pub log_format: LogFormat,
    /// A `tracing` filter (`RUST_LOG` syntax) from `RUST_LOG`; `None` keeps the default.
    pub log_filter: Option<String>,
    pub migrate_on_start: bool,
    pub db_pool_size: u32,
    /// PostgreSQL schema to keep Helix's tables in (created if missing); `None`: the default
    /// `search_path`.
    pub db_schema: Option<String>,
    /// Prefix for every bus channel and key, so deployments can share one Redis.
    pub bus_prefix: String,
    pub connect_attempts: u32,
    pub shutdown_timeout: Duration,
}

/// A process setting or manifest that cannot be used. Exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error("{name}: expected {expected}, got {got:?}")]
    Invalid {
        name: String,
        expected: String,
        got: String,
    },
    #[error("the configuration has {} error(s):\n{}", .0.len(), render(.0))]
    Problems(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Everything read from outside the process, once.
#[derive(Debug, Clone)]
pub struct Config {
    pub manifest: Manifest,
    pub env: BTreeMap<String, String>,
    pub settings: Settings,
}

/// Where `helix.toml` is looked for when neither `--config` nor `HELIX_CONFIG` names one.
pub const DEFAULT_MANIFEST_PATH: &str = "helix.toml";

impl Config {
    /// Read the process environment and the manifest. `manifest_path` comes from `--config`;
    /// `log_format` from `--log-format`.
    pub fn load(
        manifest_path: Option<&Path>,
        log_format: Option<LogFormat>,
    ) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        Self::from_parts(env, manifest_path, log_format)
    }

    /// As [`Config::load`], with the environment given (tests).
    pub fn from_parts(
        env: BTreeMap<String, String>,
        manifest_path: Option<&Path>,
        log_format: Option<LogFormat>,
    ) -> Result<Self, ConfigError> {
        let manifest = match manifest_path
            .map(Path::to_owned)
            .or_else(|| env.get("HELIX_CONFIG").map(PathBuf::from))
        {
            Some(path) => Manifest::load(&path)?,
            None if Path::new(DEFAULT_MANIFEST_PATH).exists() => {
                Manifest::load(Path::new(DEFAULT_MANIFEST_PATH))?
            }
            None => Manifest::default(),
        };
        let settings = settings(&manifest, &env, log_format)?;
        Ok(Self {
            manifest,
            env,
            settings,
        })
    }
}

fn settings(
    manifest: &Manifest,
    env: &BTreeMap<String, String>,
    log_format: Option<LogFormat>,
) -> Result<Settings, ConfigError> {
    let file = &manifest.helix;
    let layer = Layer { env };
    Ok(Settings {
        data_dir: PathBuf::from(
            layer
                .text("HELIX_DATA_DIR")
                .or(file.data_dir.clone())
                .unwrap_or_else(|| ".helix".into()),
        ),
        host: layer.text("HELIX_HOST").or(file.host.clone()),
        log_format: match log_format {
            Some(f) => f,
            None => layer
                .parse(
                    "HELIX_LOG_FORMAT",
                    "\"pretty\" or \"json\"",
                    parse_log_format,
                )?
                .or(file
                    .log_format
                    .as_deref()
                    .map(|s| {
                        parse_log_format(s).ok_or_else(|| {
                            invalid("[helix] log_format", "\"pretty\" or \"json\"", s)
                        })
                    })
                    .transpose()?)
                .unwrap_or(LogFormat::Pretty),
        },
        log_filter: layer.text("RUST_LOG"),
        migrate_on_start: layer
            .parse("HELIX_MIGRATE", "true or false", parse_bool)?
            .or(file.migrate_on_start)
            .unwrap_or(true),
        db_pool_size: in_range(
            layer
                .parse("HELIX_DB_POOL_SIZE", "a whole number from 1 to 1000", |s| {
                    s.parse().ok()
                })?
                .or(file.db_pool_size),
            "HELIX_DB_POOL_SIZE",
            1,
            1000,
        )?
        .unwrap_or(10),
        db_schema: layer.text("HELIX_DB_SCHEMA").or(file.db_schema.clone()),
        bus_prefix: layer
            .text("HELIX_BUS_PREFIX")
            .or(file.bus_prefix.clone())
            .unwrap_or_default(),
        connect_attempts: in_range(
            layer
                .parse(
                    "HELIX_CONNECT_ATTEMPTS",
                    "a whole number from 1 to 100",
                    |s| s.parse().ok(),
                )?
                .or(file.connect_attempts),
            "HELIX_CONNECT_ATTEMPTS",
            1,
            100,
        )?
        .unwrap_or(5),
        shutdown_timeout: Duration::from_secs(
            layer
                .parse(
                    "HELIX_SHUTDOWN_TIMEOUT_SECS",
                    "a whole number of seconds",
                    |s| s.parse().ok(),
                )?
                .or(file.shutdown_timeout_secs)
                .unwrap_or(10),
        ),
    })
}

/// Reads one `HELIX_*` variable and parses it, naming the variable on failure.
struct Layer<'a> {
    env: &'a BTreeMap<String, String>,
}

impl Layer<'_> {
    fn text(&self, name: &str) -> Option<String> {
        self.env.get(name).filter(|v| !v.is_empty()).cloned()
    }

    fn parse<T>(
        &self,
        name: &str,
        expected: &str,
        f: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ConfigError> {
        self.text(name)
            .map(|raw| f(raw.trim()).ok_or_else(|| invalid(name, expected, &raw)))
            .transpose()
    }
}

fn in_range(value: Option<u32>, name: &str, lo: u32, hi: u32) -> Result<Option<u32>, ConfigError> {
    match value {
        Some(v) if !(lo..=hi).contains(&v) => Err(invalid(
            name,
            &format!("a whole number from {lo} to {hi}"),
            &v.to_string(),
        )),
        other => Ok(other),
    }
}

fn invalid(name: &str, expected: &str, got: &str) -> ConfigError {
    ConfigError::Invalid {
        name: name.to_owned(),
        expected: expected.to_owned(),
        got: got.to_owned(),
    }
}

fn parse_log_format(s: &str) -> Option<LogFormat> {
    match s.to_ascii_lowercase().as_str() {
        "pretty" => Some(LogFormat::Pretty),
        "json" => Some(LogFormat::Json),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}
