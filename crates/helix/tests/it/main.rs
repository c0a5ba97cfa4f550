//! Helix's integration tests: one binary, one module per area. They run on SQLite and the
//! in-process bus by default, and on PostgreSQL and Redis when `HELIX_TEST_DATABASE_URL` and
//! `HELIX_TEST_REDIS_URL` are set.

mod accounts;
mod admin;
mod agents;
mod cli;
mod config_checks;
mod conversations;
mod discord;
mod discord_logs;
mod health;
mod isolation;
mod jobs;
mod logs;
mod quotas;
mod realtime;
mod schedules;
mod service_health;
mod stripe;
mod support;
mod ucf_metrics;
mod usage;
mod webhooks;
