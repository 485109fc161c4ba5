//! MariaDB/MySQL restores: into a new database, over the live one all or nothing, and what a
//! failure or a kill leaves.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use crate::support::Env;
use crate::*;

#[test]
fn a_mariadb_backup_restores_into_a_new_database_equal_in_schema_and_every_value() {
    let db = MyDb::new("round");
    db.sql(
        "SET SESSION sql_mode = '';
         CREATE TABLE counter (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB;
         INSERT INTO counter (id, v) VALUES (5, 1), (9, 2);
         CREATE TABLE kinds (
           id INT PRIMARY KEY,
           amount DECIMAL(30,10), flags BIT(10), raw BLOB, bin BINARY(4),
           note TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci, latin VARCHAR(20) CHARACTER SET latin1,
           at DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
           doc JSON, mood ENUM('happy','sad'), tags SET('a','b','c'),
           doubled INT AS (id * 2) VIRTUAL, stored INT AS (id + 1) STORED,
           zero DATE NULL, empty VARCHAR(10), big BIGINT UNSIGNED, f DOUBLE, KEY (amount)
         ) ENGINE=InnoDB;
         INSERT INTO kinds (id, amount, flags, raw, bin, note, latin, at, ts, doc, mood, tags, zero, empty, big, f) VALUES
           (0, 12345678901234567890.0123456789, b'1010000001', X'00FF0A095C1A0D', X'00000000',
            'emoji \u{1F600} tab\there\nnew line \\\\ back', 'caf\u{e9}', '2024-02-29 23:59:59.123456',
            '2024-06-01 12:00:00.5', '{\"a\": [1, 2.5, null]}', 'sad', 'a,c', '0000-00-00', '',
            18446744073709551615, 0.1),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL),
           (3, -0.0000000001, b'0', '', X'41424344', '\u{fc} \u{df} \u{4e2d}', '', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '[]', 'happy', 'b', '2000-01-01', 'O''Brien\\\\', 0, -1.5e300);
         CREATE TABLE parent (id INT NOT NULL, k CHAR(2) NOT NULL, child_id INT NULL, PRIMARY KEY (id, k)) ENGINE=InnoDB;
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, parent_k CHAR(2) NOT NULL,
           FOREIGN KEY (parent_id, parent_k) REFERENCES parent (id, k) ON DELETE CASCADE) ENGINE=InnoDB;
         ALTER TABLE parent ADD FOREIGN KEY (child_id) REFERENCES child (id) ON DELETE SET NULL;
         INSERT INTO parent VALUES (1, 'aa', NULL); INSERT INTO child VALUES (10, 1, 'aa'); UPDATE parent SET child_id = 10;
         CREATE TABLE audit (n INT) ENGINE=InnoDB;
         CREATE TABLE nokey (v VARCHAR(5)) ENGINE=InnoDB;
         INSERT INTO nokey VALUES ('b'), ('a'), (''), (NULL), ('b');
         CREATE TABLE one (v VARCHAR(5) NULL) ENGINE=InnoDB;
         INSERT INTO one VALUES (''), (NULL), ('x');
         DELIMITER //
         CREATE TRIGGER child_audit AFTER INSERT ON child FOR EACH ROW BEGIN INSERT INTO audit VALUES (NEW.id); INSERT INTO audit VALUES (NEW.id + 1); END //
         CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2 //
         DELIMITER ;
         INSERT INTO child VALUES (11, 1, 'aa');
         CREATE VIEW family AS SELECT p.id AS parent, c.id AS child, twice(c.id) AS t FROM parent p JOIN child c ON c.parent_id = p.id;",
    );
    // A sequence, and a table whose default takes its next value.
    db.sql(
        "CREATE SEQUENCE receipt_no START WITH 1000 INCREMENT BY 1 NOCACHE;
         CREATE TABLE receipts (n INT NOT NULL DEFAULT NEXTVAL(receipt_no) PRIMARY KEY, x INT) ENGINE=InnoDB;
         INSERT INTO receipts (x) VALUES (1), (2), (3);",
    );
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap();

    let copy = MyDb {
        name: format!("sv_copy_{:08x}", rand::random::<u32>()),
    };
    let restored = env.json(&["--db", &db.url(), "restore", id, "--create-db", &copy.name]);
    assert_eq!(restored["rows"], made["rows"], "{restored}");

    let dir = env.dir.path().join("plain");
    unpack(&env, id, &dir);
    for table in [
        "counter", "kinds", "parent", "child", "audit", "nokey", "one", "receipts",
    ] {
        let (columns, _) = archived_rows(&dir, table);
        assert_eq!(
            server_rows(&copy, table, &columns),
            server_rows(&db, table, &columns),
            "{table}"
        );
    }
    // Generated columns are computed again; the trigger did not fire while rows loaded (the
    // audit holds what the source's does), and it fires again now.
    assert_eq!(
        copy.sql("SELECT id, doubled, stored FROM kinds ORDER BY id"),
        db.sql("SELECT id, doubled, stored FROM kinds ORDER BY id")
    );
    assert_eq!(copy.sql("SELECT COUNT(*) FROM audit").trim(), "2");
    copy.sql("INSERT INTO child VALUES (12, 1, 'aa')");
    assert_eq!(copy.sql("SELECT COUNT(*) FROM audit").trim(), "4");
    copy.sql("DELETE FROM child WHERE id = 12; DELETE FROM audit WHERE n >= 12");
    // The same schema: tables (keys, character sets, AUTO_INCREMENT), view, trigger, function,
    // sequence.
    assert_eq!(schema_of(&copy), schema_of(&db));
    // The sequence goes on where it was, and the copy's default takes the copy's sequence.
    copy.sql("INSERT INTO receipts (x) VALUES (4)");
    assert_eq!(copy.sql("SELECT MAX(n) FROM receipts").trim(), "1003");
    assert_eq!(
        db.sql("SELECT next_not_cached_value FROM receipt_no")
            .trim(),
        "1003",
        "the source's sequence is not the copy's"
    );
    assert_eq!(
        copy.sql("SELECT next_not_cached_value FROM receipt_no")
            .trim(),
        "1004"
    );
    // The foreign keys hold.
    let refused = mariadb_as(
        "root",
        Some(&copy.name),
        "INSERT INTO child VALUES (99, 5, 'zz')",
    );
    assert!(refused.is_err_and(|e| e.contains("foreign key constraint")));
}

