//! When backups run: a cron expression in local time (or a named zone), catch-up of slots
//! missed while the machine was off, and the run lock that keeps to one backup at a time across
//! the app and the CLI.
//!
//! Time is passed in, never read here, so the logic is tested without sleeping. A slot of a
//! wall-clock time that a daylight-saving change repeats (02:30 on the night clocks go back in
//! Europe) runs once; one that the change skips runs at the next existing time, as cron does.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Duration, Local, TimeZone, Utc};
use croner::Cron;

use crate::error::{Error, ErrorKind, Result};

/// The default: every day at 02:00, as the old system did.
pub const DEFAULT_CRON: &str = "0 2 * * *";

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Option<chrono_tz::Tz>,
    expr: String,
}

impl Schedule {
    /// Parse a 5-field cron expression, in `zone` (an IANA name) or the computer's local time.
    ///
    /// # Errors
    /// `InvalidInput` naming what is wrong.
    pub fn parse(expr: &str, zone: Option<&str>) -> Result<Schedule> {
        let cron = Cron::from_str(expr.trim()).map_err(|e| {
            Error::new(
                ErrorKind::InvalidInput,
                format!("{expr:?} is not a cron expression ({e})"),
                "Write five fields: minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\" for every day at 02:00",
            )
        })?;
        let zone = match zone {
            Some(z) => Some(chrono_tz::Tz::from_str(z).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("{z:?} is not a time zone"),
                    "Use an IANA name such as Asia/Kolkata or Europe/London, or leave it out for this computer's time",
                )
            })?),
            None => None,
        };
        Ok(Schedule {
            cron,
            zone,
            expr: expr.trim().to_string(),
        })
    }

    /// The expression, as given.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    fn next_in<Z: TimeZone>(&self, zone: &Z, after: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let mut t = after.with_timezone(zone);
        for _ in 0..4 {
            let next = self.cron.find_next_occurrence(&t, false).map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("The schedule {:?} has no next run ({e})", self.expr),
                    "Check the cron expression",
                )
            })?;
            // The second pass through an hour that a DST change repeats is not a new slot.
            let hour_before = (next.clone() - Duration::hours(1)).naive_local();
            if hour_before == next.naive_local() {
                t = next;
                continue;
            }
            return Ok(next.with_timezone(&Utc));
        }
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("The schedule {:?} has no next run", self.expr),
            "Check the cron expression",
        ))
    }

    /// The first slot strictly after `after`.
    ///
    /// # Errors
    /// `InvalidInput` for an expression that never matches (31 February).
    pub fn next_after(&self, after: DateTime<Utc>) -> Result<DateTime<Utc>> {
        match &self.zone {
            Some(z) => self.next_in(z, after),
            None => self.next_in(&Local, after),
        }
    }

    /// The next `n` slots after `after`.
    ///
    /// # Errors
    /// As [`Schedule::next_after`].
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Result<Vec<DateTime<Utc>>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        for _ in 0..n {
            t = self.next_after(t)?;
            out.push(t);
        }
        Ok(out)
    }

    /// The latest slot in `(since, now]`: what is due. Several missed slots make one run.
    /// With no `since` (no backup ever succeeded, and no look at the schedule before), the
    /// latest slot of the last year is due; callers pass the time of their first look instead,
    /// so a new installation waits for its first slot.
    ///
    /// # Errors
    /// As [`Schedule::next_after`].
    pub fn due(&self, since: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<Option<Due>> {
        let floor = since.unwrap_or(now - Duration::days(366));
        if floor >= now {
            return Ok(None);
        }
        // The latest slot: walking forward from `floor` would take half a million steps for a
        // schedule that runs every minute, so look in growing windows back from now; the first
        // window that holds a slot holds the latest one.
        let mut latest = None;
        // The last window starts at `floor` itself (a slot rarer than yearly: 29 February).
        for window in [
            Duration::hours(1),
            Duration::days(1),
            Duration::days(32),
            Duration::days(367),
            now - floor,
        ] {
            let start = (now - window).max(floor);
            let mut t = start;
            loop {
                let next = self.next_after(t)?;
                if next > now {
                    break;
                }
                latest = Some(next);
                t = next;
            }
            if latest.is_some() || start == floor {
                break;
            }
        }
        let Some(slot) = latest else {
            return Ok(None);
        };
        // How many slots passed since `since`, counted up to a bound (a number for a person,
        // not a loop over a year of minutes).
        let missed = match since {
            None => 1,
            Some(since) => {
                let mut n = 0u32;
                let mut t = since;
                while n < MISSED_COUNT_LIMIT {
                    let next = self.next_after(t)?;
                    if next > now {
                        break;
                    }
                    n += 1;
                    t = next;
                }
                n
            }
        };
        Ok(Some(Due {
            slot,
            // Late by more than a few minutes: the machine was off or asleep at the slot.
            catch_up: now - slot > Duration::minutes(5),
            missed_slots: missed,
        }))
    }
}

