//! Deployment checks: the manifest and environment against the connection matrix.
//!
//! These checks run for `helix check` and, errors only, before `helix up` and `helix serve`
//! start anything, so a deployment that `check` accepts is one that starts.

use std::collections::BTreeMap;

use super::catalog::{self, DATABASE_URL, REDIS_URL};
use crate::config::manifest::{Location, Manifest, PLUGINS};
use crate::config::resolve::Mode;
use crate::config::Problem;

/// Every problem of the manifest itself and of the environment seen under `mode`.
pub fn manifest_problems(
    manifest: &Manifest,
    env: &BTreeMap<String, String>,
    mode: &Mode,
) -> Vec<Problem> {
    let mut out = Vec::new();
    plugins(manifest, &mut out);
    shared(manifest, &mut out);
    services(manifest, &mut out);
    if let Mode::Serve(service) = mode {
        scoped_in_env(env, service, &mut out);
    }
    out
}

fn plugins(manifest: &Manifest, out: &mut Vec<Problem>) {
    for (name, (at, vars)) in &manifest.plugins {
        let Some((_, provides)) = PLUGINS.iter().find(|(p, _)| p == name) else {
            out.push(Problem::error(
                None,
                None,
                Some(at.clone()),
                format!("unknown plugin `{name}` (expected postgres or redis)"),
            ));
            continue;
        };
        for (var, entry) in vars {
            if !provides.contains(&var.as_str()) {
                out.push(Problem::warning(
                    None,
                    Some(var),
                    Some(entry.at.clone()),
                    format!(
                        "plugin {name} provides {} only; {var} is ignored",
                        provides.join(", ")
                    ),
                ));
            }
        }
    }
}

fn shared(manifest: &Manifest, out: &mut Vec<Problem>) {
    for (var, entry) in &manifest.shared {
        if let Some(owner) = catalog::scope_of(var) {
            out.push(scoped_elsewhere(
                var,
                owner,
                "[shared]",
                Some(entry.at.clone()),
            ));
        } else if !catalog::is_read_by_any(var) {
            out.push(Problem::warning(
                None,
                Some(var),
                Some(entry.at.clone()),
                "no service reads this variable".into(),
            ));
        }
    }
}

fn services(manifest: &Manifest, out: &mut Vec<Problem>) {
    for (name, (at, vars)) in &manifest.services {
        let Some(spec) = catalog::find(name) else {
            out.push(Problem::error(
                Some(name),
                None,
                Some(at.clone()),
                format!(
                    "unknown service `{name}`; valid services: {}",
                    catalog::names().join(", ")
                ),
            ));
            continue;
        };
        for (var, entry) in vars {
            if spec.variable(var).is_some() {
                continue;
            }
            let at = Some(entry.at.clone());
            let problem = match (var.as_str(), catalog::scope_of(var)) {
                (_, Some(owner)) => scoped_elsewhere(var, owner, &format!("[services.{name}]"), at),
                (DATABASE_URL, _) => Problem::warning(
                    Some(name),
                    Some(var),
                    at,
                    format!(
                        "{name} is given a database it does not need ({})",
                        spec.postgres_why
                    ),
                ),
                (REDIS_URL, _) => Problem::warning(
                    Some(name),
                    Some(var),
                    at,
                    format!("{name} is given Redis, which it does not need"),
                ),
                _ => Problem::warning(
                    Some(name),
                    Some(var),
                    at,
                    format!("{name} does not read {var}"),
                ),
            };
            out.push(problem);
        }
    }
}

fn scoped_in_env(env: &BTreeMap<String, String>, service: &str, out: &mut Vec<Problem>) {
    for var in env.keys() {
        if let Some(owner) = catalog::scope_of(var).filter(|owner| *owner != service) {
            out.push(Problem::error(
                Some(service),
                Some(var),
                None,
                format!("{var} is set in the environment of {service}, but it is scoped to {owner}: set it on {owner} alone"),
            ));
        }
    }
}

fn scoped_elsewhere(var: &str, owner: &str, place: &str, at: Option<Location>) -> Problem {
    Problem::error(
        None,
        Some(var),
        at,
        format!("{var} is a secret scoped to {owner}; it must not be set in {place}: move it to [services.{owner}]"),
    )
}