#[test]
fn a_restore_into_mariadb_that_fails_leaves_no_database_behind() {
    let db = MyDb::new("fails");
    db.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10)); INSERT INTO t VALUES (1, 'a'), (2, 'b');");
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap().to_string();
    // A damaged copy of the backup: the restore fails, and the new database is gone.
    let file = made["file"].as_str().unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    let at = bytes.len() - 200;
    bytes[at] ^= 0x55;
    let damaged = env.dir.path().join("damaged.svb");
    std::fs::write(&damaged, &bytes).unwrap();
    let fresh = format!("sv_gone_{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (code, _) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        damaged.to_str().unwrap(),
        "--create-db",
        &fresh,
    ]);
    assert!(
        ["damaged", "truncated", "inconsistent"].contains(&code.as_str()),
        "{code}"
    );
    assert!(
        mariadb(None, &format!("SHOW DATABASES LIKE '{fresh}'"))
            .trim()
            .is_empty(),
        "the half-made database was dropped"
    );
    // The good one restores.
    let copy = MyDb {
        name: fresh.clone(),
    };
    env.json(&["--db", &db.url(), "restore", &id, "--create-db", &copy.name]);
    assert_eq!(copy.sql("SELECT v FROM t ORDER BY id"), "a\nb\n");
}

