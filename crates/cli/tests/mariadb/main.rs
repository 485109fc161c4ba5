//! MariaDB/MySQL backups, end to end through the `schoolvault` binary, against the real MariaDB
//! at `SCHOOLVAULT_TEST_MY_HOST`:`SCHOOLVAULT_TEST_MY_PORT` (default 127.0.0.1:3306, user root
//! without a password; `make test` starts it). Every value is checked against what the server
//! itself prints (`HEX(CAST(… AS BINARY))` through the `mariadb` client), never against
//! SchoolVault's own reading.
//!
//! `backup.rs`: what a backup holds; `restore.rs`: restores into a new and over the live
//! database. Here: the server, the scratch databases, reading an archive and the server back.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod restore;
mod sessions;

use std::path::Path;
use std::process::{Command, Stdio};

use support::Env;

pub fn my_host() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}
pub fn my_port() -> String {
    std::env::var("SCHOOLVAULT_TEST_MY_PORT").unwrap_or_else(|_| "3306".into())
}

/// Run `sql` with the `mariadb` client as `user` (no password): its tab-separated output.
pub fn mariadb_as(user: &str, db: Option<&str>, sql: &str) -> Result<String, String> {
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

pub fn mariadb(db: Option<&str>, sql: &str) -> String {
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
pub struct MyDb {
    pub name: String,
}

impl MyDb {
    pub fn new(tag: &str) -> MyDb {
        let name = format!("sv_{tag}_{:08x}", rand::random::<u32>());
        mariadb(
            None,
            &format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"),
        );
        MyDb { name }
    }
    pub fn url(&self) -> String {
        format!("mariadb://root@{}:{}/{}", my_host(), my_port(), self.name)
    }
    pub fn sql(&self, sql: &str) -> String {
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
pub fn unpack(env: &Env, id: &str, dir: &Path) {
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
pub fn archived_rows(dir: &Path, table: &str) -> (Vec<String>, Vec<Vec<Option<String>>>) {
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
pub fn server_rows(db: &MyDb, table: &str, columns: &[String]) -> Vec<Vec<Option<String>>> {
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

/// Every table's `SHOW CREATE TABLE`, and the other objects' definitions, of `db`.
pub fn schema_of(db: &MyDb) -> Vec<String> {
    let mut out = Vec::new();
    for t in db
        .sql("SHOW FULL TABLES WHERE Table_type = 'BASE TABLE'")
        .lines()
    {
        let name = t.split('\t').next().unwrap();
        let create = db.sql(&format!("SHOW CREATE TABLE `{name}`"));
        out.push(create.replace("\\n", "\n").replace(&db.name, "DB"));
    }
    for t in db
        .sql("SHOW FULL TABLES WHERE Table_type = 'SEQUENCE'")
        .lines()
    {
        let name = t.split('\t').next().unwrap();
        out.push(db.sql(&format!("SHOW CREATE SEQUENCE `{name}`")));
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

/// Every table of `db` as the server prints it (hex values, sorted rows), by name.
pub fn all_rows(db: &MyDb) -> Vec<(String, Vec<Vec<Option<String>>>)> {
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

pub fn school(db: &MyDb) {
    db.sql(
        "CREATE TABLE pupils (id INT PRIMARY KEY, name VARCHAR(40) CHARACTER SET utf8mb4, born DATE, photo BLOB) ENGINE=InnoDB;
         CREATE TABLE marks (id INT AUTO_INCREMENT PRIMARY KEY, pupil_id INT NOT NULL, mark DECIMAL(4,1),
           FOREIGN KEY (pupil_id) REFERENCES pupils (id) ON DELETE CASCADE) ENGINE=InnoDB;
         CREATE TABLE audit (n INT) ENGINE=InnoDB;
         CREATE SEQUENCE receipt_no START WITH 1000 INCREMENT BY 1 NOCACHE;
         CREATE TABLE receipts (n INT NOT NULL DEFAULT NEXTVAL(receipt_no) PRIMARY KEY, pupil_id INT) ENGINE=InnoDB;
         INSERT INTO receipts (pupil_id) SELECT seq FROM seq_1_to_25;
         INSERT INTO pupils SELECT seq, CONCAT('pupil ', seq, ' \u{e9}'), '2015-01-01' + INTERVAL seq DAY, X'00FF' FROM seq_1_to_3000;
         INSERT INTO marks (pupil_id, mark) SELECT 1 + (seq MOD 3000), (seq MOD 200) / 10 FROM seq_1_to_20000;
         DELIMITER //
         CREATE TRIGGER marks_audit AFTER INSERT ON marks FOR EACH ROW BEGIN INSERT INTO audit VALUES (NEW.id); END //
         DELIMITER ;
         CREATE VIEW report AS SELECT p.name, AVG(m.mark) AS avg FROM pupils p JOIN marks m ON m.pupil_id = p.id GROUP BY p.id;",
    );
}
