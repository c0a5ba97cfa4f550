//! Typed views of a service's resolved variables: the values the runtime uses.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::problem::Problem;
use super::resolve::{Resolved, Source};
use crate::platform::catalog::{Kind, ServiceSpec, DATABASE_URL, JWT_SECRET, PORT, REDIS_URL};
use crate::shared::redact;

/// One service's resolved environment.
#[derive(Debug, Clone)]
pub struct ServiceEnv {
    pub spec: &'static ServiceSpec,
    pub vars: Vec<Resolved>,
}

impl ServiceEnv {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.resolved(name).and_then(|r| r.value.as_deref())
    }

    pub fn resolved(&self, name: &str) -> Option<&Resolved> {
        self.vars.iter().find(|r| r.spec.name == name)
    }

    /// A whole-number variable (declared with `VarSpec::integer`, so validated at start).
    pub fn integer(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| v.trim().parse().ok())
    }

    /// A hex key (declared with `VarSpec::hex_key`, so validated at start): `None` when unset.
    pub fn hex_key(&self, name: &str, bytes: usize) -> Option<Vec<u8>> {
        self.get(name).and_then(|v| parse_hex_key(v, bytes))
    }

    /// An allowance (declared with `VarSpec::limit`, so validated at start): `None` when it is
    /// `unlimited` or unset.
    pub fn limit(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(parse_limit).flatten()
    }

    /// A list of origins (declared with `VarSpec::origins`, so validated at start).
    pub fn origins(&self, name: &str) -> Vec<String> {
        self.get(name).and_then(parse_origins).unwrap_or_default()
    }

    /// Every secret value, so the log redaction layer can hide them.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.vars
            .iter()
            .filter(|r| r.spec.secret)
            .filter_map(|r| r.value.as_deref())
    }
}

/// Where a service's database is.
#[derive(Debug, Clone)]
pub enum DatabaseTarget {
    /// The embedded SQLite file under the data directory.
    Embedded(SecretString),
    Url(SecretString),
}

impl DatabaseTarget {
    pub fn url(&self) -> &str {
        match self {
            DatabaseTarget::Embedded(u) | DatabaseTarget::Url(u) => u.expose_secret(),
        }
    }
}

/// The typed values of a service's implicit variables.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub port: Option<u16>,
    /// `None` when the service does not need a database.
    pub database: Option<DatabaseTarget>,
    /// `None` for the in-process bus (or when the service needs no bus).
    pub redis_url: Option<SecretString>,
    /// `None` when the service does not read JWT_SECRET.
    pub jwt_secret: Option<SecretString>,
}

/// HS256 needs a key at least as long as its hash (256 bits); shorter secrets are guessable.
pub const MIN_JWT_SECRET_LEN: usize = 32;

impl ServiceConfig {
    /// Validate PORT, DATABASE_URL and REDIS_URL; every bad value becomes a located problem.
    pub fn from_env(env: &ServiceEnv, data_dir: &Path, problems: &mut Vec<Problem>) -> Self {
        let port = env.resolved(PORT).and_then(|r| {
            let raw = r.value.as_deref()?;
            check(
                env,
                r,
                problems,
                parse_port(raw),
                "a port number from 1 to 65535",
            )
        });
        let database = env
            .spec
            .postgres
            .is_needed()
            .then(|| database(env, data_dir, problems))
            .flatten();
        let redis_url = env.resolved(REDIS_URL).and_then(|r| {
            let raw = r.value.as_deref()?;
            let ok = matches!(scheme(raw), Some("redis" | "rediss"))
                .then(|| SecretString::from(raw.to_owned()));
            check(env, r, problems, ok, "a redis:// or rediss:// URL")
        });
        for r in env.vars.iter().filter(|r| r.value.is_some()) {
            let raw = r.value.as_deref().unwrap_or_default();
            match r.spec.kind {
                Kind::Text => {}
                Kind::Integer { min, max } => {
                    let ok = raw
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|n| (min..=max).contains(n));
                    check(
                        env,
                        r,
                        problems,
                        ok,
                        &format!("a whole number from {min} to {max}"),
                    );
                }
                Kind::Limit { min, max } => {
                    let ok =
                        parse_limit(raw).filter(|n| n.is_none_or(|n| (min..=max).contains(&n)));
                    check(
                        env,
                        r,
                        problems,
                        ok,
                        &format!("a whole number from {min} to {max}, or \"unlimited\""),
                    );
                }
                Kind::OneOf { values } => {
                    let ok = values.contains(&raw.trim()).then_some(());
                    check(
                        env,
                        r,
                        problems,
                        ok,
                        &format!("one of {}", values.join(", ")),
                    );
                }
                Kind::HexKey { bytes } => {
                    let ok = parse_hex_key(raw, bytes);
                    check(
                        env,
                        r,
                        problems,
                        ok,
                        &format!("{bytes} bytes in hex ({} hex digits)", 2 * bytes),
                    );
                }
                Kind::Origins => {
                    let ok = parse_origins(raw);
                    check(
                        env,
                        r,
                        problems,
                        ok,
                        "comma-separated origins like https://app.example.com",
                    );
                }
            }
        }
        let jwt_secret = env.resolved(JWT_SECRET).and_then(|r| {
            let raw = r.value.as_deref()?;
            let ok = (raw.len() >= MIN_JWT_SECRET_LEN).then(|| SecretString::from(raw.to_owned()));
            check(
                env,
                r,
                problems,
                ok,
                "at least 32 characters (try `openssl rand -hex 32`)",
            )
        });
        Self {
            port,
            database,
            redis_url,
            jwt_secret,
        }
    }
}

