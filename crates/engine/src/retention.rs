//! Which backups to keep: the retention policy, as a pure function of the list and the time.
//!
//! Default: keep every backup of the last 30 days. Optionally also the newest N, and the newest
//! backup of each of the last N weeks and N months. Whatever the policy, never delete the
//! newest backup that verified (or, before any verified, the newest complete one), nor a safety backup younger than 7 days, nor anything that is
//! not a complete backup (a damaged or unreadable file is left for a person to look at), nor
//! an old-system file (the school's history from before SchoolVault).

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::Serialize;

use crate::archive::BackupKind;
use crate::catalog::BackupRecord;

/// The policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Keep everything younger than this many days.
    pub keep_days: u32,
    /// Keep the newest N complete backups.
    pub keep_last: Option<u32>,
    /// Keep the newest complete backup of each of the last N ISO weeks.
    pub keep_weekly: Option<u32>,
    /// Keep the newest complete backup of each of the last N months.
    pub keep_monthly: Option<u32>,
}

impl Retention {
    /// Refuse a policy that keeps nothing: 0 days with no newest-N, weekly or monthly backups
    /// kept would remove every backup but the newest verified one at each prune.
    ///
    /// # Errors
    /// `InvalidInput` saying what to change.
    pub fn validate(&self) -> crate::Result<()> {
        let some = |n: Option<u32>| n.is_some_and(|n| n > 0);
        if self.keep_days == 0
            && !some(self.keep_last)
            && !some(self.keep_weekly)
            && !some(self.keep_monthly)
        {
            return Err(crate::Error::new(
                crate::ErrorKind::InvalidInput,
                "Keeping backups for 0 days, with no newest, weekly or monthly backups kept, would remove every backup",
                "Keep backups for at least 1 day (30 is a good choice), or also keep the newest N (--keep-last)",
            )
            .in_app("Keep every backup for at least 1 day (30 is a good choice), or also keep the newest few"));
        }
        Ok(())
    }
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep_days: 30,
            keep_last: None,
            keep_weekly: None,
            keep_monthly: None,
        }
    }
}

/// A backup the policy removes, and why it may go.
#[derive(Debug, Clone, Serialize)]
pub struct Prune {
    /// The backup's id.
    pub id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Why.
    pub reason: String,
}

