//! MariaDB/MySQL backups, end to end through the `schoolvault` binary, against the real MariaDB
//! at `SCHOOLVAULT_TEST_MY_HOST`:`SCHOOLVAULT_TEST_MY_PORT` (default 127.0.0.1:3306, user root
//! without a password; `make test` starts it). Every value is checked against what the server
//! itself prints (`HEX(CAST(… AS BINARY))` through the `mariadb` client), never against
//! SchoolVault's own reading.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Env;

fn my_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}
fn my_port() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_PORT").unwrap_or_else(|_| "3306".into())
}

/// Run `sql` with the `mariadb` client as `user` (no password): its tab-separated output.
fn mariadb_as(user: &str, db: Option<&str>, sql: &str) -> Result<String, String> {
    let mut c = Command::new("mariadb");
    c.args(["--batch", "--skip-column-names", "--protocol=TCP"])
        .args(["-h", &my_host(), "-P", &my_port(), "-u", user]);
    if let Some(db) = db {
        c.arg(db);
    }
    let out = c.args(["-e", sql]).output().unwrap_or_else(|e| {
        panic!("cannot run the mariadb client ({e}): install mariadb-client (make test does)")
    });
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn mariadb(db: Option<&str>, sql: &str) -> String {
    mariadb_as("root", db, sql).unwrap_or_else(|e| {
        if e.contains("Can't connect") || e.contains("Access denied") {
            panic!(
                "MariaDB does not answer as root without a password on {}:{} ({e}); start it with `make setup` (or set SCHOOLVAULT_TEST_MY_HOST/PORT)",
                my_host(),
                my_port()
            );
        }
        panic!("{sql}: {e}")
    })
}

/// A fresh database, dropped at the end.
struct MyDb {
    name: String,
}

impl MyDb {
    fn new(tag: &str) -> MyDb {
        let name = format!("sv_{tag}_{:08x}", rand::random::<u32>());
        mariadb(
            None,
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        );
        MyDb { name }
    }
    fn url(&self) -> String {
        format!("mariadb://root@{}:{}/{}", my_host(), my_port(), self.name)
    }
    fn sql(&self, sql: &str) -> String {
        mariadb(Some(&self.name), sql)
    }
}

impl Drop for MyDb {
    fn drop(&mut self) {
        // A killed restore's scratch database beside it, too.
        if let Ok(list) = mariadb_as(
            "root",
            None,
            &format!("SHOW DATABASES LIKE '{}\\_sv%'", self.name),
        ) {
            for d in list.lines().filter(|d| !d.is_empty()) {
                let _ = mariadb_as("root", None, &format!("DROP DATABASE IF EXISTS `{d}`"));
            }
        }
        let _ = mariadb_as(
            "root",
            None,
            &format!("DROP DATABASE IF EXISTS `{}`", self.name),
        );
    }
}

/// The decrypted archive of backup `id`, unpacked into `dir`.
fn unpack(env: &Env, id: &str, dir: &Path) {
    let plain = env.cmd().args(["decrypt", id]).output().unwrap();
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    std::fs::create_dir_all(dir).unwrap();
    let mut tar = Command::new("tar")
        .args(["-xz", "-C"])
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(tar.stdin.as_mut().unwrap(), &plain.stdout).unwrap();
    drop(tar.stdin.take());
    assert!(tar.wait().unwrap().success());
}

/// The backup's rows of `table` (by name), each value hex-encoded (None: NULL), decoded from
/// the `LOAD DATA` text form by this test.
fn archived_rows(dir: &Path, table: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let t = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == table)
        .unwrap_or_else(|| panic!("{table} not in the manifest: {manifest}"));
    let columns: Vec<String> = t["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let index = t["index"].as_u64().unwrap();
    let mut data = Vec::new();
    let part_dir = dir.join(format!("data/{index}"));
    if part_dir.is_dir() {
        let mut parts: Vec<_> = std::fs::read_dir(&part_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        parts.sort();
        for p in parts {
            data.extend(std::fs::read(p).unwrap());
        }
    }
    let mut rows = Vec::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let row = line
            .split(|&b| b == b'\t')
            .map(|field| {
                if field == b"\\N" {
                    return None;
                }
                let mut out = Vec::new();
                let mut it = field.iter();
                while let Some(&b) = it.next() {
                    if b == b'\\' {
                        out.push(match it.next() {
                            Some(b'0') => 0,
                            Some(b't') => b'\t',
                            Some(b'n') => b'\n',
                            Some(b'r') => b'\r',
                            Some(b'Z') => 0x1a,
                            Some(&c) => c,
                            None => panic!("a field ends in a backslash"),
                        });
                    } else {
                        out.push(b);
                    }
                }
                Some(hex::encode_upper(out))
            })
            .collect();
        rows.push(row);
    }
    rows.sort();
    (columns, rows)
}

/// `columns` of `table` as the server prints them, hex-encoded, in UTC.
fn server_rows(db: &MyDb, table: &str, columns: &[String]) -> Vec<Vec<Option<String>>> {
    let select = columns
        .iter()
        .map(|c| format!("HEX(CAST(`{c}` AS BINARY))"))
        .collect::<Vec<_>>()
        .join(", ");
    let out = db.sql(&format!(
        "SET time_zone = '+00:00'; SELECT {select} FROM `{table}`"
    ));
    let mut rows: Vec<Vec<Option<String>>> = out
        .lines()
        .map(|l| {
            l.split('\t')
                .map(|v| (v != "NULL").then(|| v.to_string()))
                .collect()
        })
        .collect();
    rows.sort();
    rows
}

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

/// Every table's `SHOW CREATE TABLE`, and the other objects' definitions, of `db`.
fn schema_of(db: &MyDb) -> Vec<String> {
    let mut out = Vec::new();
    for t in db
        .sql("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        .lines()
    {
        let name = t.split('\t').next().unwrap();
        let create = db.sql(&format!("SHOW CREATE TABLE `{name}`"));
        out.push(create.replace("\\n", "\n"));
    }
    out.push(db.sql(&format!(
        "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA = '{}' ORDER BY 1",
        db.name
    )).replace(&db.name, "DB"));
    out.push(db.sql(&format!(
        "SELECT TRIGGER_NAME, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_STATEMENT, ACTION_TIMING FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = '{}' ORDER BY 1",
        db.name
    )));
    out.push(db.sql(&format!(
        "SELECT ROUTINE_NAME, ROUTINE_TYPE, ROUTINE_DEFINITION FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = '{}' ORDER BY 1",
        db.name
    )));
    out
}

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
           (3, -0.0000000001, b'0', '', X'41424344', '\u{fc} \u{df} \u{4e2d}', '', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '[]', 'happy', 'b', '2000-01-01', 'NULL', 0, -1.5e300);
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
        "counter", "kinds", "parent", "child", "audit", "nokey", "one",
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
    // The same schema: tables (keys, character sets, AUTO_INCREMENT), view, trigger, function.
    assert_eq!(schema_of(&copy), schema_of(&db));
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

/// Every table of `db` as the server prints it (hex values, sorted rows), by name.
fn all_rows(db: &MyDb) -> Vec<(String, Vec<Vec<Option<String>>>)> {
    let mut out = Vec::new();
    for t in db
        .sql("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        .lines()
    {
        let name = t.split('\t').next().unwrap().to_string();
        let cols: Vec<String> = db
            .sql(&format!(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{name}' AND EXTRA NOT LIKE '%GENERATED%' ORDER BY ORDINAL_POSITION"
            ))
            .lines()
            .map(str::to_string)
            .collect();
        let rows = server_rows(db, &name, &cols);
        out.push((name, rows));
    }
    out
}

fn school(db: &MyDb) {
    db.sql(
        "CREATE TABLE pupils (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, born DATE, photo BLOB) ENGINE=InnoDB;
         CREATE TABLE marks (id INT AUTO_INCREMENT PRIMARY KEY, pupil_id INT NOT NULL, mark DECIMAL(4,1),
           FOREIGN KEY (pupil_id) REFERENCES pupils (id) ON DELETE CASCADE) ENGINE=InnoDB;
         CREATE TABLE audit (n INT) ENGINE=InnoDB;
         INSERT INTO pupils SELECT seq, CONCAT('pupil ', seq, ' \u{e9}'), '2015-01-01' + INTERVAL seq DAY, X'00FF' FROM seq_1_to_3000;
         INSERT INTO marks (pupil_id, mark) SELECT 1 + (seq MOD 3000), (seq MOD 200) / 10 FROM seq_1_to_20000;
         DELIMITER //
         CREATE TRIGGER marks_audit AFTER INSERT ON marks FOR EACH ROW BEGIN INSERT INTO audit VALUES (NEW.id); END //
         DELIMITER ;
         CREATE VIEW report AS SELECT p.name, AVG(m.mark) AS avg FROM pupils p JOIN marks m ON m.pupil_id = p.id GROUP BY p.id;",
    );
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
        "UPDATE pupils SET name = 'changed' WHERE id <= 10; DELETE FROM pupils WHERE id > 2900;
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
    env.json(&[
        "--db",
        &db.url(),
        "restore",
        &safety,
        "--yes",
        "--no-safety-backup",
    ]);
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