#[test]
fn a_replace_restore_of_a_live_mariadb_database_puts_back_every_row_at_once() {
    let db = MyDb::new("live");
    school(&db);
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap();
    let before = all_rows(&db);
    let schema_before = schema_of(&db);

    // The school works on: rows change, are added and go; a new table appears.
    db.sql(
        "INSERT INTO receipts (pupil_id) VALUES (7), (8);
         UPDATE pupils SET name = 'changed' WHERE id <= 10; DELETE FROM pupils WHERE id > 2900;
         INSERT INTO marks (pupil_id, mark) VALUES (1, 9.9), (2, 1.1);
         CREATE TABLE newer (x INT); INSERT INTO newer VALUES (1);",
    );
    assert_ne!(all_rows(&db), before);

    let restored = env.json(&["--db", &db.url(), "restore", id, "--yes"]);
    let safety = restored["safety_backup"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Every table of the backup is back, the triggers did not fire while loading, the schema
    // is the backup's; a table made since is left alone and named.
    let after: Vec<_> = all_rows(&db)
        .into_iter()
        .filter(|(t, _)| t != "newer")
        .collect();
    assert_eq!(after, before);
    let schema_now: Vec<String> = schema_of(&db)
        .into_iter()
        .filter(|s| !s.starts_with("newer\t"))
        .collect();
    assert_eq!(schema_now, schema_before);
    assert_eq!(db.sql("SELECT COUNT(*) FROM newer").trim(), "1");
    assert!(
        restored["warnings"].to_string().contains("newer"),
        "{restored}"
    );
    // The sequence is the backup's, and the restored table's default takes the live
    // database's sequence (not the scratch database it was loaded in).
    assert_eq!(
        db.sql("SELECT next_not_cached_value FROM receipt_no")
            .trim(),
        "1025"
    );
    db.sql("INSERT INTO receipts (pupil_id) VALUES (9)");
    assert_eq!(db.sql("SELECT MAX(n) FROM receipts").trim(), "1025");
    db.sql("DELETE FROM receipts WHERE n = 1025");
    // The trigger works on the restored table; the foreign keys hold.
    // (The audit was empty in the backup; the two marks added since were audited.)
    db.sql("INSERT INTO marks (pupil_id, mark) VALUES (3, 5.0)");
    assert_eq!(db.sql("SELECT COUNT(*) FROM audit").trim(), "1");
    assert!(mariadb_as(
        "root",
        Some(&db.name),
        "INSERT INTO marks (pupil_id, mark) VALUES (99999, 1)"
    )
    .is_err());
    // No scratch or undo database is left behind.
    assert!(
        mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_sv%'", db.name))
            .trim()
            .is_empty()
    );
    // The safety backup undoes it.
    db.sql("DELETE FROM audit");
    let undone = env.json(&[
        "--db",
        &db.url(),
        "restore",
        &safety,
        "--yes",
        "--no-safety-backup",
    ]);
    assert!(
        undone["warnings"]
            .to_string()
            .contains("for 7 days and until a backup"),
        "{undone}"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM audit").trim(), "2");
    assert_eq!(
        db.sql("SELECT COUNT(*) FROM pupils WHERE name = 'changed'")
            .trim(),
        "10"
    );
    let kept = mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_svu%'", db.name));
    assert_eq!(
        kept.lines().count(),
        1,
        "without a safety backup the replaced tables are kept: {kept}"
    );
    // Kept for a week and until a backup has been made since (they are the only copy of what
    // the restore replaced): a backup now leaves them; a week later, the next backup drops them.
    env.json(&["--db", &db.url(), "backup"]);
    assert_eq!(
        mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_svu%'", db.name)).trim(),
        kept.trim(),
        "kept: not a week old yet"
    );
    let ledger = find_file(env.dir.path(), "mariadb-undo.json")
        .expect("the kept tables are listed beside the catalog");
    let listed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&ledger).unwrap()).unwrap();
    let mut aged = listed.clone();
    aged[0]["at"] =
        serde_json::json!((chrono::Utc::now() - chrono::Duration::days(8)).to_rfc3339());
    std::fs::write(&ledger, serde_json::to_vec(&aged).unwrap()).unwrap();
    env.json(&["--db", &db.url(), "backup"]);
    assert!(
        mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_svu%'", db.name))
            .trim()
            .is_empty(),
        "the kept tables go after a week and a backup"
    );
    let history = env.json(&["history"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"] == "cleanup"
                && r["message"].as_str().unwrap_or("").contains(kept.trim())),
        "{history}"
    );
}