/// The backups `policy` removes from `backups` at `now`.
pub fn plan(backups: &[BackupRecord], policy: &Retention, now: DateTime<Utc>) -> Vec<Prune> {
    let mut newest_first: Vec<&BackupRecord> = backups.iter().collect();
    newest_first.sort_by_key(|b| std::cmp::Reverse(b.created_at));
    let complete: Vec<&&BackupRecord> = newest_first
        .iter()
        .filter(|b| b.status.is_complete())
        .collect();
    let mut keep: std::collections::HashSet<&str> = std::collections::HashSet::new();
    // Never every backup: the newest one that verified stays, or, when none has been
    // verified yet, the newest complete one (`prune --keep-days 0` on a new installation).
    // Only the school's own backups count (a safety backup, or an old-system file that a rescan
    // read, is no backup of the school by SchoolVault).
    let own: Vec<&&&BackupRecord> = complete
        .iter()
        .filter(|b| b.kind != BackupKind::Safety && b.engine != crate::legacy::CATALOG_ENGINE)
        .collect();
    if let Some(b) = own
        .iter()
        .find(|b| b.verify_ok == Some(true))
        .or_else(|| own.first())
    {
        keep.insert(&b.id);
    }
    if let Some(n) = policy.keep_last {
        for b in complete.iter().take(n as usize) {
            keep.insert(&b.id);
        }
    }
    if let Some(n) = policy.keep_weekly {
        let mut weeks = Vec::new();
        for b in &complete {
            let w = b.created_at.iso_week();
            let key = (w.year(), w.week());
            if !weeks.contains(&key) && weeks.len() < n as usize {
                weeks.push(key);
                keep.insert(&b.id);
            }
        }
    }
    if let Some(n) = policy.keep_monthly {
        let mut months = Vec::new();
        for b in &complete {
            let key = (b.created_at.year(), b.created_at.month());
            if !months.contains(&key) && months.len() < n as usize {
                months.push(key);
                keep.insert(&b.id);
            }
        }
    }
    let cutoff = now - Duration::days(i64::from(policy.keep_days));
    newest_first
        .into_iter()
        // Only what is understood is pruned: a damaged, incomplete or unreadable file (a
        // foreign file, another key's v1 file) stays until a person deletes it.
        .filter(|b| b.status.is_complete())
        // The old system's files are the school's history from before SchoolVault: a person
        // decides when they go.
        .filter(|b| b.engine != crate::legacy::CATALOG_ENGINE)
        .filter(|b| !keep.contains(b.id.as_str()))
        .filter(|b| b.created_at < cutoff)
        .filter(|b| !(b.kind == BackupKind::Safety && now - b.created_at < Duration::days(7)))
        .map(|b| Prune {
            id: b.id.clone(),
            created_at: b.created_at,
            reason: format!("older than {} days", policy.keep_days),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_that_keeps_nothing_is_refused() {
        let none = Retention {
            keep_days: 0,
            keep_last: Some(0),
            keep_weekly: None,
            keep_monthly: None,
        };
        let e = none.validate().expect_err("keeps nothing");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
        assert!(e.message().contains("0 days"), "{e}");
        Retention::default().validate().expect("30 days");
        // Even so, a plan never removes every backup: with none verified, the newest stays.
        let now = Utc::now();
        let old = |id: &str, days: i64| backup(id, days, BackupKind::Scheduled, None, now);
        let backups = [old("a", 3), old("b", 2), old("c", 1)];
        let gone: Vec<String> = plan(&backups, &none, now)
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(gone, ["b", "a"]);
        for ok in [
            Retention {
                keep_last: Some(3),
                ..none
            },
            Retention {
                keep_weekly: Some(4),
                ..none
            },
            Retention {
                keep_monthly: Some(12),
                ..none
            },
            Retention {
                keep_days: 1,
                ..none
            },
        ] {
            ok.validate().expect("keeps something");
        }
    }
    use std::path::PathBuf;

    use crate::catalog::BackupStatus;

    fn backup(
        id: &str,
        days_ago: i64,
        kind: BackupKind,
        verified: Option<bool>,
        now: DateTime<Utc>,
    ) -> BackupRecord {
        BackupRecord {
            id: id.into(),
            path: PathBuf::from(format!("/b/{id}.svb")),
            created_at: now - Duration::days(days_ago),
            kind,
            status: BackupStatus::Complete,
            size: 1,
            sha256: String::new(),
            key_fingerprint: String::new(),
            engine: "postgresql".into(),
            server_version: "15".into(),
            database: "erp".into(),
            tables: 1,
            rows: 1,
            duration_ms: 1,
            verified_at: None,
            verify_ok: verified,
            verify_message: None,
        }
    }

    fn ids(p: &[Prune]) -> Vec<&str> {
        let mut v: Vec<&str> = p.iter().map(|p| p.id.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn default_keeps_thirty_days() {
        let now = Utc::now();
        let list: Vec<_> = (0..40)
            .map(|d| backup(&format!("d{d:02}"), d, BackupKind::Scheduled, None, now))
            .collect();
        let pruned = plan(&list, &Retention::default(), now);
        let expected: Vec<String> = (31..40).map(|d| format!("d{d:02}")).collect();
        assert_eq!(
            ids(&pruned),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }

    #[test]
    fn never_the_newest_verified_nor_a_young_safety_backup() {
        let now = Utc::now();
        let list = vec![
            backup("recent", 1, BackupKind::Scheduled, Some(false), now),
            backup("old-verified", 60, BackupKind::Scheduled, Some(true), now),
            backup("older-verified", 90, BackupKind::Scheduled, Some(true), now),
            backup("safety-young", 5, BackupKind::Safety, None, now),
        ];
        let policy = Retention {
            keep_days: 0,
            ..Retention::default()
        };
        let pruned = plan(&list, &policy, now);
        assert_eq!(ids(&pruned), vec!["older-verified", "recent"]);
    }

    #[test]
    fn only_complete_backups_are_ever_pruned() {
        let now = Utc::now();
        let mut damaged = backup("damaged", 90, BackupKind::Scheduled, Some(false), now);
        damaged.status = BackupStatus::Unusable(crate::ErrorKind::Damaged);
        let mut foreign = backup("foreign-enc", 90, BackupKind::Manual, Some(false), now);
        foreign.status = BackupStatus::Unusable(crate::ErrorKind::NotABackup);
        let mut cut = backup("cut", 120, BackupKind::Scheduled, None, now);
        cut.status = BackupStatus::Unusable(crate::ErrorKind::Truncated);
        let mut old_system = backup("old-system", 400, BackupKind::Manual, Some(true), now);
        old_system.engine = crate::legacy::CATALOG_ENGINE.into();
        let list = vec![
            damaged,
            foreign,
            cut,
            old_system,
            backup("old", 90, BackupKind::Scheduled, None, now),
            // The school's newest backup, which the policy keeps anyway (an old-system file
            // never stands in for it).
            backup("new", 0, BackupKind::Scheduled, None, now),
        ];
        let policy = Retention {
            keep_days: 1,
            ..Retention::default()
        };
        assert_eq!(ids(&plan(&list, &policy, now)), vec!["old"]);
    }

    #[test]
    fn last_weekly_and_monthly() {
        let now = DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
            .expect("t")
            .with_timezone(&Utc);
        let list: Vec<_> = (0..120)
            .map(|d| backup(&format!("d{d:03}"), d, BackupKind::Scheduled, None, now))
            .collect();
        let policy = Retention {
            keep_days: 7,
            keep_last: Some(10),
            keep_weekly: Some(4),
            keep_monthly: Some(3),
        };
        let pruned = plan(&list, &policy, now);
        let kept: Vec<&str> = list
            .iter()
            .map(|b| b.id.as_str())
            .filter(|id| !pruned.iter().any(|p| p.id == *id))
            .collect();
        // The last 10 (which cover the 7 days); the newest of each of 4 ISO weeks (Sundays
        // 22, 15 and 8 November, and today's week); the newest of November, October (31st)
        // and September (30th).
        let mut expected: Vec<String> = (0..10).map(|d| format!("d{d:03}")).collect();
        expected.extend(["d011", "d018", "d026", "d057"].map(String::from));
        assert_eq!(
            kept,
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}
