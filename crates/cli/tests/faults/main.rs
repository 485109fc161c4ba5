//! Fault injection: the `schoolvault` process is killed with SIGKILL (`kill -9`, which no
//! program can catch or clean up after) at random moments of each operation, and after every
//! kill nothing may be lost or half-done:
//! - `list --json` shows only complete backups whose files exist, and every backup listed
//!   before the kill is still listed (prune and rescan: see their tests);
//! - the next `backup` leaves no `*.partial` file in the backup folder;
//! - no scratch database (`schoolvault_verify_<id>`) or `--create-db` database is left on the
//!   server after that next backup, and a `--create-db` database that is left equals the
//!   source;
//! - a restore's target is exactly as before or exactly the backup, never a mix;
//! - every backup still verifies (`verify ID`), and so does any file with a final name.
//!
//! The moment of each kill is drawn uniformly between 0 and the operation's undisturbed
//! duration, measured first in the same test, so kills land in every phase (the phase each
//! kill interrupted is read from the `--json` progress lines). Also, the database connection
//! is terminated from the server (`pg_terminate_backend`) in the middle of a backup and of a
//! restore: the command fails loudly, lists nothing it did not finish, and the target is
//! unchanged or fully restored.
//!
//! `SCHOOLVAULT_FAULT_KILLS` sets the kills per operation: 3 by default (the short form,
//! part of `cargo test`), 20 in `make faults` (the long form, which also restores the old
//! system's v1 fixture files into the ERP database). Each test prints one summary line to
//! stderr: run with `--nocapture` to see them.
#![cfg(unix)]
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

// The tests, by what they cover (one test binary).
mod backup;
mod maintenance;
mod restore;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;
use support::{erp_db, fixtures, psql, school_sql, Env, TestDb};

/// Kills per operation.
fn kills() -> usize {
    std::env::var("SCHOOLVAULT_FAULT_KILLS")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// From this many kills on, the run is the long form (`make faults`).
const LONG_FORM: usize = 10;

/// The demo school's volume (about 300,000 rows), loaded after `school.sql`.
fn demo_volume() -> PathBuf {
    support::workspace_root().join("crates/engine/src/demo/volume.sql")
}

/// The school database with the demo school's volume for 700 students instead of 1,200
/// (about 190,000 rows): alone on this machine a backup takes about a second, a restore with
/// its safety backup three.
fn school_db(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix);
    db.load(&school_sql(), &[]);
    let volume = std::fs::read_to_string(demo_volume()).unwrap();
    // Should the file change, its own size is used.
    let volume = volume.replace("generate_series(1, 1200)", "generate_series(1, 700)");
    let file = std::env::temp_dir().join(format!("{}-volume.sql", db.name));
    std::fs::write(&file, volume).unwrap();
    db.load(&file, &[]);
    let _ = std::fs::remove_file(&file);
    db
}

/// A tiny database on the same server, for the "next backup" after each kill.
fn probe_db() -> TestDb {
    let db = TestDb::new("fprobe");
    db.sql(
        "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL); \
         INSERT INTO notes SELECT i, 'note ' || i FROM generate_series(1, 20) i",
    );
    db
}

/// Changes after the school database's backup: deterministic, and none of them fires a
/// trigger, so applying them again to the restored database gives the same state.
const SCHOOL_CHANGES: &str = "DELETE FROM attendance WHERE day < '2025-06-01'; \
    UPDATE finance.\"Fee Payments\" SET amount = 0, payload = NULL WHERE id % 7 = 0; \
    INSERT INTO attendance (student_id, day, present, note) \
      SELECT id, '2030-01-01', true, 'after the backup' FROM students;";

/// The same for the ERP database and the old system's file (the rows a merge brings back).
const ERP_CHANGES: &str = "SET session_replication_role = replica; \
    DELETE FROM \"StudentAttendance\" WHERE id IN (SELECT id FROM \"StudentAttendance\" ORDER BY id LIMIT 25); \
    DELETE FROM \"Notification\" WHERE id IN (SELECT id FROM \"Notification\" ORDER BY id LIMIT 5); \
    UPDATE \"User\" SET name = 'changed' WHERE id IN (SELECT id FROM \"User\" ORDER BY id LIMIT 10); \
    UPDATE \"FeePayment\" SET remarks = 'changed' WHERE id IN (SELECT id FROM \"FeePayment\" ORDER BY id LIMIT 10);";

fn database_exists(name: &str) -> bool {
    psql(
        "postgres",
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{name}'"),
    ) == "1"
}

fn drop_database(name: &str) {
    psql(
        "postgres",
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    );
}

