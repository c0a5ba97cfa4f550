//! The platform layer: the service catalog and everything derived from it — the connection
//! matrix, deployment planning and checks, backends, the single-machine supervisor and probes.

pub mod catalog;
pub mod check;
pub mod deployment;
pub mod matrix;
pub mod probe;
pub mod runtime;
pub mod supervisor;
pub mod table;
