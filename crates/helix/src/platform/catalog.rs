//! The service catalog: what each service of the platform declares in code.
//!
//! Every service states its default port, whether it needs PostgreSQL and Redis and why, and
//! every variable it reads. The connection matrix (`helix matrix`), the deployment checks
//! (`helix check`), environment rendering (`helix env`) and the runtime state a service receives
//! are all derived from these declarations, so they cannot drift apart.

use serde::Serialize;

/// Whether a service uses a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Need {
    /// The service cannot run without it.
    Yes,
    /// The service never opens it.
    No,
}

impl Need {
    pub fn is_needed(self) -> bool {
        self == Need::Yes
    }
}

/// Where a variable's fallback value comes from when nothing sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum Fallback {
    /// No fallback: unset means unset.
    None,
    /// A literal, which may contain `${{…}}` references.
    Value(&'static str),
    /// The service's default port from the platform.
    DefaultPort,
    /// Generated once and kept under the data directory; allowed only for an embedded
    /// (single-machine, SQLite) deployment.
    Generated,
}

/// One variable a service reads.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct VarSpec {
    pub name: &'static str,
    pub required: bool,
    pub secret: bool,
    /// Set on this service alone: setting it globally or on another service is an error.
    pub scoped: bool,
    pub fallback: Fallback,
    pub about: &'static str,
    /// What shape the value must have, checked at start.
    pub kind: Kind,
}

/// The shape of a variable's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Kind {
    /// Any text.
    Text,
    /// A whole number from `min` to `max`.
    Integer { min: i64, max: i64 },
    /// A comma-separated list of web origins (`https://app.example.com`).
    Origins,
    /// An allowance: a whole number from `min` to `max`, or `unlimited`.
    Limit { min: i64, max: i64 },
    /// One of a few words.
    OneOf { values: &'static [&'static str] },
    /// A key of exactly `bytes` bytes, written in hex (`2 × bytes` hex digits).
    HexKey { bytes: usize },
}

impl VarSpec {
    pub const fn optional(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            required: false,
            secret: false,
            scoped: false,
            fallback: Fallback::None,
            about,
            kind: Kind::Text,
        }
    }

    /// The value must be a whole number from `min` to `max`.
    pub const fn integer(self, min: i64, max: i64) -> Self {
        Self {
            kind: Kind::Integer { min, max },
            ..self
        }
    }

    /// The value must be a whole number from `min` to `max`, or `unlimited`.
    pub const fn limit(self, min: i64, max: i64) -> Self {
        Self {
            kind: Kind::Limit { min, max },
            ..self
        }
    }

    /// The value must be one of `values`.
    pub const fn one_of(self, values: &'static [&'static str]) -> Self {
        Self {
            kind: Kind::OneOf { values },
            ..self
        }
    }

    /// The value must be a key of `bytes` bytes in hex.
    pub const fn hex_key(self, bytes: usize) -> Self {
        Self {
            kind: Kind::HexKey { bytes },
            ..self
        }
    }

    /// The value must be a comma-separated list of web origins.
    pub const fn origins(self) -> Self {
        Self {
            kind: Kind::Origins,
            ..self
        }
    }

    pub const fn required(name: &'static str, about: &'static str) -> Self {
        Self {
            required: true,
            ..Self::optional(name, about)
        }
    }

    pub const fn secret(self) -> Self {
        Self {
            secret: true,
            ..self
        }
    }

    pub const fn scoped(self) -> Self {
        Self {
            scoped: true,
            ..self
        }
    }

    pub const fn fallback(self, value: &'static str) -> Self {
        Self {
            fallback: Fallback::Value(value),
            ..self
        }
    }

    pub const fn generated(self) -> Self {
        Self {
            fallback: Fallback::Generated,
            ..self
        }
    }
}

/// Everything a service declares.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServiceSpec {
    pub name: &'static str,
    /// Default listening port; `None` for services without HTTP (worker, beat).
    pub port: Option<u16>,
    pub postgres: Need,
    pub redis: Need,
    /// One line: what the service is for.
    pub about: &'static str,
    /// One line: why it needs (or does not need) PostgreSQL.
    pub postgres_why: &'static str,
    /// One line: why it needs (or does not need) Redis.
    pub redis_why: &'static str,
    /// Variables beyond the implicit `PORT`, `DATABASE_URL` and `REDIS_URL`.
    pub vars: &'static [VarSpec],
    /// Whether the HTTP surface beyond `/health` and `/metrics` is built yet.
    pub api_ready: bool,
}

pub const PORT: &str = "PORT";
pub const DATABASE_URL: &str = "DATABASE_URL";
pub const REDIS_URL: &str = "REDIS_URL";
pub const JWT_SECRET: &str = "JWT_SECRET";

const PORT_VAR: VarSpec = VarSpec {
    fallback: Fallback::DefaultPort,
    ..VarSpec::optional(PORT, "HTTP port, as a PaaS sets it")
};
const DATABASE_VAR: VarSpec = VarSpec::optional(
    DATABASE_URL,
    "postgres:// or sqlite:// URL; unset: the embedded SQLite file",
)
.secret();
const REDIS_VAR: VarSpec =
    VarSpec::optional(REDIS_URL, "redis:// URL; unset: the in-process bus").secret();

impl ServiceSpec {
    /// Every variable the service reads: implicit ones first, then its own.
    pub fn variables(&self) -> Vec<VarSpec> {
        let mut out = Vec::with_capacity(self.vars.len() + 3);
        if self.port.is_some() {
            out.push(PORT_VAR);
        }
        if self.postgres.is_needed() {
            out.push(DATABASE_VAR);
        }
        if self.redis.is_needed() {
            out.push(REDIS_VAR);
        }
        out.extend_from_slice(self.vars);
        out
    }

    /// The declaration of one variable, if the service reads it.
    pub fn variable(&self, name: &str) -> Option<VarSpec> {
        self.variables().into_iter().find(|v| v.name == name)
    }
}

/// Every service of the platform, in the order tables print them.
pub fn all() -> &'static [ServiceSpec] {
    crate::services::CATALOG
}

/// Look a service up by its platform name.
pub fn find(name: &str) -> Option<&'static ServiceSpec> {
    all().iter().find(|s| s.name == name)
}

/// The valid service names, for error messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name).collect()
}

/// Every variable name that some service reads.
pub fn is_read_by_any(var: &str) -> bool {
    all().iter().any(|s| s.variable(var).is_some())
}

/// The service a scoped variable belongs to, if it is scoped.
pub fn scope_of(var: &str) -> Option<&'static str> {
    all().iter().find_map(|s| {
        s.vars
            .iter()
            .find(|v| v.name == var && v.scoped)
            .map(|_| s.name)
    })
}

/// Where backend-api answers, for services without a database: it checks their API keys and
/// revoked sessions.
pub const BACKEND_API_URL_VAR: VarSpec = VarSpec::optional(
    "BACKEND_API_URL",
    "where backend-api answers; checks API keys and ended sessions for a service without a database",
)
.fallback("http://127.0.0.1:${{backend-api.PORT}}");

/// `JWT_SECRET`, read by every service that authenticates requests.
pub const JWT_SECRET_VAR: VarSpec = VarSpec::required(
    JWT_SECRET,
    "signs and verifies the platform's JWTs; shared by every service",
)
.secret()
.generated();