/// Wait until the server has ended the sessions a killed run had open on `dbs` (a backend
/// notices a vanished client at its next read or write). False after a minute.
fn sessions_gone(dbs: &[&str]) -> bool {
    let list = dbs
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let n = psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'schoolvault' \
                 AND datname IN ({list})"
            ),
        );
        if n == "0" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// End every session of SchoolVault on database `db`; how many there were.
fn terminate_sessions(db: &str) -> u32 {
    psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = 'schoolvault' AND datname = '{db}'"
        ),
    )
    .parse()
    .unwrap()
}

/// `schoolvault --json ARGS`: the JSON document, or the stderr of a failure.
fn cli(env: &Env, args: &[&str]) -> Result<Value, String> {
    let out = env.cmd().arg("--json").args(args).output().unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("{args:?}: no JSON on stdout ({e})"))
    } else {
        Err(format!(
            "schoolvault {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How a spawned run ended.
struct Ended {
    status: ExitStatus,
    /// Killed by our SIGKILL (not finished before it).
    killed: bool,
    /// What it was doing when it ended: the last progress phase it reported.
    phase: String,
    stdout: String,
    stderr: String,
}

impl Ended {
    /// The `error:` lines of its stderr.
    fn error_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect()
    }
    /// The JSON error code on stdout, if any.
    fn error_code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.stdout)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
    }
}

/// The phase a run was in, from its `--json` progress lines: inside the safety backup of a
/// restore, `safety backup: <phase>`; `before any progress` before the first line.
fn last_phase(stderr: &str) -> String {
    let mut phase = "before any progress".to_string();
    let mut in_safety = false;
    for line in stderr.lines().filter(|l| l.starts_with('{')) {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(p) = v["phase"].as_str() else {
            continue;
        };
        match p {
            "safety_backup" => in_safety = true,
            "restore" | "commit" => in_safety = false,
            _ => {}
        }
        phase = if in_safety && p != "safety_backup" {
            format!("safety backup: {p}")
        } else {
            p.replace('_', " ")
        };
    }
    phase
}

