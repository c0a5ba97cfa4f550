//! What a worker runs: its queues and each queue's settings, parsed from
//! `--queues` / `HELIX_WORKER_QUEUES` (`name[:key=value,...]`, queues separated by `;` or `,`
//! when no settings are given).

use std::time::Duration;

use crate::backoff::Backoff;
use crate::client::check_queue_name;
use crate::error::JobError;

/// The settings of one queue on this worker.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    pub name: String,
    /// Jobs of this queue running at once on this worker.
    pub concurrency: u32,
    /// How long a fetched job is leased; extended every third of it while its handler runs.
    pub lease: Duration,
    /// Attempts of a job that does not set its own.
    pub max_attempts: u32,
    /// One attempt's time limit for a job that does not set its own.
    pub timeout: Duration,
    /// At most this many job starts per second on this worker (`None`: unlimited).
    pub rate_per_sec: Option<u32>,
    pub backoff: Backoff,
}

impl QueueConfig {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            concurrency: 10,
            lease: Duration::from_secs(30),
            max_attempts: 10,
            timeout: Duration::from_secs(300),
            rate_per_sec: None,
            backoff: Backoff::default(),
        }
    }

    /// Parse `name` or `name:key=value,key=value` with keys `concurrency`, `lease` (seconds),
    /// `attempts`, `timeout` (seconds) and `rate` (starts per second).
    pub fn parse(spec: &str, default_concurrency: u32) -> Result<Self, JobError> {
        let (name, settings) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name.trim();
        check_queue_name(name)?;
        let mut queue = QueueConfig {
            concurrency: default_concurrency,
            ..QueueConfig::new(name)
        };
        for pair in settings.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                JobError::invalid(format!("queue {name}: expected key=value, got {pair:?}"))
            })?;
            queue.set(key.trim(), value.trim())?;
        }
        Ok(queue)
    }

    fn set(&mut self, key: &str, value: &str) -> Result<(), JobError> {
        let number = |max: u64| -> Result<u64, JobError> {
            match value.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(JobError::invalid(format!(
                    "queue {}: {key}={value:?} must be a whole number from 1 to {max}",
                    self.name
                ))),
            }
        };
        match key {
            "concurrency" => self.concurrency = number(10_000)? as u32,
            "lease" => self.lease = Duration::from_secs(number(86_400)?),
            "attempts" => {
                self.max_attempts = number(u64::from(crate::model::MAX_ATTEMPTS_LIMIT))? as u32
            }
            "timeout" => self.timeout = Duration::from_secs(number(86_400)?),
            "rate" => self.rate_per_sec = Some(number(1_000_000)? as u32),
            other => {
                return Err(JobError::invalid(format!(
                    "queue {}: unknown setting {other:?} (concurrency, lease, attempts, \
                     timeout, rate)",
                    self.name
                )))
            }
        }
        Ok(())
    }
}

/// Parse a list of queues: `default;mail:concurrency=4,rate=50` (or `a,b` when none has
/// settings). Names must not repeat.
pub fn parse_queues(list: &str, default_concurrency: u32) -> Result<Vec<QueueConfig>, JobError> {
    // Settings use commas themselves, so a list with any settings separates queues with `;`.
    let parts: Vec<&str> = if list.contains(';') || list.contains(':') {
        list.split(';').collect()
    } else {
        list.split(',').collect()
    };
    let mut queues: Vec<QueueConfig> = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let queue = QueueConfig::parse(part, default_concurrency)?;
        if queues.iter().any(|q| q.name == queue.name) {
            return Err(JobError::invalid(format!(
                "queue {} is listed twice",
                queue.name
            )));
        }
        queues.push(queue);
    }
    if queues.is_empty() {
        return Err(JobError::invalid("no queue to work on"));
    }
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_list_and_settings() {
        let plain = parse_queues("default, mail", 8).unwrap();
        assert_eq!(plain.len(), 2);
        assert_eq!((plain[1].name.as_str(), plain[1].concurrency), ("mail", 8));

        let set =
            parse_queues("default;mail:concurrency=4,lease=60,attempts=3,rate=50", 8).unwrap();
        let mail = &set[1];
        assert_eq!(mail.concurrency, 4);
        assert_eq!(mail.lease, Duration::from_secs(60));
        assert_eq!(mail.max_attempts, 3);
        assert_eq!(mail.rate_per_sec, Some(50));
        assert_eq!(set[0].concurrency, 8);
    }

    #[test]
    fn bad_lists_are_refused_with_the_reason() {
        let err = |s: &str| parse_queues(s, 1).unwrap_err().to_string();
        assert!(err("").contains("no queue"));
        assert!(err("a;a").contains("twice"));
        assert!(err("bad name").contains("queue name"));
        assert!(err("a:concurrency=0").contains("from 1"));
        assert!(err("a:speed=3").contains("unknown setting"));
        assert!(err("a:concurrency").contains("key=value"));
    }
}
