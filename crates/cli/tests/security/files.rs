//! What SchoolVault writes is private; damaged or unknown files are never removed.

use super::*;

#[cfg(unix)]
#[test]
fn the_backup_file_the_catalog_and_a_new_backup_folder_are_private() {
    let db = small_db("modes");
    let env = Env::new();
    assert!(!env.backups().exists());
    let out = run_umask_022(&env, &[], &["--json", "--db", &db.url(), "backup"]);
    let b: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = Path::new(b["file"].as_str().unwrap());
    assert_eq!(mode(file), 0o600, "the backup file");
    assert_eq!(mode(&env.backups()), 0o700, "the backup folder it created");
    let catalog = env.dir.path().join("catalog.sqlite");
    assert_eq!(mode(&catalog), 0o600, "the catalog");
    // And whatever else sits beside the catalog (its lock, WAL and shared-memory files).
    for e in std::fs::read_dir(env.dir.path()).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("catalog") {
            assert_eq!(mode(&p), 0o600, "{name}");
        }
    }
}

#[cfg(unix)]
#[test]
fn config_set_db_writes_a_private_settings_file_in_a_private_new_folder() {
    let env = Env::new();
    let folder = env.dir.path().join("settings");
    let config = folder.join("config.toml");
    run_umask_022(
        &env,
        &[("SCHOOLVAULT_CONFIG", &config)],
        &[
            "--json",
            "config",
            "set-db",
            "--host",
            "127.0.0.1",
            "--name",
            "school",
            "--user",
            "backup",
        ],
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("school"), "{text}");
    assert_eq!(mode(&config), 0o600, "the settings file");
    assert_eq!(mode(&folder), 0o700, "the settings folder it created");
    // Nothing half-written is left beside it.
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, vec!["config.toml".to_string()]);
}

#[test]
fn a_partial_file_left_in_the_backup_folder_is_removed_by_the_next_backup() {
    let db = small_db("partial");
    let env = Env::new();
    std::fs::create_dir_all(env.backups()).unwrap();
    let partial = env.backups().join("x.svb.partial");
    std::fs::write(&partial, b"half of a backup a killed run left").unwrap();
    let notes = env.backups().join("notes.txt");
    std::fs::write(&notes, b"not ours").unwrap();
    let b = env.json(&["--db", &db.url(), "backup"]);
    assert!(!partial.exists(), "the leftover .partial is still there");
    assert!(notes.exists(), "a file that is not a .partial was removed");
    assert!(Path::new(b["file"].as_str().unwrap()).is_file());
    assert_eq!(env.files().len(), 2, "{:?}", env.files());
}

// 5. Damaged and unknown files are never pruned.

#[test]
fn rescan_and_prune_never_remove_damaged_or_unknown_files() {
    let db = small_db("prune");
    let env = Env::new();
    let backup = || env.json(&["--db", &db.url(), "backup"]);
    let (a, b, c) = (backup(), backup(), backup());
    let file = |v: &Value| std::path::PathBuf::from(v["file"].as_str().unwrap());
    // B's file cut in half replaces it; a file of random bytes beside.
    let whole = std::fs::read(file(&b)).unwrap();
    let cut = env
        .backups()
        .join(format!("cut-{}.svb", b["id"].as_str().unwrap()));
    std::fs::write(&cut, &whole[..whole.len() / 2]).unwrap();
    std::fs::remove_file(file(&b)).unwrap();
    let junk = env.backups().join("junk.svb");
    let random: Vec<u8> = (0..5000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(&junk, &random).unwrap();

    let found = env.json(&["rescan"]);
    let status = |p: &Path| {
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"].as_str() == p.to_str())
            .unwrap_or_else(|| panic!("{} not in {found}", p.display()))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        ["truncated", "damaged"].contains(&status(&cut).as_str()),
        "{found}"
    );
    assert_eq!(status(&junk), "not_a_backup", "{found}");
    assert_eq!(status(&file(&a)), "complete", "{found}");
    assert_eq!(status(&file(&c)), "complete", "{found}");
    // The cut file is listed under B's id, not as complete.
    let listed = env.json(&["list"]);
    let cut_entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == b["id"])
        .unwrap_or_else(|| panic!("the cut file is not listed: {listed}"))
        .clone();
    assert_ne!(cut_entry["status"], "complete", "{cut_entry}");

    // Prune everything old: only A goes (C is the newest verified backup and always stays).
    let policy = ["--keep-days", "0", "--keep-last", "0"];
    let mut dry = vec!["prune", "--dry-run"];
    dry.extend(policy);
    let planned = env.json(&dry);
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        ids(&planned),
        vec![a["id"].as_str().unwrap().to_string()],
        "{planned}"
    );
    assert!(cut.exists() && junk.exists() && file(&a).exists());
    let mut real = vec!["prune"];
    real.extend(policy);
    let pruned = env.json(&real);
    assert_eq!(ids(&pruned), ids(&planned), "{pruned}");
    assert!(!file(&a).exists(), "the old good backup was pruned");
    assert!(file(&c).exists());
    assert!(cut.exists(), "the truncated file was pruned");
    assert!(junk.exists(), "the unknown file was pruned");
    assert_eq!(std::fs::read(&junk).unwrap(), random);
    let listed = env.json(&["list"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == b["id"]),
        "the cut file's entry is still listed: {listed}"
    );
}

/// A damaged list of backups (the catalog file overwritten: a crash of the disk, a bad copy)
/// stops every command with one line that says to run `rescan`; `rescan` moves the damaged
/// file aside (never deletes it) and lists the backups again from their files.
#[test]
fn a_damaged_catalog_is_set_aside_by_rescan_and_the_list_rebuilt_from_the_files() {
    let db = small_db("damagedcat");
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let catalog = env.dir.path().join("catalog.sqlite");
    for journal in ["catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(env.dir.path().join(journal));
    }
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&catalog, &garbage).unwrap();

    let (code, line) = env.fails(&["list"]);
    assert_eq!(code, "catalog", "{line}");
    assert!(line.contains("schoolvault rescan"), "{line}");

    let found = env.json(&["rescan"]);
    let entries = found.as_array().unwrap();
    assert_eq!(entries.len(), 1, "{found}");
    assert_eq!(entries[0]["status"], "complete", "{found}");
    let aside: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("catalog.sqlite.damaged-")
                    && !n.ends_with("-shm")
                    && !n.ends_with("-wal")
            })
        })
        .collect();
    assert_eq!(aside.len(), 1, "the damaged catalog is kept: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage);
    let listed = env.json(&["list"]);
    assert_eq!(listed[0]["id"], made["id"], "{listed}");
    assert_eq!(listed[0]["status"], "complete", "{listed}");
}