/// Run `schoolvault --json ARGS`; `kill_after`: SIGKILL it then, unless it has finished.
/// `during`: called every 20 ms while it runs after `kill_after` (instead of killing it) when
/// given, until it returns true (the fault was injected).
fn run(
    env: &Env,
    args: &[&str],
    kill_after: Option<Duration>,
    mut during: Option<&mut dyn FnMut() -> bool>,
) -> Ended {
    let err_file = env
        .dir
        .path()
        .join(format!("stderr-{:08x}.txt", rand::random::<u32>()));
    let out_file = err_file.with_extension("out");
    let mut child = env
        .std_cmd()
        .arg("--json")
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::fs::File::create(&err_file).unwrap())
        .spawn()
        .unwrap();
    let mut killed = false;
    if let Some(delay) = kill_after {
        let start = Instant::now();
        while start.elapsed() < delay {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep((delay - start.elapsed().min(delay)).min(Duration::from_millis(5)));
        }
        match during.as_mut() {
            None => {
                if child.try_wait().unwrap().is_none() {
                    // std's Child::kill sends SIGKILL on Unix.
                    child.kill().unwrap();
                }
            }
            Some(inject) => {
                while child.try_wait().unwrap().is_none() && !inject() {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    let status = child.wait().unwrap();
    if during.is_none() && kill_after.is_some() {
        // Killed only if it did not exit on its own first (it may have, between our look and
        // the signal).
        killed = status.signal() == Some(9);
    }
    let stderr = std::fs::read_to_string(&err_file).unwrap_or_default();
    let stdout = std::fs::read_to_string(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&err_file);
    let _ = std::fs::remove_file(&out_file);
    Ended {
        status,
        killed,
        phase: last_phase(&stderr),
        stdout,
        stderr,
    }
}

/// Run undisturbed; its duration. Panics unless it succeeds.
fn measure(env: &Env, args: &[&str]) -> Duration {
    let t = Instant::now();
    let e = run(env, args, None, None);
    let d = t.elapsed();
    assert!(
        e.status.success(),
        "the undisturbed schoolvault {args:?} failed: {}",
        e.stderr
    );
    d
}

/// The figures of one operation's faults, printed as one line at the end.
struct Tally {
    op: &'static str,
    undisturbed: Duration,
    moments: Vec<u64>,
    finished_first: usize,
    phases: BTreeMap<String, usize>,
    outcomes: BTreeMap<String, usize>,
    partials_left: usize,
    problems: Vec<String>,
}

impl Tally {
    fn new(op: &'static str, undisturbed: Duration) -> Tally {
        Tally {
            op,
            undisturbed,
            moments: Vec::new(),
            finished_first: 0,
            phases: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            partials_left: 0,
            problems: Vec::new(),
        }
    }
    /// A random moment within the undisturbed duration.
    fn moment(&self) -> Duration {
        let max = self.undisturbed.as_micros() as u64;
        Duration::from_micros(rand::thread_rng().gen_range(0..=max))
    }
    /// Record a run ended at `at`: a kill (or an injected fault), or one that finished first.
    fn ended(&mut self, at: Duration, e: &Ended, landed: bool) {
        if landed {
            self.moments.push(at.as_micros() as u64);
            *self.phases.entry(e.phase.clone()).or_default() += 1;
        } else {
            self.finished_first += 1;
        }
    }
    fn outcome(&mut self, what: impl Into<String>) {
        *self.outcomes.entry(what.into()).or_default() += 1;
    }
    fn problem(&mut self, what: String) {
        eprintln!("faults: {}: PROBLEM: {what}", self.op);
        self.problems.push(what);
    }
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problem(what());
        }
    }
    fn kills(&self) -> usize {
        self.moments.len()
    }
    fn counts(map: &BTreeMap<String, usize>) -> String {
        map.iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// Print the summary line; fail the test if a check failed.
    fn finish(self, what: &str) {
        // Moments are drawn in microseconds; distinct counts whole milliseconds.
        let distinct: BTreeSet<u64> = self.moments.iter().map(|m| m / 1000).collect();
        let (lo, hi) = (
            self.moments.iter().min().copied().unwrap_or(0),
            self.moments.iter().max().copied().unwrap_or(0),
        );
        let mut line = format!(
            "faults: {}: {} {what}, {} at distinct moments ({:.2}-{:.2} s into a {:.2} s run)",
            self.op,
            self.kills(),
            distinct.len(),
            lo as f64 / 1e6,
            hi as f64 / 1e6,
            self.undisturbed.as_secs_f64()
        );
        if self.finished_first > 0 {
            line += &format!(", {} more finished first", self.finished_first);
        }
        line += &format!("; phases: {}", Self::counts(&self.phases));
        line += &format!("; outcomes: {}", Self::counts(&self.outcomes));
        if self.partials_left > 0 {
            line += &format!(
                "; {} left a .partial file, removed by the next backup",
                self.partials_left
            );
        }
        line += &format!("; {} problems", self.problems.len());
        eprintln!("{line}");
        assert!(
            self.problems.is_empty(),
            "{}: {} problems:\n{}",
            self.op,
            self.problems.len(),
            self.problems.join("\n")
        );
    }
}

/// The backup folder: files with a final name (`.svb`, `.enc`), and the number of `.partial`.
fn folder(env: &Env) -> (Vec<PathBuf>, usize) {
    let (mut finals, mut partials) = (Vec::new(), 0);
    for p in env.files() {
        match p.extension().and_then(|x| x.to_str()) {
            Some("partial") => partials += 1,
            Some("svb") | Some("enc") => finals.push(p),
            _ => {}
        }
    }
    (finals, partials)
}

fn listed(env: &Env, t: &mut Tally) -> Vec<Value> {
    match cli(env, &["list"]) {
        Ok(v) => v.as_array().cloned().unwrap_or_default(),
        Err(e) => {
            t.problem(format!("list failed after a kill: {e}"));
            Vec::new()
        }
    }
}

fn ids(list: &[Value]) -> BTreeSet<String> {
    list.iter()
        .map(|b| b["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// What [`after_fault`] found besides problems.
struct After {
    /// Entries listed now that were not before.
    new_listed: usize,
    /// Files with a final name that no entry lists (renamed, not yet recorded).
    unlisted_files: usize,
}

/// The checks after a kill, common to every operation: the list, the next backup (of the
/// probe database, on the same server and into the same folder), the verification of every
/// listed backup and of every file with a final name. Then it removes what the kill and the
/// checks added (listed entries not in `keep`, unlisted files), so that every round starts
/// from the same backups.
fn after_fault(
    env: &Env,
    probe: &TestDb,
    t: &mut Tally,
    before: &BTreeSet<String>,
    keep: &BTreeSet<String>,
) -> After {
    let list = listed(env, t);
    for b in &list {
        let id = b["id"].as_str().unwrap_or_default();
        t.check(b["status"] == "complete", || {
            format!("backup {id} is listed as {} after a kill", b["status"])
        });
        let path = Path::new(b["path"].as_str().unwrap_or_default());
        t.check(path.is_file(), || {
            format!(
                "backup {id} is listed but its file {} is gone",
                path.display()
            )
        });
    }
    let now = ids(&list);
    for id in before.difference(&now) {
        t.problem(format!(
            "backup {id}, listed before the kill, is no longer listed"
        ));
    }
    let (finals, partials) = folder(env);
    if partials > 0 {
        t.partials_left += 1;
    }
    let listed_paths: BTreeSet<PathBuf> = list
        .iter()
        .map(|b| PathBuf::from(b["path"].as_str().unwrap_or_default()))
        .collect();
    let unlisted: Vec<PathBuf> = finals
        .into_iter()
        .filter(|p| !listed_paths.contains(p))
        .collect();

    // The next backup: it must work, and sweep what the killed run left.
    if let Err(e) = cli(env, &["--db", &probe.url(), "backup"]) {
        t.problem(format!("the next backup failed: {e}"));
    }
    let (_, partials) = folder(env);
    t.check(partials == 0, || {
        format!("{partials} .partial file(s) left after the next backup")
    });

    // Every backup verifies, and so does every file with a final name.
    let list = listed(env, t);
    for id in ids(&list) {
        if let Err(e) = cli(env, &["verify", &id]) {
            t.problem(format!("backup {id} does not verify after a kill: {e}"));
        }
    }
    for p in &unlisted {
        if let Err(e) = cli(env, &["verify", p.to_str().unwrap()]) {
            t.problem(format!(
                "{} has a final name but does not verify: {e}",
                p.display()
            ));
        }
    }
    let new_listed = now.difference(before).count();
    // Back to the same backups for the next round.
    for id in ids(&list).difference(keep) {
        if let Err(e) = cli(env, &["delete", id, "--yes"]) {
            t.problem(format!("cannot delete {id}: {e}"));
        }
    }
    for p in &unlisted {
        let _ = std::fs::remove_file(p);
    }
    After {
        new_listed,
        unlisted_files: unlisted.len(),
    }
}

/// Compare a restore target with the state before the restore and the backup's.
fn target_state(
    db: &TestDb,
    t: &mut Tally,
    before: &BTreeMap<String, String>,
    backup: &BTreeMap<String, String>,
) -> Option<bool> {
    let now = db.checksums();
    if &now == before {
        Some(false)
    } else if &now == backup {
        Some(true)
    } else {
        let mixed: Vec<&String> = now
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v) && backup.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        let from_backup = now
            .iter()
            .filter(|(k, v)| backup.get(*k) == Some(*v))
            .count();
        t.problem(format!(
            "the target is neither as before nor the backup: {} of {} tables equal the backup's, these equal neither: {mixed:?}",
            from_backup,
            now.len()
        ));
        None
    }
}

/// Put the restored target back into the state before the restore.
fn reset_target(
    db: &TestDb,
    t: &mut Tally,
    changes: &str,
    restored: Option<bool>,
    before: &BTreeMap<String, String>,
) {
    if restored == Some(true) {
        db.sql(changes);
    }
    let ok = &db.checksums() == before;
    t.check(ok, || {
        "the target could not be put back as before the restore".to_string()
    });
    assert!(ok, "cannot go on: the target is not as before the restore");
}

fn landed(e: &Ended, t: &mut Tally, at: Duration) -> bool {
    t.ended(at, e, e.killed);
    if !e.killed {
        t.check(e.status.success(), || {
            format!("a run that was not killed failed: {}", e.stderr.trim())
        });
    }
    e.killed
}

/// A school database, its backup (the baseline), and the checksums before and after a restore
/// of that backup.
struct RestoreSetup {
    db: TestDb,
    probe: TestDb,
    env: Env,
    id: String,
    /// The state a restore starts from (the backup plus [`SCHOOL_CHANGES`]).
    before: BTreeMap<String, String>,
    /// The backup's state.
    backup: BTreeMap<String, String>,
}

impl RestoreSetup {
    fn new(prefix: &str) -> RestoreSetup {
        let db = school_db(prefix);
        let env = Env::new();
        let b = env.json(&["--db", &db.url(), "backup"]);
        let backup = db.checksums();
        db.sql(SCHOOL_CHANGES);
        let before = db.checksums();
        assert_ne!(before, backup);
        RestoreSetup {
            db,
            probe: probe_db(),
            env,
            id: b["id"].as_str().unwrap().to_string(),
            before,
            backup,
        }
    }
}

/// The checks of a run whose connection was terminated: it failed loudly (one `error:` line,
/// a JSON error, no panic), or it had finished before the termination could land.
fn loud_failure(e: &Ended, t: &mut Tally, at: Duration, terminated: bool) -> bool {
    if e.status.success() {
        t.ended(at, e, false);
        return false;
    }
    t.ended(at, e, true);
    t.check(terminated, || {
        format!("failed without a termination: {}", e.stderr.trim())
    });
    let lines = e.error_lines();
    t.check(lines.len() == 1, || {
        format!("not exactly one error line: {}", e.stderr.trim())
    });
    t.check(!e.stderr.contains("panicked"), || {
        format!("panic: {}", e.stderr.trim())
    });
    match e.error_code() {
        Some(code) => t.outcome(format!("failed loudly ({code})")),
        None => t.problem(format!("no JSON error on stdout: {}", e.stdout.trim())),
    }
    true
}
