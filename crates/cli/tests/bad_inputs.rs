//! Every bad input gets one clear line, a non-zero exit, and leaves the database and the
//! existing backups untouched.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::{school_sql, url_for, Env, PasswordCluster, TestDb};

fn school() -> TestDb {
    let db = TestDb::new("bad");
    db.load(&school_sql(), &[]);
    db
}

fn backup_file(env: &Env, db: &TestDb) -> String {
    let b = env.json(&["--db", &db.url(), "backup"]);
    b["file"].as_str().unwrap().to_string()
}

#[test]
fn damaged_files_are_reported_and_nothing_changes() {
    let db = school();
    let env = Env::new();
    let file = backup_file(&env, &db);
    let good = std::fs::read(&file).unwrap();
    let work = env.dir.path().join("work.svb");
    let before = db.checksums();

    // Wrong key: both fingerprints are named.
    let other = Env::new();
    let out = other
        .cmd()
        .args([
            "--json",
            "--db",
            &db.url(),
            "restore",
            &file,
            "--yes",
            "--no-safety-backup",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let mine = env.json(&["key", "fingerprint"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let theirs = other.json(&["key", "fingerprint"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(err.contains(&mine) && err.contains(&theirs), "{err}");
    assert!(err.contains("key import"), "{err}");

    // Truncated anywhere.
    for cut in [10, 40, good.len() / 2, good.len() - 1] {
        std::fs::write(&work, &good[..cut]).unwrap();
        let (code, msg) = env.fails(&[
            "--db",
            &db.url(),
            "restore",
            work.to_str().unwrap(),
            "--yes",
            "--no-safety-backup",
        ]);
        assert!(
            ["truncated", "damaged"].contains(&code.as_str()),
            "cut at {cut}: {code} {msg}"
        );
        let (code2, _) = env.fails(&["verify", work.to_str().unwrap()]);
        assert_eq!(code, code2);
    }

    // One flipped byte anywhere: magic, version, header, body, last byte.
    for pos in [2, 8, 30, 100, good.len() / 2, good.len() - 1] {
        let mut bad = good.clone();
        bad[pos] ^= 0x20;
        std::fs::write(&work, &bad).unwrap();
        let (code, msg) = env.fails(&["verify", work.to_str().unwrap()]);
        assert!(
            ["damaged", "truncated", "unsupported_version"].contains(&code.as_str()),
            "flip at {pos}: {code} {msg}"
        );
        assert!(
            msg.contains("damaged") || msg.contains("incomplete"),
            "flip at {pos}: {msg}"
        );
        let (code, _) = env.fails(&[
            "--db",
            &db.url(),
            "restore",
            work.to_str().unwrap(),
            "--yes",
            "--no-safety-backup",
        ]);
        assert_ne!(
            code, "wrong_key",
            "a flipped bit is not a wrong key (at {pos})"
        );
    }

    // The key fingerprint in the header itself damaged: still "damaged", not "wrong key".
    let text = String::from_utf8_lossy(&good[..400]).to_string();
    let at = text.find("\"key_fingerprint\":\"").unwrap() + 19;
    let mut bad = good.clone();
    bad[at] = if bad[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&work, &bad).unwrap();
    let (code, msg) = env.fails(&["verify", work.to_str().unwrap()]);
    assert_eq!(code, "damaged", "{msg}");

    // Not a backup at all.
    let random: Vec<u8> = (0..5000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(&work, random).unwrap();
    let (code, msg) = env.fails(&[
        "--db",
        &db.url(),
        "restore",
        work.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(code, "not_a_backup", "{msg}");

    // Unknown id, missing file.
    let (code, msg) = env.fails(&["verify", "20990101-000000-ffff"]);
    assert_eq!(code, "not_found", "{msg}");
    let (code, _) = env.fails(&["--db", &db.url(), "restore", "/nonexistent/x.svb", "--yes"]);
    assert_eq!(code, "not_found");
    let (code, _) = env.fails(&["delete", "nope", "--yes"]);
    assert_eq!(code, "not_found");

    assert_eq!(db.checksums(), before, "a bad input changed the database");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        good,
        "a bad input changed the backup"
    );
    // Only the one good backup is listed (no safety backups from refused restores).
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 1);
}

#[test]
fn unreachable_database_and_refused_login() {
    let env = Env::new();
    let (code, msg) = env.fails(&["--db", "postgres://postgres@127.0.0.1:1/erp", "backup"]);
    assert_eq!(code, "db_unreachable", "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    let (code, msg) = env.fails(&["--db", &url_for("no_such_role_sv", "postgres"), "backup"]);
    assert_eq!(code, "db_auth", "{msg}");
    let (code, msg) = env.fails(&["--db", &url_for("postgres", "no_such_db_sv"), "backup"]);
    assert_eq!(code, "not_found", "{msg}");
    // A password never appears in messages.
    let (_, msg) = env.fails(&[
        "--db",
        "postgres://postgres:s3cret@127.0.0.1:1/erp",
        "backup",
    ]);
    assert!(!msg.contains("s3cret"), "{msg}");
    assert!(env.files().is_empty());
}

#[test]
fn a_table_the_backup_user_may_not_read_fails_the_backup_and_names_it() {
    let db = school();
    let role = format!("sv_reader_{:x}", rand::random::<u32>());
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public, finance TO {role}; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}; \
         GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, finance TO {role};"
    ));
    let env = Env::new();
    let (code, msg) = env.fails(&["--db", &url_for(&role, &db.name), "backup"]);
    support::psql(
        &db.name,
        &format!("REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE {role}"),
    );
    assert_eq!(code, "table_unreadable", "{msg}");
    assert!(msg.contains("finance.Fee Payments"), "{msg}");
    assert!(
        env.files().is_empty(),
        "a failed backup left {:?}",
        env.files()
    );
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);
}

#[test]
fn a_full_disk_fails_the_backup_and_leaves_no_file() {
    let db = school();
    db.sql("CREATE TABLE noise AS SELECT i, md5(i::text) || md5((i * 7)::text) AS junk FROM generate_series(1, 40000) i");
    let env = Env::new();
    let small = env.backups();
    std::fs::create_dir_all(&small).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=256k",
            "tmpfs",
            small.to_str().unwrap(),
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "this test mounts a 256 kB tmpfs to fill it: it must run as root (as make test and CI do)"
    );
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&small);
    let (code, msg) = env.fails(&["--db", &db.url(), "backup"]);
    assert_eq!(code, "disk_full", "{msg}");
    assert!(msg.contains("disk is full"), "{msg}");
    assert!(env.files().is_empty(), "left behind: {:?}", env.files());
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 0);
}

#[test]
fn a_target_that_lacks_a_table_is_refused_untouched() {
    let db = school();
    let env = Env::new();
    let file = backup_file(&env, &db);
    let target = TestDb::new("lacking");
    target.load(&school_sql(), &[]);
    target.sql("DROP TABLE attendance");
    target.sql("UPDATE schools SET name = 'changed'");
    let before = target.checksums();
    let (code, msg) = env.fails(&["restore", &file, "--yes", "--target-db", &target.url()]);
    assert_eq!(code, "target_mismatch", "{msg}");
    assert!(msg.contains("public.attendance"), "{msg}");
    assert_eq!(target.checksums(), before);
    // Refused before the safety backup: nothing new is listed.
    assert_eq!(env.json(&["list"]).as_array().unwrap().len(), 1);
}

#[test]
fn a_rejected_password_is_named_as_such() {
    let cluster = PasswordCluster::start();
    let env = Env::new();
    let url = format!(
        "postgres://postgres:wrong-password@127.0.0.1:{}/postgres",
        cluster.port
    );
    let (code, msg) = env.fails(&["--db", &url, "backup"]);
    assert_eq!(code, "db_auth", "{msg}");
    assert!(
        msg.contains("rejected the password for user postgres"),
        "{msg}"
    );
    assert!(
        !msg.contains("wrong-password"),
        "the password leaked: {msg}"
    );
    // From PGPASSWORD as well, and the right one works.
    let no_pw = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let out = env
        .cmd()
        .env("PGPASSWORD", "wrong-password")
        .args(["--db", &no_pw, "backup"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rejected the password"));
    let out = env
        .cmd()
        .env("PGPASSWORD", "right-password")
        .args(["--json", "--db", &no_pw, "backup"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Make `role` (a login, no superuser) the owner of every table of the demo school, as the
/// ERP's own login is on a hosted server.
fn owned_by(db: &TestDb, role: &str) {
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE, CREATE ON SCHEMA public, finance TO {role}; \
         DO $$ DECLARE t text; BEGIN \
           FOR t IN SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
                    WHERE schemaname IN ('public', 'finance') LOOP \
             EXECUTE 'ALTER TABLE ' || t || ' OWNER TO {role}'; \
           END LOOP; END $$;"
    ));
}

fn drop_role(db: &TestDb, role: &str) {
    support::psql(
        &db.name,
        &format!("REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE {role}"),
    );
}

#[test]
fn the_tables_owner_restores_in_place_without_triggers_firing_and_keeps_every_key() {
    let db = school();
    let env = Env::new();
    let role = format!("sv_owner_{:x}", rand::random::<u32>());
    owned_by(&db, &role);
    let owner = url_for(&role, &db.name);
    // A view grouping by a primary key depends on it: that key must stay in place.
    db.sql("CREATE VIEW school_sizes AS SELECT s.id, s.name, count(u.id) AS users FROM schools s LEFT JOIN users u ON u.school_id = s.id GROUP BY s.id");
    let keys = "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND connamespace::regnamespace::text IN ('public', 'finance')";
    let triggers = "SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal";
    // Every index and constraint, as the server writes them (the restore rebuilds most).
    let schema = "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (\
        SELECT indexdef AS d FROM pg_indexes WHERE schemaname IN ('public', 'finance') UNION ALL \
        SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated \
        FROM pg_constraint WHERE connamespace::regnamespace::text IN ('public', 'finance')) x";
    let (keys_before, triggers_before, schema_before) =
        (db.sql(keys), db.sql(triggers), db.sql(schema));
    // Which index is which object: a rebuilt one is a new object.
    let oids = "SELECT 'users_email_key'::regclass::oid || ' ' || 'schools_pkey'::regclass::oid";
    let oids_before = db.sql(oids);
    assert!(
        keys_before.trim().parse::<u32>().unwrap() >= 4,
        "{keys_before}"
    );
    let b = env.json(&["--db", &owner, "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    let at_backup = db.checksums();

    // Restore the backup, no safety backup, as the login of `url`.
    let restore_as = |url: &str| {
        env.cmd()
            .args([
                "--json",
                "--db",
                url,
                "restore",
                &id,
                "--yes",
                "--no-safety-backup",
            ])
            .output()
            .unwrap()
    };

    // Changed since (the audit trigger fires for these), then restored by the owner: the rows
    // are the backup's, the trigger did not fire during the load (the audit table is the
    // backup's too), and every foreign key and trigger is back as it was.
    db.sql("UPDATE users SET name = name || ' (changed)'; DELETE FROM attendance");
    let r = restore_as(&owner);
    let ok = r.status.success();
    let stderr = String::from_utf8_lossy(&r.stderr).to_string();
    let after = db.checksums();
    let (keys_after, triggers_after, schema_after) =
        (db.sql(keys), db.sql(triggers), db.sql(schema));
    let oids_after = db.sql(oids);
    // The same as a superuser (triggers and key checks off for its session; the indexes and
    // the keys no foreign key needs are built again after the data).
    db.sql("DELETE FROM attendance");
    let su = restore_as(&db.url());
    let su_stderr = String::from_utf8_lossy(&su.stderr).to_string();
    let (after_su, schema_su) = (db.checksums(), db.sql(schema));

    // A restore the keys refuse: a table made since the backup points at a school the backup
    // does not have. Re-creating its key fails, and the whole restore with it: nothing changed.
    db.sql(&format!(
        "SET ROLE {role}; INSERT INTO schools (id, name) OVERRIDING SYSTEM VALUE VALUES (9001, 'Opened since'); \
         CREATE TABLE campus_maps (school_id integer REFERENCES schools(id)); \
         INSERT INTO campus_maps VALUES (9001); RESET ROLE"
    ));
    let before_refused = db.checksums();
    let refused = restore_as(&owner);
    let refused_stderr = String::from_utf8_lossy(&refused.stderr).to_string();
    let after_refused = db.checksums();
    let keys_refused = db.sql(keys);
    drop_role(&db, &role);

    assert!(ok, "the owner's restore failed: {stderr}");
    assert_eq!(after, at_backup, "the owner's restore is the backup");
    assert_eq!(keys_after, keys_before, "every foreign key is back");
    assert_eq!(
        triggers_after, triggers_before,
        "every trigger is back, as enabled as before"
    );
    assert_eq!(
        schema_after, schema_before,
        "every index and constraint is back, the same"
    );
    let (email_before, pkey_before) = oids_before.split_once(' ').unwrap();
    let (email_after, pkey_after) = oids_after.split_once(' ').unwrap();
    assert_ne!(
        email_after, email_before,
        "the unique index was built again after the data"
    );
    assert_eq!(
        pkey_after, pkey_before,
        "the key a view depends on stayed in place"
    );
    assert!(
        su.status.success(),
        "the superuser's restore failed: {su_stderr}"
    );
    assert_eq!(after_su, at_backup, "the superuser's restore is the backup");
    assert_eq!(
        schema_su, schema_before,
        "every index and constraint is back, the same"
    );
    assert!(
        !refused.status.success(),
        "a key the data breaks must fail the restore"
    );
    assert!(refused_stderr.contains("foreign key"), "{refused_stderr}");
    assert!(
        refused_stderr.contains("nothing was changed"),
        "{refused_stderr}"
    );
    assert_eq!(
        after_refused, before_refused,
        "a failed restore changed the database"
    );
    assert_eq!(
        keys_refused.trim().parse::<u32>().unwrap(),
        keys_before.trim().parse::<u32>().unwrap() + 1,
        "the keys, the new one included, are all still there"
    );
}

#[test]
fn the_owner_restores_partitioned_keys_commented_keys_and_function_indexes_as_they_were() {
    let db = TestDb::new("owner_parts");
    let role = format!("sv_owner_{:x}", rand::random::<u32>());
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}; SET ROLE {role}; \
         CREATE TABLE customers (id int, region int, PRIMARY KEY (id, region)) PARTITION BY LIST (region); \
         CREATE TABLE customers_1 PARTITION OF customers FOR VALUES IN (1); \
         CREATE TABLE customers_2 PARTITION OF customers FOR VALUES IN (2); \
         CREATE TABLE orders (id int, region int, customer int, \
           FOREIGN KEY (customer, region) REFERENCES customers) PARTITION BY LIST (region); \
         CREATE TABLE orders_1 PARTITION OF orders FOR VALUES IN (1); \
         CREATE TABLE orders_2 PARTITION OF orders FOR VALUES IN (2); \
         CREATE TABLE notes (id int PRIMARY KEY, customer int, region int, body text, \
           CONSTRAINT notes_customer FOREIGN KEY (customer, region) REFERENCES customers); \
         COMMENT ON CONSTRAINT notes_customer ON notes IS 'who the note is about'; \
         CREATE FUNCTION initials(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT left($1, 2) $$; \
         CREATE INDEX notes_initials ON notes (initials(body)); \
         CREATE INDEX notes_body ON notes (body); \
         INSERT INTO customers SELECT g, 1 + g % 2 FROM generate_series(1, 200) g; \
         INSERT INTO orders SELECT g, 1 + (g % 200 + 1) % 2, g % 200 + 1 FROM generate_series(1, 1000) g; \
         INSERT INTO notes SELECT g, g, 1 + g % 2, 'note ' || g FROM generate_series(1, 200) g; \
         RESET ROLE"
    ));
    let env = Env::new();
    let owner = url_for(&role, &db.name);
    let schema = "SELECT string_agg(d, E'\\n' ORDER BY d) FROM (\
        SELECT indexdef AS d FROM pg_indexes WHERE schemaname = 'public' UNION ALL \
        SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' \
          || convalidated || ' ' || coalesce(obj_description(oid, 'pg_constraint'), '-') \
        FROM pg_constraint WHERE connamespace = 'public'::regnamespace) x";
    let schema_before = db.sql(schema);
    let b = env.json(&["--db", &owner, "backup"]);
    let at_backup = db.checksums();
    db.sql("DELETE FROM orders WHERE id > 500; UPDATE notes SET body = 'changed'");
    let r = env
        .cmd()
        .args([
            "--json",
            "--db",
            &owner,
            "restore",
            b["id"].as_str().unwrap(),
            "--yes",
            "--no-safety-backup",
        ])
        .output()
        .unwrap();
    let (after, schema_after) = (db.checksums(), db.sql(schema));
    drop_role(&db, &role);
    assert!(
        r.status.success(),
        "the owner's restore failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert_eq!(after, at_backup, "the owner's restore is the backup");
    assert_eq!(
        schema_after, schema_before,
        "keys, comments and indexes as they were"
    );
}

#[test]
fn a_replace_restore_without_permission_to_disable_triggers_is_refused_untouched() {
    let db = school();
    let env = Env::new();
    let file = backup_file(&env, &db);
    let role = format!("sv_loader_{:x}", rand::random::<u32>());
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA public, finance TO {role}; \
         GRANT ALL ON ALL TABLES IN SCHEMA public, finance TO {role}; \
         GRANT ALL ON ALL SEQUENCES IN SCHEMA public, finance TO {role};"
    ));
    db.sql("UPDATE schools SET name = 'changed since the backup'");
    let before = db.checksums();
    let (code, msg) = env.fails(&["--db", &url_for(&role, &db.name), "restore", &file, "--yes"]);
    support::psql(
        &db.name,
        &format!("REASSIGN OWNED BY {role} TO postgres; DROP OWNED BY {role}; DROP ROLE {role}"),
    );
    assert_eq!(code, "db_auth", "{msg}");
    assert!(msg.contains("session_replication_role"), "{msg}");
    assert_eq!(
        db.checksums(),
        before,
        "a refused restore changed the database"
    );
    assert_eq!(
        env.json(&["list"]).as_array().unwrap().len(),
        1,
        "refused before the safety backup"
    );
}