fn database(
    env: &ServiceEnv,
    data_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<DatabaseTarget> {
    let Some(r) = env.resolved(DATABASE_URL).filter(|r| r.value.is_some()) else {
        let path = data_dir.join("helix.db");
        return Some(DatabaseTarget::Embedded(
            format!("sqlite://{}", path.display()).into(),
        ));
    };
    let raw = r.value.as_deref().unwrap_or_default();
    let ok = matches!(scheme(raw), Some("postgres" | "postgresql" | "sqlite"))
        .then(|| DatabaseTarget::Url(raw.to_owned().into()));
    check(
        env,
        r,
        problems,
        ok,
        "a postgres://, postgresql:// or sqlite:// URL",
    )
}

fn check<T>(
    env: &ServiceEnv,
    r: &Resolved,
    problems: &mut Vec<Problem>,
    parsed: Option<T>,
    expected: &str,
) -> Option<T> {
    if parsed.is_none() {
        let shown = if r.spec.secret {
            redact::url(r.value.as_deref().unwrap_or_default())
        } else {
            r.value.clone().unwrap_or_default()
        };
        let at = match &r.source {
            Source::Service(at) | Source::Shared(at) => Some(at.clone()),
            _ => None,
        };
        problems.push(Problem::error(
            Some(env.spec.name),
            Some(r.spec.name),
            at,
            format!(
                "expected {expected}, got {shown:?} (from {})",
                r.source.describe()
            ),
        ));
    }
    parsed
}

fn parse_port(raw: &str) -> Option<u16> {
    raw.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

fn scheme(url: &str) -> Option<&str> {
    url.split_once("://")
        .map(|(s, _)| s)
        .or_else(|| url.split_once(':').map(|(s, _)| s))
}

/// `unlimited` → `Some(None)`, a whole number → `Some(Some(n))`, anything else → `None`.
pub fn parse_limit(raw: &str) -> Option<Option<i64>> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("unlimited") {
        return Some(None);
    }
    raw.parse().ok().map(Some)
}

/// The bytes of a hex key of exactly `bytes` bytes (surrounding blanks ignored); `None` otherwise.
pub fn parse_hex_key(raw: &str, bytes: usize) -> Option<Vec<u8>> {
    hex::decode(raw.trim())
        .ok()
        .filter(|key| key.len() == bytes)
}

/// `https://a.example.com, http://localhost:3000` → each origin as browsers send it (no path, no
/// trailing slash). `None` when any entry is not an origin.
pub fn parse_origins(raw: &str) -> Option<Vec<String>> {
    raw.split(',')
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .map(|o| {
            let url = url::Url::parse(o).ok()?;
            let plain = matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.path() == "/"
                && url.query().is_none()
                && url.username().is_empty();
            plain.then(|| url.origin().ascii_serialization())
        })
        .collect()
}