/// Missed slots are counted up to this many (a schedule every minute, off for a month).
pub const MISSED_COUNT_LIMIT: u32 = 10_000;

/// A slot that should run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Due {
    /// The slot's time.
    pub slot: DateTime<Utc>,
    /// Whether it is run late, to make up for a missed slot.
    pub catch_up: bool,
    /// How many slots passed since the last success (they make this one run).
    pub missed_slots: u32,
}

/// Held while a backup runs: one at a time across the app and the CLI. Released on drop (and by
/// the OS if the process dies, so a crash never leaves a stale lock).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Take the lock in `dir`, or fail at once if another run holds it.
    ///
    /// # Errors
    /// `Busy` ("another backup is running") when it is held; I/O errors.
    pub fn try_acquire(dir: &Path) -> Result<RunLock> {
        crate::storage::create_private_dir(dir)
            .map_err(|e| Error::io(format_args!("creating {}", dir.display()), &e))?;
        let path = dir.join("run.lock");
        let file = crate::storage::private_options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format_args!("opening {}", path.display()), &e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::new(
                ErrorKind::Busy,
                "Another backup or restore is running on this computer (the app or another schoolvault)",
                "Wait for it to finish, then try again",
            )),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(format_args!("locking {}", path.display()), &e))
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, Timelike};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .expect("time")
    }

    #[test]
    fn daily_at_two_across_daylight_saving_changes() {
        for zone in ["Europe/Berlin", "America/New_York", "Asia/Kolkata"] {
            let s = Schedule::parse(DEFAULT_CRON, Some(zone)).expect("parse");
            let tz: chrono_tz::Tz = zone.parse().expect("tz");
            // Spring and autumn 2026, in both hemispheres' northern changes.
            for start in ["2026-03-01T00:00:00Z", "2026-10-20T00:00:00Z"] {
                let runs = s.upcoming(utc(start), 20).expect("upcoming");
                let days: Vec<_> = runs
                    .iter()
                    .map(|r| r.with_timezone(&tz).date_naive())
                    .collect();
                for w in days.windows(2) {
                    assert_eq!(
                        w[1],
                        w[0].succ_opt().expect("day"),
                        "{zone}: one run a day, none twice: {runs:?}"
                    );
                }
                for r in &runs {
                    let local = r.with_timezone(&tz);
                    // 02:00, or 03:00 on the night 02:00 does not exist.
                    assert!(
                        local.minute() == 0 && (local.hour() == 2 || local.hour() == 3),
                        "{zone}: {local}"
                    );
                }
            }
        }
        // The repeated hour in Berlin (25 October 2026): 02:30 runs once.
        let s = Schedule::parse("30 2 * * *", Some("Europe/Berlin")).expect("parse");
        let runs = s
            .upcoming(utc("2026-10-24T12:00:00Z"), 3)
            .expect("upcoming");
        assert_eq!(runs[0].day(), 25);
        assert_eq!(runs[1].day(), 26, "{runs:?}");
    }

    #[test]
    fn three_missed_days_make_one_catch_up_run() {
        let s = Schedule::parse(DEFAULT_CRON, Some("UTC")).expect("parse");
        let last_success = utc("2026-11-20T02:00:30Z");
        let now = utc("2026-11-23T09:15:00Z");
        let due = s
            .due(Some(last_success), now)
            .expect("due")
            .expect("something is due");
        assert_eq!(due.slot, utc("2026-11-23T02:00:00Z"));
        assert!(due.catch_up);
        assert_eq!(due.missed_slots, 3);
        // After that run succeeds, nothing is due until tomorrow.
        assert_eq!(
            s.due(Some(utc("2026-11-23T09:16:00Z")), now).expect("due"),
            None
        );
        // On time: not a catch-up.
        let due = s
            .due(Some(last_success), utc("2026-11-21T02:00:10Z"))
            .expect("due")
            .expect("due");
        assert!(!due.catch_up);
        // Never backed up: the latest slot is due.
        let due = s.due(None, now).expect("due").expect("due");
        assert_eq!(due.slot, utc("2026-11-23T02:00:00Z"));
    }

    #[test]
    fn what_is_due_is_the_latest_slot_whatever_the_gap() {
        // Every minute, never backed up: the minute just passed, not one from months ago (the
        // old walk stopped after 100,000 steps and returned a slot ten months old).
        let s = Schedule::parse("* * * * *", Some("UTC")).expect("parse");
        let now = utc("2026-12-03T10:15:30Z");
        let due = s.due(None, now).expect("due").expect("due");
        assert_eq!(due.slot, utc("2026-12-03T10:15:00Z"));
        assert!(!due.catch_up);
        // Off for a year: one run for the latest slot, the count stops at its bound.
        let due = s
            .due(Some(utc("2025-12-01T00:00:00Z")), now)
            .expect("due")
            .expect("due");
        assert_eq!(due.slot, utc("2026-12-03T10:15:00Z"));
        assert_eq!(due.missed_slots, MISSED_COUNT_LIMIT);
        // Monthly, last success two months ago: the latest first of the month.
        let m = Schedule::parse("0 2 1 * *", Some("UTC")).expect("parse");
        let due = m
            .due(Some(utc("2026-10-01T02:00:10Z")), now)
            .expect("due")
            .expect("due");
        assert_eq!(due.slot, utc("2026-12-01T02:00:00Z"));
        assert_eq!(due.missed_slots, 2);
        assert!(due.catch_up);
        // Every 29 February, last success six years ago: the 2024 slot.
        let leap = Schedule::parse("0 2 29 2 *", Some("UTC")).expect("parse");
        let due = leap
            .due(Some(utc("2020-03-01T00:00:00Z")), now)
            .expect("due")
            .expect("due");
        assert_eq!(due.slot, utc("2024-02-29T02:00:00Z"));
        // Yearly, never backed up: last year's slot is still found.
        let y = Schedule::parse("0 2 1 1 *", Some("UTC")).expect("parse");
        let due = y.due(None, now).expect("due").expect("due");
        assert_eq!(due.slot, utc("2026-01-01T02:00:00Z"));
        // Counted from a first look after the slot: nothing is due yet.
        assert_eq!(
            s.due(Some(utc("2026-12-03T10:15:10Z")), now).expect("due"),
            None
        );
        assert_eq!(s.due(Some(now), now).expect("due"), None);
    }

    #[test]
    fn bad_expressions_and_zones_say_what_is_wrong() {
        let e = Schedule::parse("every night", None).expect_err("bad");
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        let e = Schedule::parse(DEFAULT_CRON, Some("Mars/Olympus")).expect_err("bad");
        assert!(e.message().contains("Mars/Olympus"));
    }

    #[test]
    fn one_run_at_a_time() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = RunLock::try_acquire(dir.path()).expect("first");
        let second = RunLock::try_acquire(dir.path()).expect_err("second");
        assert!(second.message().contains("Another backup"));
        drop(first);
        RunLock::try_acquire(dir.path()).expect("free again");
    }
}
