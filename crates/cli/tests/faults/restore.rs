//! Restores (replace, new database, refused, test, v1) killed or cut off.

use super::*;

#[test]
fn kill_during_replace_restore() {
    let s = RestoreSetup::new("freplace");
    let url = s.db.url();
    let args = ["--db", url.as_str(), "restore", s.id.as_str(), "--yes"];
    let keep: BTreeSet<String> = [s.id.clone()].into();
    let mut t = Tally::new("replace restore", measure(&s.env, &args));
    assert_eq!(s.db.checksums(), s.backup);
    reset_target(&s.db, &mut t, SCHOOL_CHANGES, Some(true), &s.before);
    // The measured run's safety backup.
    after_fault(&s.env, &s.probe, &mut t, &keep, &keep);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&s.env, &args, Some(at), None);
        landed(&e, &mut t, at);
        t.check(sessions_gone(&[&s.db.name]), || {
            "the killed restore's sessions were still open after a minute".into()
        });
        let restored = target_state(&s.db, &mut t, &s.before, &s.backup);
        let a = after_fault(&s.env, &s.probe, &mut t, &keep, &keep);
        t.outcome(match restored {
            Some(true) => "target restored",
            Some(false) => "target unchanged",
            None => "target MIXED",
        });
        if a.new_listed > 0 {
            t.outcome("safety backup listed");
        }
        reset_target(&s.db, &mut t, SCHOOL_CHANGES, restored, &s.before);
    }
    t.finish("kills");
}

#[test]
fn kill_during_restore_into_a_new_database() {
    let db = school_db("fcreate");
    let probe = probe_db();
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let source = db.checksums();
    // Dropped at the end whatever happens.
    let copy = TestDb {
        name: format!("{}_new", db.name),
    };
    let url = db.url();
    let args = [
        "--db",
        url.as_str(),
        "restore",
        id.as_str(),
        "--yes",
        "--create-db",
        copy.name.as_str(),
    ];
    let keep: BTreeSet<String> = [id.clone()].into();
    let mut t = Tally::new("restore --create-db", measure(&env, &args));
    assert_eq!(copy.checksums(), source);
    drop_database(&copy.name);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&env, &args, Some(at), None);
        landed(&e, &mut t, at);
        t.check(sessions_gone(&[&db.name, &copy.name]), || {
            "the killed restore's sessions were still open after a minute".into()
        });
        let left = database_exists(&copy.name);
        after_fault(&env, &probe, &mut t, &keep, &keep);
        if database_exists(&copy.name) {
            let same = copy.checksums() == source;
            t.check(same, || {
                format!(
                    "database {} is left after the next backup and differs from the source",
                    copy.name
                )
            });
            t.outcome("complete copy kept");
            drop_database(&copy.name);
        } else if left {
            t.outcome("left, dropped by the next backup");
        } else {
            t.outcome("not created");
        }
    }
    t.finish("kills");
}

/// `restore --create-db NAME` naming a database that exists is refused, and must stay
/// refused when killed: the next backup's clean-up must never drop that database.
#[test]
fn kill_during_a_refused_restore_into_an_existing_database() {
    let db = TestDb::new("fexisting");
    db.sql(
        "CREATE TABLE precious (id int PRIMARY KEY, what text NOT NULL); \
         INSERT INTO precious SELECT i, 'row ' || i FROM generate_series(1, 1000) i",
    );
    let probe = probe_db();
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let source = db.checksums();
    let url = db.url();
    // The person typed the live database's name by mistake.
    let args = [
        "--db",
        url.as_str(),
        "restore",
        id.as_str(),
        "--yes",
        "--create-db",
        db.name.as_str(),
    ];
    let t0 = Instant::now();
    let first = run(&env, &args, None, None);
    let mut t = Tally::new("restore --create-db EXISTING", t0.elapsed());
    assert_eq!(
        first.error_code().as_deref(),
        Some("target_mismatch"),
        "{}",
        first.stderr
    );
    let keep: BTreeSet<String> = [id.clone()].into();
    // A refusal is quick: more rounds for the same cost.
    let n = kills() * 3;
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&env, &args, Some(at), None);
        t.ended(at, &e, e.killed);
        if !e.killed {
            t.check(e.error_code().as_deref() == Some("target_mismatch"), || {
                format!("not refused: {}", e.stderr.trim())
            });
        }
        after_fault(&env, &probe, &mut t, &keep, &keep);
        if !database_exists(&db.name) {
            t.problem(format!(
                "database {} (not SchoolVault's) was dropped after a killed refused restore",
                db.name
            ));
            t.outcome("database LOST");
            break;
        }
        let same = db.checksums() == source;
        t.check(same, || format!("database {} changed", db.name));
        t.outcome("database untouched");
    }
    t.finish("kills");
}