#[test]
fn a_mariadb_restore_killed_or_failing_at_any_point_leaves_the_live_database_as_it_was_or_restored()
{
    let db = MyDb::new("kill");
    school(&db);
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap().to_string();
    let restored_rows = all_rows(&db);
    db.sql("UPDATE pupils SET name = 'changed'; DELETE FROM marks WHERE id > 100;");
    let changed_rows = all_rows(&db);

    // A damaged copy fails while loading the scratch database: nothing changed.
    let mut bytes = std::fs::read(made["file"].as_str().unwrap()).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x55;
    let damaged = env.dir.path().join("damaged.svb");
    std::fs::write(&damaged, &bytes).unwrap();
    let (code, _) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        damaged.to_str().unwrap(),
        "--yes",
        "--no-safety-backup",
    ]);
    assert!(
        ["damaged", "truncated", "inconsistent"].contains(&code.as_str()),
        "{code}"
    );
    assert_eq!(all_rows(&db), changed_rows);

    // Killed at several points: either as it was, or wholly restored.
    let mut saw_before = false;
    for ms in [150u64, 400, 800, 1500] {
        let mut child = env
            .std_cmd()
            .args([
                "--db",
                &db.url(),
                "restore",
                &id,
                "--yes",
                "--no-safety-backup",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let status = child.wait().unwrap();
        let now = all_rows(&db);
        if now == changed_rows {
            saw_before = true;
        } else {
            assert_eq!(
                now, restored_rows,
                "killed after {ms} ms ({status}): neither before nor restored"
            );
            // Back to the changed state for the next round.
            db.sql("UPDATE pupils SET name = 'changed'; DELETE FROM marks WHERE id > 100;");
            assert_eq!(all_rows(&db), changed_rows);
        }
    }
    assert!(saw_before, "no kill landed before the swap");
    // A restore cleans up what a killed one left while loading, and restores.
    env.json(&[
        "--db",
        &db.url(),
        "restore",
        &id,
        "--yes",
        "--no-safety-backup",
    ]);
    assert_eq!(all_rows(&db), restored_rows);
    let left = mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_svr%'", db.name));
    assert!(left.trim().is_empty(), "{left}");
}

#[test]
fn a_value_the_server_refuses_fails_the_restore_and_the_live_database_stays_as_it_was() {
    let db = MyDb::new("refuse");
    // A row that breaks its table's CHECK constraint (written with the checks off): the
    // restore's load refuses it on one of its loaders, while the other is busy with a larger
    // table.
    db.sql(
        "CREATE TABLE big (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;
         INSERT INTO big SELECT seq, seq FROM seq_1_to_20000;
         CREATE TABLE t (id INT PRIMARY KEY, v INT, CONSTRAINT positive CHECK (v > 0)) ENGINE=InnoDB;
         SET SESSION check_constraint_checks = 0;
         INSERT INTO t VALUES (1, 5), (2, -1);",
    );
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup"]);
    let id = made["id"].as_str().unwrap();
    db.sql("DELETE FROM big WHERE id > 10");
    let before = all_rows(&db);
    let (code, line) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        id,
        "--yes",
        "--no-safety-backup",
    ]);
    assert_eq!(code, "database", "{line}");
    assert!(
        line.contains("positive") || line.contains("CONSTRAINT"),
        "{line}"
    );
    assert_eq!(all_rows(&db), before, "the live database is as it was");
    let left = mariadb(None, &format!("SHOW DATABASES LIKE '{}\\_sv%'", db.name));
    assert!(left.trim().is_empty(), "{left}");
}

/// The file called `name` under `dir`, at any depth.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}
