//! The embedded SQL migrations of each dialect and the engine-neutral half of the migrator.
//!
//! Files live in `migrations/<dialect>/NNNN_name.sql` and are compiled into the binary through the
//! lists below (a unit test fails if a file is missing from a list, or the dialects drift apart).
//! Each engine module owns its locking and transactions and asks this module what to apply:
//! it reads `helix_migrations`, calls [`pending`] (which refuses an edited, already applied file),
//! applies what is left and builds its [`MigrationReport`] with [`report`].

use sha2::{Digest, Sha256};

use crate::{MigrationReport, MigrationStatus, StoreError};

/// One migration file compiled into the binary.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) name: &'static str,
    pub(crate) sql: &'static str,
}

impl Migration {
    /// sha256 of the file, lowercase hex: what `helix_migrations.checksum` records.
    pub(crate) fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

pub(crate) const POSTGRES: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "accounts",
        sql: include_str!("../migrations/postgres/0002_accounts.sql"),
    },
    Migration {
        version: 3,
        name: "conversations",
        sql: include_str!("../migrations/postgres/0003_conversations.sql"),
    },
    Migration {
        version: 4,
        name: "ucf_metrics",
        sql: include_str!("../migrations/postgres/0004_ucf_metrics.sql"),
    },
    Migration {
        version: 5,
        name: "billing",
        sql: include_str!("../migrations/postgres/0005_billing.sql"),
    },
    Migration {
        version: 6,
        name: "agents",
        sql: include_str!("../migrations/postgres/0006_agents.sql"),
    },
    Migration {
        version: 7,
        name: "jobs",
        sql: include_str!("../migrations/postgres/0007_jobs.sql"),
    },
    Migration {
        version: 8,
        name: "schedules",
        sql: include_str!("../migrations/postgres/0008_schedules.sql"),
    },
    Migration {
        version: 9,
        name: "webhooks",
        sql: include_str!("../migrations/postgres/0009_webhooks.sql"),
    },
    Migration {
        version: 10,
        name: "discord",
        sql: include_str!("../migrations/postgres/0010_discord.sql"),
    },
];

pub(crate) const SQLITE: &[Migration] = &[
    Migration {
        version: 1,
        name: "foundation",
        sql: include_str!("../migrations/sqlite/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        name: "accounts",
        sql: include_str!("../migrations/sqlite/0002_accounts.sql"),
    },
    Migration {
        version: 3,
        name: "conversations",
        sql: include_str!("../migrations/sqlite/0003_conversations.sql"),
    },
    Migration {
        version: 4,
        name: "ucf_metrics",
        sql: include_str!("../migrations/sqlite/0004_ucf_metrics.sql"),
    },
    Migration {
        version: 5,
        name: "billing",
        sql: include_str!("../migrations/sqlite/0005_billing.sql"),
    },
    Migration {
        version: 6,
        name: "agents",
        sql: include_str!("../migrations/sqlite/0006_agents.sql"),
    },
    Migration {
        version: 7,
        name: "jobs",
        sql: include_str!("../migrations/sqlite/0007_jobs.sql"),
    },
    Migration {
        version: 8,
        name: "schedules",
        sql: include_str!("../migrations/sqlite/0008_schedules.sql"),
    },
    Migration {
        version: 9,
        name: "webhooks",
        sql: include_str!("../migrations/sqlite/0009_webhooks.sql"),
    },
    Migration {
        version: 10,
        name: "discord",
        sql: include_str!("../migrations/sqlite/0010_discord.sql"),
    },
];

/// The migrations of `embedded` not yet in `applied` (`(version, checksum)` rows), in order.
/// Fails if an applied file was edited since: the database no longer matches its source.
pub(crate) fn pending<'a>(
    embedded: &'a [Migration],
    applied: &[(i64, String)],
) -> Result<Vec<&'a Migration>, StoreError> {
    for (version, checksum) in applied {
        match embedded.iter().find(|m| m.version == *version) {
            Some(m) if m.checksum() != *checksum => {
                return Err(StoreError::Migration {
                    version: *version,
                    reason: format!(
                        "checksum mismatch: {:04}_{}.sql was edited after it was applied; \
                         restore it and add a new migration instead",
                        m.version, m.name
                    ),
                });
            }
            Some(_) => {}
            // A newer binary migrated this database (a rolling deploy): not ours to judge.
            None => tracing::warn!(
                version,
                "database has a migration this binary does not know"
            ),
        }
    }
    Ok(embedded
        .iter()
        .filter(|m| !applied.iter().any(|(v, _)| *v == m.version))
        .collect())
}

/// Every embedded migration with whether `applied_versions` holds it.
pub(crate) fn status(embedded: &[Migration], applied_versions: &[i64]) -> Vec<MigrationStatus> {
    embedded
        .iter()
        .map(|m| MigrationStatus {
            version: m.version,
            name: m.name.to_string(),
            applied: applied_versions.contains(&m.version),
        })
        .collect()
}

/// What a run did: `now` applied on top of `before`.
pub(crate) fn report(before: &[(i64, String)], now: Vec<i64>) -> MigrationReport {
    let current = before
        .iter()
        .map(|(v, _)| *v)
        .chain(now.iter().copied())
        .max()
        .unwrap_or(0);
    MigrationReport {
        applied: now,
        current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_of(dialect: &str) -> Vec<String> {
        let dir = format!("{}/migrations/{dialect}", env!("CARGO_MANIFEST_DIR"));
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn names_of(list: &[Migration]) -> Vec<String> {
        list.iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect()
    }

    #[test]
    fn every_file_is_embedded_in_order() {
        assert_eq!(names_of(POSTGRES), files_of("postgres"));
        assert_eq!(names_of(SQLITE), files_of("sqlite"));
        for list in [POSTGRES, SQLITE] {
            assert!(list.windows(2).all(|w| w[0].version < w[1].version));
        }
    }

    #[test]
    fn dialects_have_the_same_migrations() {
        assert_eq!(names_of(POSTGRES), names_of(SQLITE));
    }

    #[test]
    fn edited_applied_file_is_refused() {
        let applied = vec![(1, "0".repeat(64))];
        let err = pending(SQLITE, &applied).err().unwrap();
        assert!(
            matches!(err, StoreError::Migration { version: 1, .. }),
            "{err}"
        );
    }

    #[test]
    fn pending_skips_applied_and_report_counts_current() {
        let first = vec![(1, SQLITE[0].checksum())];
        let all: Vec<(i64, String)> = SQLITE.iter().map(|m| (m.version, m.checksum())).collect();
        assert!(pending(SQLITE, &all).unwrap().is_empty());
        let rest: Vec<i64> = pending(SQLITE, &first)
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        // Versions need not be contiguous: branches claim numbers ahead of each other.
        let later: Vec<i64> = SQLITE[1..].iter().map(|m| m.version).collect();
        assert_eq!(rest, later);
        assert_eq!(pending(SQLITE, &[]).unwrap().len(), SQLITE.len());
        assert_eq!(report(&first, vec![]).current, 1);
        let last = SQLITE.last().unwrap().version;
        assert_eq!(report(&all, vec![]).current, last);
        assert_eq!(report(&[], vec![]).current, 0);
    }
}
