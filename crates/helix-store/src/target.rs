//! Database URLs: which engine a URL names, the connect options it yields, and how to describe it
//! without its secrets.
//!
//! Every error built here is password-free: `url` parse errors never echo their input, and any
//! text that came from the driver is passed through [`redact`] with the URL's secrets.

use std::path::PathBuf;

use sqlx::postgres::PgConnectOptions;
use sqlx::ConnectOptions;

use crate::{Backend, StoreError};

/// A parsed database URL.
pub(crate) enum Target {
    Postgres(Box<PgTarget>),
    Sqlite(PathBuf),
}

/// A PostgreSQL URL turned into connect options plus what may be shown of it.
pub(crate) struct PgTarget {
    pub(crate) connect: PgConnectOptions,
    /// `host:port/database`, for logs and errors.
    pub(crate) location: String,
    /// Strings that must never appear in a log or an error (the password, raw and decoded).
    pub(crate) secrets: Vec<String>,
}

impl Target {
    pub(crate) fn backend(&self) -> Backend {
        match self {
            Target::Postgres(_) => Backend::Postgres,
            Target::Sqlite(_) => Backend::Sqlite,
        }
    }

    /// `postgres host:port/db` or `sqlite <path>`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Postgres(pg) => format!("postgres {}", pg.location),
            Target::Sqlite(path) => format!("sqlite {}", path.display()),
        }
    }
}

/// Parse a database URL; the scheme picks the engine.
pub(crate) fn parse(url: &str) -> Result<Target, StoreError> {
    let scheme = scheme_of(url)?;
    let rest = &url[scheme.len() + 1..];
    match scheme.to_ascii_lowercase().as_str() {
        "postgres" | "postgresql" => parse_postgres(url).map(|pg| Target::Postgres(Box::new(pg))),
        "sqlite" => parse_sqlite(rest).map(Target::Sqlite),
        _ => Err(StoreError::UnsupportedScheme { scheme }),
    }
}

fn scheme_of(url: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::InvalidUrl {
        reason: "missing or malformed scheme (expected postgres://… or sqlite://…)".to_string(),
    };
    let (scheme, _) = url.split_once(':').ok_or_else(invalid)?;
    let mut chars = scheme.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if well_formed {
        Ok(scheme.to_string())
    } else {
        Err(invalid())
    }
}

fn parse_postgres(url: &str) -> Result<PgTarget, StoreError> {
    let parsed = url::Url::parse(url).map_err(|e| StoreError::InvalidUrl {
        reason: e.to_string(),
    })?;
    let secrets = secrets_of(&parsed);
    let connect = PgConnectOptions::from_url(&parsed).map_err(|e| StoreError::InvalidUrl {
        reason: redact(&e.to_string(), &secrets),
    })?;
    let mut location = format!("{}:{}", connect.get_host(), connect.get_port());
    if let Some(db) = connect.get_database() {
        location = format!("{location}/{db}");
    }
    Ok(PgTarget {
        connect,
        location,
        secrets,
    })
}

/// The password of a URL in every spelling a message could contain.
fn secrets_of(url: &url::Url) -> Vec<String> {
    let from_query = url
        .query_pairs()
        .filter(|(k, _)| k == "password")
        .map(|(_, v)| v.into_owned());
    let raw = url.password().map(str::to_string);
    // Percent-decode through form_urlencoded; a literal `+` must stay a `+`, not a space.
    let decoded = raw.as_deref().and_then(|p| {
        let field = format!("p={}", p.replace('+', "%2B"));
        url::form_urlencoded::parse(field.as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    });
    raw.into_iter()
        .chain(decoded)
        .chain(from_query)
        .filter(|s| !s.is_empty())
        .collect()
}

/// `sqlite://path`, `sqlite:path`; `sqlite:///abs/path` is an absolute path.
fn parse_sqlite(rest: &str) -> Result<PathBuf, StoreError> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    let invalid = |reason: &str| {
        Err(StoreError::InvalidUrl {
            reason: reason.to_string(),
        })
    };
    if path.contains('?') {
        return invalid("query parameters are not supported in sqlite URLs");
    }
    if path.is_empty() {
        return invalid("sqlite URL without a file path (expected sqlite://path/to/helix.db)");
    }
    if path.starts_with(":memory:") {
        return invalid("in-memory SQLite is not supported: give a file path");
    }
    Ok(PathBuf::from(path))
}

/// Replace every secret in a driver message by `***`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    secrets.iter().fold(text.to_string(), |acc, secret| {
        acc.replace(secret.as_str(), "***")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe(url: &str) -> String {
        parse(url).map(|t| t.describe()).unwrap()
    }

    #[test]
    fn postgres_description_has_host_port_db_only() {
        let d = describe("postgres://helix:s3cret%21@db.internal:6432/app?sslmode=disable");
        assert_eq!(d, "postgres db.internal:6432/app");
        assert_eq!(describe("postgresql://h/x"), "postgres h:5432/x");
    }

    #[test]
    fn sqlite_forms_are_paths() {
        assert_eq!(
            describe("sqlite://.helix/helix.db"),
            "sqlite .helix/helix.db"
        );
        assert_eq!(describe("sqlite:data.db"), "sqlite data.db");
        assert_eq!(describe("sqlite:///var/lib/h.db"), "sqlite /var/lib/h.db");
        assert_eq!(describe("SQLITE://x.db"), "sqlite x.db");
    }

    #[test]
    fn bad_urls_are_rejected_with_clear_errors() {
        let err = |url| parse(url).err().unwrap();
        assert!(
            matches!(err("mysql://x"), StoreError::UnsupportedScheme { scheme } if scheme == "mysql")
        );
        assert!(matches!(
            err("no scheme here"),
            StoreError::InvalidUrl { .. }
        ));
        assert!(matches!(
            err("sqlite::memory:"),
            StoreError::InvalidUrl { .. }
        ));
        assert!(matches!(err("sqlite://"), StoreError::InvalidUrl { .. }));
        assert!(matches!(
            err("sqlite://x.db?mode=rwc"),
            StoreError::InvalidUrl { .. }
        ));
        let bad_port = err("postgres://u:hunter2@h:99999999/db").to_string();
        assert!(!bad_port.contains("hunter2"), "{bad_port}");
    }

    #[test]
    fn secrets_are_found_and_redacted() {
        let url = url::Url::parse("postgres://u:p%40ss@h/db?password=other").unwrap();
        let secrets = secrets_of(&url);
        assert_eq!(
            redact("a p%40ss b p@ss c other", &secrets),
            "a *** b *** c ***"
        );
    }
}
