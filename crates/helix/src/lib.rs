//! Helix: every service of the Helix Unified platform in one binary, and the operations tool
//! that wires them.
//!
//! - [`platform::catalog`] — what each service declares (dependencies, variables, why);
//!   everything else is derived from it.
//! - [`config`] — the only place environment variables and files are read; layered, validated.
//! - [`platform`] — the connection matrix, deployment planning and checks, backends, the
//!   supervisor of `helix up`, probes.
//! - [`services`] — one folder per service; [`services::router`] builds a service's HTTP surface.
//! - [`shared`] — errors, redaction and request metrics every service uses.
//! - [`cli`] — one file per subcommand; `main.rs` only parses and dispatches.

pub mod app;
pub mod cli;
pub mod config;
pub mod platform;
pub mod services;
pub mod shared;
pub mod telemetry;
