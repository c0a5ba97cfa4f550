//! Resolution: the value each service gets for each variable it declares, and where it came from.
//!
//! Precedence, highest first: a command-line override → the process environment → the service's
//! table in `helix.toml` → `[shared]` → the plugin that provides it (`DATABASE_URL`, `REDIS_URL`)
//! → the declared fallback. `${{ns.NAME}}` references are then expanded, recursively, with cycle
//! detection. Every problem found on the way is collected, not thrown, so `helix check` can list
//! them all at once.

use std::collections::BTreeMap;

use super::manifest::{Location, Manifest, PLUGINS};
use super::problem::Problem;
use crate::platform::catalog::{self, Fallback, ServiceSpec, VarSpec, DATABASE_URL, PORT};

/// Where a resolved value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    Service(Location),
    Shared(Location),
    Plugin(String),
    Fallback,
    /// Generated under the data directory (embedded deployments only).
    Generated,
    Unset,
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Flag => "command line".into(),
            Source::Env => "environment".into(),
            Source::Service(at) | Source::Shared(at) => at.to_string(),
            Source::Plugin(p) => format!("plugin {p}"),
            Source::Fallback => "default".into(),
            Source::Generated => "generated".into(),
            Source::Unset => "unset".into(),
        }
    }

    fn location(&self) -> Option<Location> {
        match self {
            Source::Service(at) | Source::Shared(at) => Some(at.clone()),
            _ => None,
        }
    }
}

/// One variable of one service after resolution.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub spec: VarSpec,
    pub value: Option<String>,
    pub source: Source,
}

/// Which command is resolving: it decides how `PORT` from the environment applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `helix up`: one process, every service on its own port; an environment `PORT` is ignored.
    Up,
    /// `helix serve <service>`: the environment `PORT` belongs to this service.
    Serve(String),
}

/// Looks up (or creates) generated secrets; `None` when not generated yet.
pub type GeneratedLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Everything resolution reads.
pub struct Resolver<'a> {
    pub manifest: &'a Manifest,
    pub env: &'a BTreeMap<String, String>,
    pub mode: Mode,
    /// Command-line overrides for the served service.
    pub flags: BTreeMap<String, String>,
    pub generated: GeneratedLookup<'a>,
}

const MAX_DEPTH: usize = 16;

