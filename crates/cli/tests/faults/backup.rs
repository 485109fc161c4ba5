//! A backup killed or cut off from its server.

use super::*;

#[test]
fn kill_during_backup() {
    let db = school_db("fbackup");
    let probe = probe_db();
    let env = Env::new();
    let url = db.url();
    let args = ["--db", url.as_str(), "backup"];
    let mut t = Tally::new("backup", measure(&env, &args));
    let keep = ids(&listed(&env, &mut t));
    assert_eq!(keep.len(), 1);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let e = run(&env, &args, Some(at), None);
        landed(&e, &mut t, at);
        t.check(sessions_gone(&[&db.name]), || {
            "the killed backup's sessions were still open after a minute".into()
        });
        let a = after_fault(&env, &probe, &mut t, &keep, &keep);
        t.outcome(match (a.new_listed, a.unlisted_files) {
            (0, 0) => "no backup",
            (0, _) => "file renamed, not yet listed",
            _ => "complete backup listed",
        });
    }
    t.finish("kills");
}

#[test]
fn terminate_the_connection_during_backup() {
    let db = school_db("fterm");
    let probe = probe_db();
    let env = Env::new();
    let url = db.url();
    let args = ["--db", url.as_str(), "backup"];
    let mut t = Tally::new("backup, connection terminated", measure(&env, &args));
    let keep = ids(&listed(&env, &mut t));
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let at = t.moment();
        let mut terminated = false;
        let mut inject = || {
            terminated = terminated || terminate_sessions(&db.name) > 0;
            terminated
        };
        let e = run(&env, &args, Some(at), Some(&mut inject));
        let failed = loud_failure(&e, &mut t, at, terminated);
        if failed {
            // Nothing of the failed backup is left, even before the next backup.
            let (finals, partials) = folder(&env);
            t.check(partials == 0, || {
                "a failed backup left its .partial file".to_string()
            });
            t.check(finals.len() == keep.len(), || {
                format!("a failed backup left a file: {finals:?}")
            });
        }
        let a = after_fault(&env, &probe, &mut t, &keep, &keep);
        t.check(!failed || a.new_listed == 0, || {
            "a failed backup is listed".to_string()
        });
        if !failed {
            t.outcome("finished before the termination");
        }
    }
    t.finish("terminations");
}
