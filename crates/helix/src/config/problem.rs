//! A problem found in a deployment's configuration: what, where, and how bad.

use std::fmt;

use super::manifest::Location;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding of `helix check` (or of the start-up validation that shares it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub service: Option<String>,
    pub var: Option<String>,
    pub at: Option<Location>,
    pub message: String,
}

impl Problem {
    pub fn error(
        service: Option<&str>,
        var: Option<&str>,
        at: Option<Location>,
        message: String,
    ) -> Self {
        Self::new(Severity::Error, service, var, at, message)
    }

    pub fn warning(
        service: Option<&str>,
        var: Option<&str>,
        at: Option<Location>,
        message: String,
    ) -> Self {
        Self::new(Severity::Warning, service, var, at, message)
    }

    fn new(
        severity: Severity,
        service: Option<&str>,
        var: Option<&str>,
        at: Option<Location>,
        message: String,
    ) -> Self {
        Self {
            severity,
            service: service.map(str::to_owned),
            var: var.map(str::to_owned),
            at,
            message,
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: ")?;
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        match (&self.service, &self.var) {
            (Some(s), Some(v)) => write!(f, "[{s}] {v}: ")?,
            (Some(s), None) => write!(f, "[{s}] ")?,
            (None, Some(v)) => write!(f, "{v}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Sort errors first, then by position, and merge findings that differ only in the service (a
/// required variable missing for eight services is one line naming the eight, not eight lines).
pub fn normalise(problems: &mut Vec<Problem>) {
    problems.sort_by(|a, b| {
        sort_key(a)
            .cmp(&sort_key(b))
            .then_with(|| a.service.cmp(&b.service))
    });
    let mut merged: Vec<Problem> = Vec::with_capacity(problems.len());
    for p in problems.drain(..) {
        match merged.last_mut() {
            Some(last) if sort_key(last) == sort_key(&p) => merge_service(last, p.service),
            _ => merged.push(p),
        }
    }
    *problems = merged;
}

fn sort_key(p: &Problem) -> (Severity, Option<(usize, usize)>, &Option<String>, &str) {
    (
        p.severity,
        p.at.as_ref().map(|l| (l.line, l.column)),
        &p.var,
        &p.message,
    )
}

fn merge_service(into: &mut Problem, service: Option<String>) {
    let Some(service) = service else { return };
    match &mut into.service {
        Some(list) if list.split(", ").any(|s| s == service) => {}
        Some(list) => {
            list.push_str(", ");
            list.push_str(&service);
        }
        None => into.service = Some(service),
    }
}
