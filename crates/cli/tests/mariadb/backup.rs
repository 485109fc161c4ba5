//! What a MariaDB/MySQL backup holds: every value, the schema, one moment for every table;
//! bad logins in one line.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, Env};
use crate::*;

#[test]
fn a_mariadb_backup_holds_every_value_exactly_and_its_schema() {
    let db = MyDb::new("kinds");
    db.sql(
        "SET SESSION sql_mode = '';
         SET time_zone = '+02:00';
         CREATE TABLE kinds (
           id INT PRIMARY KEY,
           amount DECIMAL(30,10), flags BIT(10), raw BLOB, bin BINARY(4),
           note TEXT CHARACTER SET utf8mb4, at DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL,
           doc JSON, mood ENUM('happy','sad'), tags SET('a','b','c'),
           doubled INT AS (id * 2) VIRTUAL, stored INT AS (id + 1) STORED,
           zero DATE NULL, empty VARCHAR(10), big BIGINT UNSIGNED, f DOUBLE
         ) ENGINE=InnoDB;
         INSERT INTO kinds (id, amount, flags, raw, bin, note, at, ts, doc, mood, tags, zero, empty, big, f) VALUES
           (1, 12345678901234567890.0123456789, b'1010000001', X'00FF0A095C1A0D', X'00000000',
            'emoji \u{1F600} tab\there\nnew line \\\\ back', '2024-02-29 23:59:59.123456',
            '2024-06-01 12:00:00.5', '{\"a\": [1, 2.5, null]}', 'sad', 'a,c', '0000-00-00', '',
            18446744073709551615, 0.1),
           (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL),
           (3, -0.0000000001, b'0', '', X'41424344', 'ü ß 中文', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '[]', 'happy', 'b', '2000-01-01', 'NULL', 0, -1.5e300);
         CREATE TABLE parent (id INT PRIMARY KEY, child_id INT NULL) ENGINE=InnoDB;
         CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL,
           FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB;
         ALTER TABLE parent ADD FOREIGN KEY (child_id) REFERENCES child (id) ON DELETE SET NULL;
         INSERT INTO parent VALUES (1, NULL); INSERT INTO child VALUES (10, 1); UPDATE parent SET child_id = 10;
         CREATE TABLE audit (n INT) ENGINE=InnoDB;
         DELIMITER //
         CREATE TRIGGER child_audit AFTER INSERT ON child FOR EACH ROW BEGIN INSERT INTO audit VALUES (NEW.id); INSERT INTO audit VALUES (NEW.id + 1); END //
         DELIMITER ;
         CREATE VIEW family AS SELECT p.id AS parent, c.id AS child FROM parent p JOIN child c ON c.parent_id = p.id;
         CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2;
         CREATE TABLE legacy_log (line VARCHAR(50)) ENGINE=MyISAM;
         INSERT INTO legacy_log VALUES ('kept, but outside the snapshot');",
    );
    let env = Env::new();
    let out = env
        .cmd()
        .args(["--json", "--db", &db.url(), "backup", "--jobs", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The table that has no transactions is named; nothing else is warned about.
    assert!(
        stderr.contains("warning: table") && stderr.contains("legacy_log uses the MyISAM engine"),
        "{stderr}"
    );
    assert_eq!(made["tables"], 5, "{made}");
    let id = made["id"].as_str().unwrap();

    // Read back completely and checked, as any backup; a test restore on the same server
    // restores it into a scratch database, compares every table, and drops it.
    let verified = env.json(&["verify", id]);
    assert_eq!(verified["rows"], made["rows"], "{verified}");
    let tested = env.json(&["--db", &db.url(), "verify", id, "--test-restore"]);
    assert_eq!(tested["rows"], made["rows"], "{tested}");
    let listed = env.json(&["list"]);
    assert!(
        listed.to_string().contains("test restore: 5 tables"),
        "{listed}"
    );
    assert!(mariadb(None, "SHOW DATABASES LIKE 'schoolvault\\_verify%'")
        .trim()
        .is_empty());
    let inspected = env.json(&["inspect", id]);
    assert_eq!(
        inspected["manifest"]["source"]["engine"], "mariadb",
        "{inspected}"
    );

    let dir = env.dir.path().join("plain");
    unpack(&env, id, &dir);
    let (columns, rows) = archived_rows(&dir, "kinds");
    assert!(
        !columns.contains(&"doubled".to_string()) && !columns.contains(&"stored".to_string()),
        "generated columns are computed again, not stored: {columns:?}"
    );
    assert_eq!(columns.len(), 15, "{columns:?}");
    assert_eq!(rows, server_rows(&db, "kinds", &columns));
    assert_eq!(rows.len(), 3);
    for table in ["parent", "child", "legacy_log"] {
        let (columns, rows) = archived_rows(&dir, table);
        assert_eq!(rows, server_rows(&db, table, &columns), "{table}");
    }

    // The schema travels: tables before the data; the view, the trigger (after the data, so
    // it does not fire while the rows load) and the function, each ended for the client.
    let pre = std::fs::read_to_string(dir.join("schema/pre-data.sql")).unwrap();
    let post = std::fs::read_to_string(dir.join("schema/post-data.sql")).unwrap();
    assert!(pre.contains("DELIMITER ;;"), "{pre}");
    assert!(
        pre.contains("CREATE TABLE `kinds`") && pre.contains("utf8mb4"),
        "{pre}"
    );
    assert!(
        pre.contains("GENERATED ALWAYS AS") || pre.contains(" AS (`id` * 2)"),
        "{pre}"
    );
    assert!(pre.contains("FUNCTION `twice`"), "{pre}");
    assert!(post.contains("VIEW `family`"), "{post}");
    assert!(
        post.contains("TRIGGER child_audit AFTER INSERT") && post.contains("NEW.id + 1"),
        "{post}"
    );
    assert!(
        !pre.contains("TRIGGER"),
        "triggers come after the data: {pre}"
    );
}

#[test]
fn the_sums_in_a_backup_taken_while_money_moves_between_two_tables_add_up() {
    let db = MyDb::new("money");
    db.sql(
        "CREATE TABLE a (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
         CREATE TABLE b (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
         CREATE TABLE moves (n BIGINT NOT NULL) ENGINE=InnoDB;
         INSERT INTO moves VALUES (0);
         INSERT INTO a SELECT seq, 1000 FROM seq_1_to_2000;
         INSERT INTO b SELECT seq, 1000 FROM seq_1_to_2000;
         DELIMITER //
         CREATE PROCEDURE mover(rounds INT)
         BEGIN
           DECLARE i INT DEFAULT 0;
           WHILE i < rounds DO
             START TRANSACTION;
             UPDATE a SET bal = bal - 7 WHERE id = 1 + (i MOD 2000);
             UPDATE b SET bal = bal + 7 WHERE id = 1 + ((i * 7) MOD 2000);
             UPDATE moves SET n = n + 1;
             COMMIT;
             SET i = i + 1;
           END WHILE;
         END //
         DELIMITER ;",
    );
    // The writer keeps moving money during the whole backup.
    let mut writer = Command::new("mariadb")
        .args([
            "--protocol=TCP",
            "-h",
            &my_host(),
            "-P",
            &my_port(),
            "-u",
            "root",
        ])
        .arg(&db.name)
        .args(["-e", "CALL mover(1000000)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let moved = || db.sql("SELECT n FROM moves").trim().parse::<u64>().unwrap();
    while moved() < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the writer did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let env = Env::new();
    let made = env.json(&["--db", &db.url(), "backup", "--jobs", "2"]);
    let after = moved();
    let _ = writer.kill();
    let _ = writer.wait();
    let id = made["id"].as_str().unwrap();
    let dir = env.dir.path().join("plain");
    unpack(&env, id, &dir);
    let total = |table: &str| -> i64 {
        let (_, rows) = archived_rows(&dir, table);
        rows.iter()
            .map(|r| {
                let bytes = hex::decode(r[1].as_ref().unwrap()).unwrap();
                String::from_utf8(bytes).unwrap().parse::<i64>().unwrap()
            })
            .sum()
    };
    let (_, moves) = archived_rows(&dir, "moves");
    let n: u64 = String::from_utf8(hex::decode(moves[0][0].as_ref().unwrap()).unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        n >= 50 && n <= after,
        "the backup saw {n} moves (writer at {after})"
    );
    assert_eq!(
        total("a") + total("b"),
        4_000_000,
        "the two tables come from one moment ({n} moves in)"
    );
    assert_eq!(total("a"), 2_000_000 - 7 * i64::try_from(n).unwrap());
}

#[test]
fn a_wrong_login_an_unknown_database_or_a_restore_into_mariadb_say_what_to_do() {
    let db = MyDb::new("bad");
    db.sql("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1);");
    let env = Env::new();
    let url = db.url();

    let wrong = url.replace("root@", "root:not-the-password@");
    let (code, line) = env.fails(&["--db", &wrong, "backup"]);
    assert_eq!(code, "db_auth", "{line}");
    assert!(!line.contains("not-the-password"), "{line}");

    let unknown = format!("mariadb://root@{}:{}/sv_no_such_db", my_host(), my_port());
    let (code, line) = env.fails(&["--db", &unknown, "backup"]);
    assert_eq!(code, "not_found", "{line}");
    assert!(line.contains("sv_no_such_db"), "{line}");

    // A login that may not read the database.
    let user = format!("sv_nopriv_{:06x}", rand::random::<u32>() & 0xff_ffff);
    mariadb(None, &format!("CREATE USER '{user}'@'%' IDENTIFIED BY ''; CREATE USER '{user}'@'localhost' IDENTIFIED BY ''"));
    let nopriv = url.replace("root@", &format!("{user}@"));
    let (code, line) = env.fails(&["--db", &nopriv, "backup"]);
    let _ = mariadb_as(
        "root",
        None,
        &format!("DROP USER '{user}'@'%'; DROP USER '{user}'@'localhost'"),
    );
    assert_eq!(code, "db_auth", "{line}");
    assert!(line.contains("GRANT SELECT"), "{line}");
    assert!(
        env.files().is_empty(),
        "nothing is left behind: {:?}",
        env.files()
    );

    // A new database of an existing name is never written into.
    let made = env.json(&["--db", &url, "backup"]);
    let id = made["id"].as_str().unwrap();
    db.sql("INSERT INTO t VALUES (2)");
    let (code, line) = env.fails(&["--db", &url, "restore", id, "--create-db", &db.name]);
    assert_eq!(code, "target_mismatch", "{line}");
    assert_eq!(db.sql("SELECT COUNT(*) FROM t").trim(), "2");
    // A PostgreSQL backup is not poured into MariaDB.
    let pg = support::TestDb::new("mypg");
    pg.sql("CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p VALUES (1)");
    let pg_backup = env.json(&["--db", &pg.url(), "backup"]);
    let fresh = format!("sv_never_{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (code, line) = env.fails(&[
        "--db",
        &url,
        "restore",
        pg_backup["id"].as_str().unwrap(),
        "--create-db",
        &fresh,
    ]);
    assert_eq!(code, "target_mismatch", "{line}");
    assert!(mariadb(None, &format!("SHOW DATABASES LIKE '{fresh}'"))
        .trim()
        .is_empty());
}

#[test]
fn the_schedule_backs_up_a_mariadb_database_when_a_slot_is_due() {
    let db = MyDb::new("sched");
    db.sql("CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
    let env = Env::new();
    env.installed_before();
    let done = env.json(&["--db", &db.url(), "schedule", "run-due"]);
    assert!(!done["backup"].is_null(), "{done}");
    let list = env.json(&["list"]);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["kind"], "scheduled", "{list}");
    assert_eq!(list[0]["engine"], "mariadb", "{list}");
    // The weekly test restore followed: restored into a scratch database, compared, dropped.
    assert_eq!(list[0]["verify_ok"], true, "{list}");
    assert!(
        list[0]["verify_message"]
            .as_str()
            .unwrap()
            .starts_with("test restore"),
        "{list}"
    );
    let history = env.json(&["history"]);
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["operation"] == "test_restore" && r["outcome"] == "success"),
        "{history}"
    );
    assert!(
        mariadb(None, "SHOW DATABASES LIKE 'schoolvault\\_verify\\_%'")
            .trim()
            .is_empty()
    );
    // The slot is covered: the next look makes none.
    let again = env.json(&["--db", &db.url(), "schedule", "run-due"]);
    assert!(again["backup"].is_null(), "{again}");
}