#[test]
fn kill_during_test_restore() {
    let db = school_db("ftest");
    let probe = probe_db();
    let env = Env::new();
    let b = env.json(&["--db", &db.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let scratch = format!("schoolvault_verify_{}", id.replace('-', "_")).to_lowercase();
    // Dropped at the end whatever happens.
    let _scratch = TestDb {
        name: scratch.clone(),
    };
    let url = db.url();
    let args = [
        "--db",
        url.as_str(),
        "verify",
        id.as_str(),
        "--test-restore",
    ];
    let keep: BTreeSet<String> = [id.clone()].into();
    let mut t = Tally::new("verify --test-restore", measure(&env, &args));
    assert!(!database_exists(&scratch));
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&env, &args, Some(at), None);
        landed(&e, &mut t, at);
        t.check(sessions_gone(&[&scratch]), || {
            "the killed test restore's sessions were still open after a minute".into()
        });
        let left = database_exists(&scratch);
        after_fault(&env, &probe, &mut t, &keep, &keep);
        t.check(!database_exists(&scratch), || {
            format!("scratch database {scratch} is left after the next backup")
        });
        t.outcome(if left {
            "scratch left, dropped by the next backup"
        } else {
            "no scratch left"
        });
        let entry = listed(&env, &mut t)
            .into_iter()
            .find(|b| b["id"] == id.as_str());
        t.check(entry.is_some_and(|b| b["verify_ok"] != false), || {
            format!("backup {id} is marked as failed verification after a killed test restore")
        });
    }
    t.finish("kills");
}

#[test]
fn kill_during_v1_restore() {
    let Some(fx) = fixtures() else { return };
    if kills() < LONG_FORM {
        eprintln!(
            "faults: v1 restore: skipped in the short form (SCHOOLVAULT_FAULT_KILLS={} < {LONG_FORM}): \
             loading the ERP fixture takes 20 s; `make faults` runs it",
            kills()
        );
        return;
    }
    let db = erp_db(&fx);
    let probe = probe_db();
    let mut env = Env::new();
    env.key = std::fs::read_to_string(fx.join("v1/erp-small.key"))
        .unwrap()
        .trim()
        .to_string();
    let enc = fx.join("v1/erp-small.enc");
    db.sql(ERP_CHANGES);
    let url = db.url();
    let args = [
        "--db",
        url.as_str(),
        "restore",
        enc.to_str().unwrap(),
        "--yes",
    ];
    let mut t = Tally::new("v1 restore", measure(&env, &args));
    let merged = db.checksums();
    db.sql(ERP_CHANGES);
    let before = db.checksums();
    assert_ne!(before, merged);
    let keep = BTreeSet::new();
    // The measured run's safety backup.
    after_fault(&env, &probe, &mut t, &keep, &keep);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&env, &args, Some(at), None);
        landed(&e, &mut t, at);
        t.check(sessions_gone(&[&db.name]), || {
            "the killed restore's sessions were still open after a minute".into()
        });
        let restored = target_state(&db, &mut t, &before, &merged);
        let a = after_fault(&env, &probe, &mut t, &keep, &keep);
        t.outcome(match restored {
            Some(true) => "target merged",
            Some(false) => "target unchanged",
            None => "target MIXED",
        });
        if a.new_listed > 0 {
            t.outcome("safety backup listed");
        }
        reset_target(&db, &mut t, ERP_CHANGES, restored, &before);
    }
    t.finish("kills");
}

#[test]
fn terminate_the_connection_during_restore() {
    let s = RestoreSetup::new("ftermrestore");
    let url = s.db.url();
    let args = [
        "--db",
        url.as_str(),
        "restore",
        s.id.as_str(),
        "--yes",
        "--no-safety-backup",
    ];
    let keep: BTreeSet<String> = [s.id.clone()].into();
    let mut t = Tally::new("restore, connection terminated", measure(&s.env, &args));
    reset_target(&s.db, &mut t, SCHOOL_CHANGES, Some(true), &s.before);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let mut terminated = false;
        let mut inject = || {
            terminated = terminated || terminate_sessions(&s.db.name) > 0;
            terminated
        };
        let e = run(&s.env, &args, Some(at), Some(&mut inject));
        let failed = loud_failure(&e, &mut t, at, terminated);
        t.check(sessions_gone(&[&s.db.name]), || {
            "the restore's sessions were still open after a minute".into()
        });
        let restored = target_state(&s.db, &mut t, &s.before, &s.backup);
        t.check(failed || restored == Some(true), || {
            "the restore succeeded but the target is not the backup".to_string()
        });
        t.outcome(match restored {
            Some(true) => "target restored",
            Some(false) => "target unchanged",
            None => "target MIXED",
        });
        after_fault(&s.env, &s.probe, &mut t, &keep, &keep);
        reset_target(&s.db, &mut t, SCHOOL_CHANGES, restored, &s.before);
    }
    t.finish("terminations");
}
