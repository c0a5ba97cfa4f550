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
    pub fn error(service: Option<&str>, var: Option<&str>, at: Option<Location>, message: String) -> Self {
        Self::new(Severity::Error, service, var, at, message)
    }

    pub fn warning(service: Option<&str>, var: Option<&str>, at: Option<Location>, message: String) -> Self {
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

/// Sort errors first, then by position, and drop exact duplicates (a `[shared]` value that is
/// wrong for every service that reads it is reported once per service, not once per reader).
pub fn normalise(problems: &mut Vec<Problem>) {
    problems.sort_by(|a, b| {
        (a.severity, a.at.as_ref().map(|l| l.line), &a.service, &a.var, &a.message).cmp(&(
            b.severity,
            b.at.as_ref().map(|l| l.line),
            &b.service,
            &b.var,
            &b.message,
        ))
    });
    problems.dedup();
}
