//! Rescan and prune killed.

use super::*;

/// Remove the catalog (and its WAL files): rescan rebuilds it from the folder.
fn remove_catalog(env: &Env) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(env.dir.path().join(format!("catalog.sqlite{suffix}")));
    }
}

#[test]
fn kill_during_rescan() {
    let db = school_db("frescan");
    let probe = probe_db();
    let env = Env::new();
    // Two backups in the folder: a large one and a small one.
    let big = env.json(&["--db", &db.url(), "backup"]);
    let small = env.json(&["--db", &probe.url(), "backup"]);
    let all: BTreeSet<String> = [&big, &small]
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_string())
        .collect();
    remove_catalog(&env);
    let mut t = Tally::new("rescan", measure(&env, &["rescan"]));
    assert_eq!(ids(&listed(&env, &mut t)), all);
    let n = kills();
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        // The catalog is lost; rescan rebuilds it from the files.
        remove_catalog(&env);
        let at = t.moment();
        let e = run(&env, &["rescan"], Some(at), None);
        landed(&e, &mut t, at);
        // All or nothing: never a part of the folder.
        let list = listed(&env, &mut t);
        let now = ids(&list);
        t.check(now.is_empty() || now == all, || {
            format!("a killed rescan listed {now:?} of {all:?}")
        });
        t.outcome(if now.is_empty() {
            "catalog empty"
        } else {
            "catalog rebuilt"
        });
        // The next rescan lists both, complete.
        match cli(&env, &["rescan"]) {
            Ok(found) => {
                let complete = found
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["status"] == "complete")
                    .count();
                t.check(complete == 2, || format!("the next rescan found {found}"));
            }
            Err(e) => t.problem(format!("the next rescan failed: {e}")),
        }
        after_fault(&env, &probe, &mut t, &all, &all);
    }
    t.finish("kills");
}

#[test]
fn kill_during_prune() {
    const BACKUPS: usize = 80;
    let probe = probe_db();
    // The backups to prune, made once (two folders at a time, with the same key), then
    // copied into a fresh folder for each round.
    let template = Env::new();
    let makers: Vec<Env> = (0..2)
        .map(|_| {
            let mut e = Env::new();
            e.key = template.key.clone();
            e
        })
        .collect();
    std::thread::scope(|s| {
        for m in &makers {
            let url = probe.url();
            s.spawn(move || {
                for _ in 0..BACKUPS / 2 {
                    m.json(&["--db", &url, "backup"]);
                }
            });
        }
    });
    std::fs::create_dir_all(template.backups()).unwrap();
    for m in &makers {
        for f in m.files() {
            std::fs::copy(&f, template.backups().join(f.file_name().unwrap())).unwrap();
        }
    }
    let policy = ["--keep-days", "0", "--keep-last", "0"];
    let round = || -> (Env, Vec<PathBuf>, BTreeSet<String>, BTreeSet<String>) {
        let mut env = Env::new();
        env.key = template.key.clone();
        std::fs::create_dir_all(env.backups()).unwrap();
        for f in template.files() {
            std::fs::copy(&f, env.backups().join(f.file_name().unwrap())).unwrap();
        }
        let found = env.json(&["rescan"]);
        // Two backups made in the same second may share an id: only complete, listed ones.
        for e in found.as_array().unwrap() {
            if e["status"] != "complete" {
                std::fs::remove_file(e["path"].as_str().unwrap()).unwrap();
            }
        }
        let all = ids(env.json(&["list"]).as_array().unwrap());
        let mut dry = vec!["prune", "--dry-run"];
        dry.extend(policy);
        let planned = ids(env.json(&dry).as_array().unwrap());
        let (files, _) = folder(&env);
        (env, files, all, planned)
    };
    let mut args = vec!["prune"];
    args.extend(policy);
    let (env, _, all, planned) = round();
    assert!(planned.len() + 1 == all.len() && all.len() > BACKUPS / 2);
    let mut t = Tally::new("prune", measure(&env, &args));
    drop(env);
    let n = kills();
    let mut orphans = 0;
    while t.kills() < n && t.kills() + t.finished_first < 3 * n {
        let (env, files, all, planned) = round();
        let kept: BTreeSet<String> = all.difference(&planned).cloned().collect();
        let at = t.moment();
        let mut e = run(&env, &args, Some(at), None);
        let list = listed(&env, &mut t);
        let now = ids(&list);
        let (finals, _) = folder(&env);
        let removed = files.len() - finals.len();
        e.phase = format!("{}0% pruned", removed * 10 / planned.len().max(1));
        landed(&e, &mut t, at);
        // Listed entries are complete and have their file; what the policy keeps is kept.
        for b in &list {
            let id = b["id"].as_str().unwrap_or_default();
            let path = Path::new(b["path"].as_str().unwrap_or_default());
            t.check(b["status"] == "complete", || {
                format!("{id} is listed as {}", b["status"])
            });
            t.check(path.is_file(), || {
                format!("backup {id} is listed but its file is gone")
            });
        }
        for id in kept.difference(&now) {
            t.problem(format!("backup {id}, which the policy keeps, is gone"));
        }
        for id in &now {
            if let Err(e) = cli(&env, &["verify", id]) {
                t.problem(format!("backup {id} does not verify after a kill: {e}"));
            }
        }
        let listed_paths: BTreeSet<&str> = list.iter().filter_map(|b| b["path"].as_str()).collect();
        let unlisted = finals
            .iter()
            .filter(|p| !listed_paths.contains(p.to_str().unwrap()))
            .count();
        orphans += unlisted;
        // The next prune finishes the job.
        match cli(&env, &args) {
            Ok(_) => {
                let now = ids(&listed(&env, &mut t));
                t.check(now == kept, || {
                    format!("after the next prune {now:?} are listed, not {kept:?}")
                });
            }
            Err(e) => t.problem(format!("the next prune failed: {e}")),
        }
        // And the next backup.
        if let Err(e) = cli(&env, &["--db", &probe.url(), "backup"]) {
            t.problem(format!("the next backup failed: {e}"));
        }
        let (_, partials) = folder(&env);
        t.check(partials == 0, || {
            format!("{partials} .partial file(s) left")
        });
        t.outcome(if unlisted > 0 {
            "a file left unlisted"
        } else if now.len() == all.len() {
            "nothing pruned yet"
        } else if now == kept {
            "all pruned"
        } else {
            "partly pruned"
        });
    }
    if orphans > 0 {
        eprintln!("faults: prune: {orphans} complete backup file(s) left unlisted by a kill (rescan lists them again)");
    }
    t.finish("kills");
}
