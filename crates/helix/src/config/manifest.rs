//! `helix.toml`: the deployment manifest, parsed with the position of every value.
//!
//! The manifest describes a deployment the way the platform already thinks of it: plugins
//! (`postgres`, `redis`) that provide variables, `[shared]` variables, per-service variables under
//! `[services.<name>]`, and process settings under `[helix]`. Values may reference others with
//! `${{postgres.DATABASE_URL}}`, `${{shared.JWT_SECRET}}` or `${{backend-api.PORT}}`; resolving them
//! is `resolve.rs`'s job. Syntax errors, unknown keys and wrong types are reported here with file,
//! line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// The manifest's built-in, commented default (`helix config default`).
pub const DEFAULT_MANIFEST: &str = include_str!("default.toml");

/// Plugins the manifest may declare, and the variables each provides.
pub const PLUGINS: &[(&str, &[&str])] =
    &[("postgres", &["DATABASE_URL"]), ("redis", &["REDIS_URL"])];

/// A position in the manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// One variable's value as written, with where it was written.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: String,
    pub at: Location,
}

/// A table of variables (`[shared]`, `[plugins.x]`, `[services.x]`).
pub type Vars = BTreeMap<String, Entry>;

/// A parsed manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub path: Option<PathBuf>,
    pub helix: HelixSection,
    pub plugins: BTreeMap<String, (Location, Vars)>,
    pub shared: Vars,
    pub services: BTreeMap<String, (Location, Vars)>,
}

/// `[helix]`: process settings. Every field may also come from a `HELIX_*` variable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelixSection {
    pub data_dir: Option<String>,
    pub host: Option<String>,
    pub log_format: Option<String>,
    pub migrate_on_start: Option<bool>,
    pub db_pool_size: Option<u32>,
    pub db_schema: Option<String>,
    pub bus_prefix: Option<String>,
    pub connect_attempts: Option<u32>,
    pub shutdown_timeout_secs: Option<u64>,
}

/// A manifest that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read: {reason}", path.display())]
    Read { path: PathBuf, reason: String },
    #[error("{at}: {message}")]
    Parse { at: Location, message: String },
}

/// A variable value may be written as a string, an integer or a boolean.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawValue {
    Text(String),
    Integer(i64),
    Bool(bool),
}

type RawVars = BTreeMap<String, Spanned<RawValue>>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    helix: Option<HelixSection>,
    #[serde(default)]
    plugins: BTreeMap<String, Spanned<RawVars>>,
    #[serde(default)]
    shared: RawVars,
    #[serde(default)]
    services: BTreeMap<String, Spanned<RawVars>>,
}

impl Manifest {
    /// Read and parse a manifest file.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path)
    }

    /// Parse manifest text; `path` is used in positions only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ManifestError> {
        let lines = LineIndex::new(text, path);
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            at: lines.locate(e.span().map_or(0, |s| s.start)),
            message: e.message().trim().to_owned(),
        })?;
        let vars = |table: RawVars| -> Vars {
            table
                .into_iter()
                .map(|(k, v)| {
                    let at = lines.locate(v.span().start);
                    let value = match v.into_inner() {
                        RawValue::Text(s) => s,
                        RawValue::Integer(i) => i.to_string(),
                        RawValue::Bool(b) => b.to_string(),
                    };
                    (k, Entry { value, at })
                })
                .collect()
        };
        let tables = |map: BTreeMap<String, Spanned<RawVars>>, prefix: &str| {
            map.into_iter()
                .map(|(name, t)| {
                    let at = lines.header(&format!("{prefix}.{name}"), t.span().start);
                    (name, (at, vars(t.into_inner())))
                })
                .collect::<BTreeMap<_, _>>()
        };
        Ok(Manifest {
            path: Some(path.to_owned()),
            helix: raw.helix.unwrap_or_default(),
            plugins: tables(raw.plugins, "plugins"),
            shared: vars(raw.shared),
            services: tables(raw.services, "services"),
        })
    }

    /// Whether the manifest declares a plugin.
    pub fn has_plugin(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }
}

/// Turns byte offsets into 1-based lines and columns.
struct LineIndex<'a> {
    text: &'a str,
    path: &'a Path,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str, path: &'a Path) -> Self {
        Self { text, path }
    }

    fn locate(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
        Location {
            file: self.path.to_owned(),
            line,
            column,
        }
    }

    /// Where a table's header (`[services.x]`) is written; falls back to the table's span.
    fn header(&self, dotted: &str, fallback: usize) -> Location {
        let found = self.text.match_indices(dotted).find_map(|(i, _)| {
            let line_start = self.text[..i].rfind('\n').map_or(0, |n| n + 1);
            self.text[line_start..i]
                .trim_start()
                .starts_with('[')
                .then_some(line_start)
        });
        self.locate(found.unwrap_or(fallback))
    }
}
