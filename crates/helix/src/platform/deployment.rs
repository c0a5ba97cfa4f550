//! A deployment: the services a command runs, each with its resolved and validated configuration.

use std::collections::BTreeMap;

use super::catalog::{self, ServiceSpec, REDIS_URL};
use super::check;
use crate::config::problem::normalise;
use crate::config::resolve::{Mode, Resolver};
use crate::config::{generated, Config, ConfigError, Problem, ServiceConfig, ServiceEnv};
use crate::shared::redact;

/// One service ready to start.
#[derive(Debug, Clone)]
pub struct Planned {
    pub env: ServiceEnv,
    pub config: ServiceConfig,
}

/// The services of one command, with every problem found.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub services: Vec<Planned>,
    pub problems: Vec<Problem>,
    pub embedded: bool,
}

/// Whether resolution may write generated secrets (start-up) or only read them (inspection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generate {
    Create,
    ReadOnly,
}

impl Deployment {
    /// Resolve and validate `services` under `mode`. Never fails: problems are collected.
    pub fn plan(
        config: &Config,
        mode: Mode,
        flags: BTreeMap<String, String>,
        services: &[&'static ServiceSpec],
        generate: Generate,
    ) -> Self {
        let data_dir = config.settings.data_dir.clone();
        let lookup = move |name: &str| match generate {
            Generate::Create => generated::read_or_create(&data_dir, name).ok(),
            Generate::ReadOnly => generated::read(&data_dir, name),
        };
        let resolver = Resolver {
            manifest: &config.manifest,
            env: &config.env,
            mode: mode.clone(),
            flags,
            generated: &lookup,
        };
        let mut problems = check::manifest_problems(&config.manifest, &config.env, &mode);
        problems.extend(resolver.references());
        let planned: Vec<Planned> = services
            .iter()
            .map(|spec| {
                let env = ServiceEnv {
                    spec,
                    vars: resolver.service(spec, &mut problems),
                };
                let config =
                    ServiceConfig::from_env(&env, &config.settings.data_dir, &mut problems);
                Planned { env, config }
            })
            .collect();
        let embedded = resolver.is_embedded();
        if mode == Mode::Up {
            port_collisions(&planned, &mut problems);
        }
        if !embedded || matches!(mode, Mode::Serve(_)) {
            in_process_bus(&planned, &mut problems);
        }
        normalise(&mut problems);
        Self {
            services: planned,
            problems,
            embedded,
        }
    }

    /// Plan every service of the catalog.
    pub fn plan_all(config: &Config, mode: Mode, generate: Generate) -> Self {
        let all: Vec<&'static ServiceSpec> = catalog::all().iter().collect();
        Self::plan(config, mode, BTreeMap::new(), &all, generate)
    }

    pub fn errors(&self) -> Vec<Problem> {
        self.problems
            .iter()
            .filter(|p| p.is_error())
            .cloned()
            .collect()
    }

    /// For start-up: fail with every error, log every warning, and register every secret with
    /// the log redaction layer.
    pub fn into_startable(self) -> Result<Self, ConfigError> {
        for planned in &self.services {
            planned.env.secret_values().for_each(redact::register);
        }
        let errors = self.errors();
        if !errors.is_empty() {
            return Err(ConfigError::Problems(errors));
        }
        for warning in self.problems.iter().filter(|p| !p.is_error()) {
            tracing::warn!("{warning}");
        }
        Ok(self)
    }
}

fn port_collisions(planned: &[Planned], problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<u16, &str> = BTreeMap::new();
    for p in planned {
        let Some(port) = p.config.port else { continue };
        if let Some(first) = seen.insert(port, p.env.spec.name) {
            problems.push(Problem::error(
                Some(p.env.spec.name),
                Some("PORT"),
                None,
                format!("port {port} is also used by {first}; give each service its own PORT"),
            ));
        }
    }
}

fn in_process_bus(planned: &[Planned], problems: &mut Vec<Problem>) {
    let without: Vec<&str> = planned
        .iter()
        .filter(|p| p.env.spec.redis.is_needed() && p.config.redis_url.is_none())
        .map(|p| p.env.spec.name)
        .collect();
    if !without.is_empty() {
        problems.push(Problem::warning(
            None,
            Some(REDIS_URL),
            None,
            format!(
                "not set for {}: they use the in-process bus, whose messages and jobs do not reach other processes",
                without.join(", ")
            ),
        ));
    }
}
