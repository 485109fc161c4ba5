//! The settings file shared by the app and the CLI: what `config set-db` writes is what
//! `backup` uses without `--db`, the schedule and retention come from it, no password is ever
//! written to it, and a broken file gives one line naming the line to fix.
#![allow(clippy::unwrap_used)]

mod support;

use support::{pg_host, pg_port, school_sql, Env, TestDb};

#[test]
fn the_cli_uses_the_shared_settings_file() {
    let db = TestDb::new("config");
    db.load(&school_sql(), &[]);
    let env = Env::new();
    // Nothing configured: a clear refusal that says where to set it.
    let (code, line) = env.fails(&["backup"]);
    assert_eq!(code, "invalid_input");
    assert!(line.contains("config set-db"), "{line}");

    let port = pg_port();
    env.json(&[
        "config",
        "set-db",
        "--host",
        &pg_host(),
        "--port",
        &port,
        "--name",
        &db.name,
        "--user",
        "postgres",
        "--tls",
        "disable",
    ]);
    let shown = env.json(&["config", "show"]);
    let path = std::path::PathBuf::from(shown["path"].as_str().unwrap());
    assert!(
        path.starts_with(env.dir.path()),
        "settings live under HOME: {path:?}"
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("name = \"{}\"", db.name)), "{text}");
    assert!(!text.contains("password ="), "{text}");

    let b = env.json(&["backup"]);
    assert!(b["rows"].as_u64().unwrap() > 0);
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 1);

    // The schedule and retention come from the file too.
    assert!(text.contains("cron = \"0 2 * * *\""), "{text}");
    std::fs::write(
        &path,
        text.replace(
            "cron = \"0 2 * * *\"",
            "cron = \"15 3 * * 1\"\ntimezone = \"UTC\"",
        ),
    )
    .unwrap();
    let next = env.json(&["schedule", "next", "--count", "2"]);
    let first = next[0].as_str().unwrap_or_else(|| panic!("{next}"));
    assert!(first.contains("03:15:00"), "{next}");

    // A broken file: one line naming the file and the line.
    std::fs::write(&path, "[database]\nhost = \"x\"\nport = \"five\"\n").unwrap();
    let (code, line) = env.fails(&["list"]);
    assert_eq!(code, "invalid_input");
    assert!(line.contains("line 3"), "{line}");
}