impl Resolver<'_> {
    /// Whether this deployment is the embedded single-machine default (no PostgreSQL anywhere).
    pub fn is_embedded(&self) -> bool {
        let is_pg = |v: &str| !v.starts_with("sqlite:");
        let env_pg = self.env.get(DATABASE_URL).is_some_and(|v| is_pg(v));
        let file_pg = self.manifest.has_plugin("postgres")
            || self
                .manifest
                .shared
                .get(DATABASE_URL)
                .is_some_and(|e| is_pg(&e.value))
            || self
                .manifest
                .services
                .values()
                .any(|(_, vars)| vars.get(DATABASE_URL).is_some_and(|e| is_pg(&e.value)));
        !env_pg && !file_pg
    }

    /// Resolve every variable of one service, collecting problems.
    pub fn service(&self, spec: &ServiceSpec, problems: &mut Vec<Problem>) -> Vec<Resolved> {
        spec.variables()
            .into_iter()
            .map(|var| self.variable(spec, var, problems))
            .collect()
    }

    fn variable(&self, spec: &ServiceSpec, var: VarSpec, problems: &mut Vec<Problem>) -> Resolved {
        let (raw, source) = self.pick(spec, &var);
        let mut broken = false;
        let value = raw.and_then(|raw| {
            let mut stack = vec![(spec.name.to_owned(), var.name.to_owned())];
            match self.expand(&raw, &mut stack) {
                Ok(v) => Some(v),
                Err(message) => {
                    broken = true;
                    // A value written in helix.toml is reported once, at its line, by
                    // `references`; only values from elsewhere are reported per service.
                    if source.location().is_none() {
                        problems.push(Problem::error(
                            Some(spec.name),
                            Some(var.name),
                            None,
                            message,
                        ));
                    }
                    None
                }
            }
        });
        if value.is_none() && !broken && var.required && source != Source::Generated {
            problems.push(Problem::error(
                Some(spec.name),
                Some(var.name),
                None,
                format!("required variable {} is not set ({})", var.name, var.about),
            ));
        }
        Resolved {
            spec: var,
            value,
            source,
        }
    }

    /// Expand every value written in the manifest, read by a service or not, so that a broken
    /// reference or a cycle is reported once, at its line.
    pub fn references(&self) -> Vec<Problem> {
        let m = self.manifest;
        let shared = m.shared.iter().map(|(var, e)| (None, "shared", var, e));
        let services = m.services.iter().flat_map(|(name, (_, vars))| {
            vars.iter()
                .map(move |(var, e)| (Some(name.as_str()), name.as_str(), var, e))
        });
        let plugins = m.plugins.iter().flat_map(|(name, (_, vars))| {
            vars.iter()
                .map(move |(var, e)| (None, name.as_str(), var, e))
        });
        shared
            .chain(services)
            .chain(plugins)
            .filter_map(|(service, table, var, entry)| {
                let mut stack = vec![(table.to_owned(), var.clone())];
                let message = self.expand(&entry.value, &mut stack).err()?;
                Some(Problem::error(
                    service,
                    Some(var),
                    Some(entry.at.clone()),
                    message,
                ))
            })
            .collect()
    }

    /// The raw (unexpanded) value by precedence.
    fn pick(&self, spec: &ServiceSpec, var: &VarSpec) -> (Option<String>, Source) {
        if let Some(v) = self.flags.get(var.name).filter(|_| self.is_primary(spec)) {
            return (Some(v.clone()), Source::Flag);
        }
        let env_applies = var.name != PORT || self.is_primary(spec);
        if let Some(v) = self.env.get(var.name).filter(|_| env_applies) {
            return (Some(v.clone()), Source::Env);
        }
        if let Some(e) = self
            .manifest
            .services
            .get(spec.name)
            .and_then(|(_, t)| t.get(var.name))
        {
            return (Some(e.value.clone()), Source::Service(e.at.clone()));
        }
        if let Some(e) = self.manifest.shared.get(var.name) {
            return (Some(e.value.clone()), Source::Shared(e.at.clone()));
        }
        if let Some((plugin, _)) = PLUGINS.iter().find(|(_, vars)| vars.contains(&var.name)) {
            if self.manifest.has_plugin(plugin) {
                return (
                    Some(format!("${{{{{plugin}.{}}}}}", var.name)),
                    Source::Plugin((*plugin).into()),
                );
            }
        }
        self.fallback(spec, var)
    }

    fn fallback(&self, spec: &ServiceSpec, var: &VarSpec) -> (Option<String>, Source) {
        match var.fallback {
            Fallback::None => (None, Source::Unset),
            Fallback::Value(v) => (Some(v.to_owned()), Source::Fallback),
            Fallback::DefaultPort => (spec.port.map(|p| p.to_string()), Source::Fallback),
            Fallback::Generated if self.is_embedded() => {
                ((self.generated)(var.name), Source::Generated)
            }
            Fallback::Generated => (None, Source::Unset),
        }
    }

    fn is_primary(&self, spec: &ServiceSpec) -> bool {
        matches!(&self.mode, Mode::Serve(name) if name == spec.name)
    }

    /// Expand every `${{ns.NAME}}` in `raw`.
    fn expand(&self, raw: &str, stack: &mut Vec<(String, String)>) -> Result<String, String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find("${{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 3..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unterminated reference in `{raw}`"))?;
            out.push_str(&self.reference(after[..end].trim(), stack)?);
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The value of one reference `ns.NAME`.
    fn reference(&self, target: &str, stack: &mut Vec<(String, String)>) -> Result<String, String> {
        let (ns, name) = target
            .split_once('.')
            .ok_or_else(|| format!("reference `${{{{{target}}}}}` must be namespace.NAME"))?;
        let key = (ns.to_owned(), name.to_owned());
        if stack.contains(&key) || stack.len() > MAX_DEPTH {
            let chain: Vec<String> = stack
                .iter()
                .chain([&key])
                .map(|(n, v)| format!("{n}.{v}"))
                .collect();
            return Err(format!("reference cycle: {}", chain.join(" → ")));
        }
        stack.push(key);
        let result = self.lookup(ns, name, stack);
        stack.pop();
        result
    }

    fn lookup(
        &self,
        ns: &str,
        name: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, String> {
        let raw = if ns == "shared" {
            self.env
                .get(name)
                .cloned()
                .or_else(|| self.manifest.shared.get(name).map(|e| e.value.clone()))
                .ok_or_else(|| format!("`${{{{shared.{name}}}}}`: no shared variable {name}"))?
        } else if let Some((plugin, provides)) = PLUGINS.iter().find(|(p, _)| *p == ns) {
            self.plugin_value(plugin, provides, name)?
        } else if let Some(spec) = catalog::find(ns) {
            return self.service_value(spec, name, stack);
        } else {
            return Err(format!(
                "`${{{{{ns}.{name}}}}}`: unknown namespace {ns} (expected shared, postgres, redis or one of: {})",
                catalog::names().join(", ")
            ));
        };
        self.expand(&raw, stack)
    }

    fn plugin_value(&self, plugin: &str, provides: &[&str], name: &str) -> Result<String, String> {
        if !provides.contains(&name) {
            return Err(format!(
                "`${{{{{plugin}.{name}}}}}`: plugin {plugin} provides {} only",
                provides.join(", ")
            ));
        }
        let Some((_, vars)) = self.manifest.plugins.get(plugin) else {
            return Err(format!("`${{{{{plugin}.{name}}}}}`: plugin {plugin} is not declared (add [plugins.{plugin}])"));
        };
        vars.get(name)
            .map(|e| e.value.clone())
            .or_else(|| self.env.get(name).cloned())
            .ok_or_else(|| format!("`${{{{{plugin}.{name}}}}}`: {name} is set neither in [plugins.{plugin}] nor in the environment"))
    }

    fn service_value(
        &self,
        spec: &ServiceSpec,
        name: &str,
        stack: &mut Vec<(String, String)>,
    ) -> Result<String, String> {
        let Some(var) = spec.variable(name) else {
            // Not declared by the service, but a value in its table may still be referenced, as
            // the platform's dashboard allows.
            let entry = self
                .manifest
                .services
                .get(spec.name)
                .and_then(|(_, t)| t.get(name));
            return match entry {
                Some(e) => self.expand(&e.value, stack),
                None => Err(format!(
                    "`${{{{{}.{name}}}}}`: {} neither reads nor sets {name}",
                    spec.name, spec.name
                )),
            };
        };
        match self.pick(spec, &var) {
            (Some(raw), _) => self.expand(&raw, stack),
            (None, _) => Err(format!(
                "`${{{{{}.{name}}}}}`: {name} is not set for {}",
                spec.name, spec.name
            )),
        }
    }
}
