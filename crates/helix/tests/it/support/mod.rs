//! Test support: `spawn_app` starts a real service on port 0 against the test backends.

pub mod backends;
pub mod bin;
pub mod db;
pub mod proxy;
pub mod spawn_app;

pub use backends::TestBackends;
pub use spawn_app::spawn_app;
