//! A restored database the application can use at once: owners, privileges (column ones too),
//! default privileges, row-level security (enabled, forced, its policies), rules and the
//! database's own owner and privileges travel with `restore --create-db`, so that
//! `pg_dump --schema-only` of the source and of the copy are equal; and on a server that lacks
//! the backup's roles, the restore names them and offers `--create-roles` or `--owner`.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::Command;

use support::{fixtures, pg_host, pg_port, psql, Env};

/// `psql -c SQL` as `user` (trust auth on 127.0.0.1): stdout, or the error it printed.
fn psql_as(user: &str, db: &str, sql: &str) -> Result<String, String> {
    support::psql_as(user, db, &["-c", sql])
}

/// `pg_dump --schema-only` (owners and privileges included), without its random
/// `\restrict` token lines.
fn schema_dump(db: &str) -> String {
    let out = Command::new("pg_dump")
        .args([
            "-h",
            &pg_host(),
            "-p",
            &pg_port(),
            "-U",
            "postgres",
            "--schema-only",
            db,
        ])
        .output()
        .expect("pg_dump (postgresql-client; make test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A school database owned by an application role `app`, with a reporting role `report`.
struct School {
    app: String,
    report: String,
    db: String,
}

impl School {
    fn new(tag: &str) -> School {
        let n = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let s = School {
            app: format!("sv_{tag}_app_{n}"),
            report: format!("sv_{tag}_report_{n}"),
            db: format!("sv_{tag}_{n}"),
        };
        psql(
            "postgres",
            &format!(
                "CREATE ROLE {} LOGIN; CREATE ROLE {} LOGIN;",
                s.app, s.report
            ),
        );
        psql(
            "postgres",
            &format!("CREATE DATABASE {} OWNER {}", s.db, s.app),
        );
        let (app, report) = (&s.app, &s.report);
        psql(
            &s.db,
            &format!(
                "SET ROLE {app};
                 CREATE SCHEMA school;
                 CREATE TABLE school.pupils (id int PRIMARY KEY, name text, class_id int, secret text);
                 CREATE TABLE school.fees (id int PRIMARY KEY, pupil_id int REFERENCES school.pupils, amount numeric);
                 CREATE TABLE school.log (id serial PRIMARY KEY, msg text);
                 INSERT INTO school.pupils SELECT g, 'Pupil ' || g, g % 3, 'medical note ' || g FROM generate_series(1, 60) g;
                 INSERT INTO school.fees SELECT g, g, g * 10 FROM generate_series(1, 60) g;
                 GRANT USAGE ON SCHEMA school TO {report};
                 GRANT SELECT ON school.fees TO {report};
                 GRANT SELECT (id, name, class_id) ON school.pupils TO {report};
                 ALTER DEFAULT PRIVILEGES IN SCHEMA school GRANT SELECT ON TABLES TO {report};
                 ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
                 ALTER TABLE school.pupils ENABLE ROW LEVEL SECURITY;
                 ALTER TABLE school.pupils FORCE ROW LEVEL SECURITY;
                 CREATE POLICY app_all ON school.pupils TO {app} USING (true);
                 CREATE POLICY report_one_class ON school.pupils FOR SELECT TO {report} USING (class_id = 1);
                 CREATE RULE log_fee AS ON DELETE TO school.fees DO ALSO INSERT INTO school.log (msg) VALUES ('deleted fee ' || old.id);
                 CREATE FUNCTION school.total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM school.fees';
                 GRANT EXECUTE ON FUNCTION school.total() TO {report};
                 CREATE FUNCTION school.reset_all() RETURNS void LANGUAGE sql SECURITY DEFINER AS 'DELETE FROM school.log';
                 REVOKE ALL ON FUNCTION school.reset_all() FROM PUBLIC, {app};
                 CREATE AGGREGATE school.amount_sum(numeric) (SFUNC = numeric_add, STYPE = numeric, INITCOND = '0');
                 GRANT EXECUTE ON FUNCTION school.amount_sum(numeric) TO {report};
                 CREATE AGGREGATE school.running_total(int) (SFUNC = int4pl, STYPE = int4, INITCOND = '0', \
                     MSFUNC = int4pl, MINVFUNC = int4mi, MSTYPE = int4, MINITCOND = '0', PARALLEL = SAFE);
                 CREATE COLLATION school.nocase (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
                 ALTER TABLE school.pupils ADD COLUMN nickname text COLLATE school.nocase;
                 CREATE FUNCTION school.close_to(numeric, numeric) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT abs($1 - $2) < 1';
                 CREATE OPERATOR school.~= (FUNCTION = school.close_to, LEFTARG = numeric, RIGHTARG = numeric, COMMUTATOR = OPERATOR(school.~=));
                 CREATE TABLE school.documents (id int PRIMARY KEY, scan oid);
                 INSERT INTO school.documents VALUES (1, lo_from_bytea(0, 'report card of pupil 1')), \
                   (2, lo_from_bytea(0, convert_to((SELECT string_agg(md5(g::text), '') FROM generate_series(1, 200000) g), 'UTF8'))), \
                   (3, lo_from_bytea(0, ''));
                 GRANT SELECT ON school.documents TO {report};
                 DO $$ BEGIN EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO {report}', (SELECT scan FROM school.documents WHERE id = 1)); END $$;
                 CREATE PUBLICATION school_fees_out FOR TABLE school.fees (id, amount) WHERE (amount > 100) WITH (publish = 'insert');
                 REVOKE CONNECT ON DATABASE {db} FROM PUBLIC;
                 RESET ROLE;
                 CREATE FUNCTION public.{app}_ddl_log() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN NULL; END $$;
                 CREATE EVENT TRIGGER {app}_ddl ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'ALTER TABLE') EXECUTE FUNCTION public.{app}_ddl_log();
                 ALTER EVENT TRIGGER {app}_ddl ENABLE ALWAYS;
                 GRANT CONNECT ON DATABASE {db} TO {report};",
                db = s.db
            ),
        );
        s
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@{}:{}/{}",
            pg_host(),
            pg_port(),
            self.db
        )
    }

    /// What each role may do in `db`: the application reads and writes everything, the
    /// reporting role reads its class's pupils (three columns) and the fees, nothing more.
    fn check_usable(&self, db: &str, app: &str, report: Option<&str>) {
        assert_eq!(
            psql_as(app, db, "SELECT count(*) FROM school.pupils").unwrap(),
            "60"
        );
        psql_as(
            app,
            db,
            "INSERT INTO school.pupils VALUES (1000, 'New', 1, 'x'); UPDATE school.fees SET amount = 1 WHERE id = 1; DELETE FROM school.fees WHERE id = 2; INSERT INTO school.log (msg) VALUES ('by the app')",
        )
        .unwrap_or_else(|e| panic!("{app} cannot write in {db}: {e}"));
        // The rule came back: the delete above was logged.
        assert_eq!(
            psql_as(
                app,
                db,
                "SELECT count(*) FROM school.log WHERE msg = 'deleted fee 2'"
            )
            .unwrap(),
            "1"
        );
        let Some(report) = report else { return };
        // The policy: class 1 only (20 of the 60, and the new pupil).
        assert_eq!(
            psql_as(report, db, "SELECT count(*) FROM school.pupils").unwrap(),
            "21"
        );
        assert_eq!(
            psql_as(report, db, "SELECT count(*) FROM school.fees").unwrap(),
            "59"
        );
        assert!(psql_as(report, db, "SELECT school.total()").is_ok());
        assert_eq!(
            psql_as(
                report,
                db,
                "SELECT school.amount_sum(amount) = sum(amount) FROM school.fees"
            )
            .unwrap(),
            "t"
        );
        // The large objects: their bytes, and who may read them.
        assert_eq!(
            psql_as(
                report,
                db,
                "SELECT convert_from(lo_get(scan), 'UTF8') FROM school.documents WHERE id = 1"
            )
            .unwrap(),
            "report card of pupil 1"
        );
        let denied = psql_as(
            report,
            db,
            "SELECT lo_get(scan) FROM school.documents WHERE id = 2",
        )
        .unwrap_err();
        assert!(denied.contains("permission denied"), "{denied}");
        let denied = psql_as(report, db, "SELECT secret FROM school.pupils").unwrap_err();
        assert!(denied.contains("permission denied"), "{denied}");
        let denied = psql_as(report, db, "INSERT INTO school.fees VALUES (999, 1, 1)").unwrap_err();
        assert!(denied.contains("permission denied"), "{denied}");
    }

    fn drop_all(&self, dbs: &[&str]) {
        for db in dbs.iter().chain([&self.db.as_str()]) {
            psql(
                "postgres",
                &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            );
        }
        psql(
            "postgres",
            &format!(
                "DROP ROLE IF EXISTS {}; DROP ROLE IF EXISTS {};",
                self.app, self.report
            ),
        );
    }
}

#[test]
fn owners_privileges_policies_and_rules_travel_with_create_db() {
    let school = School::new("own");
    let env = Env::new();
    let b = env.json(&["--db", &school.url(), "backup"]);
    let warnings = b["warnings"].to_string();
    assert!(
        !warnings.contains("policy") && !warnings.contains("rule"),
        "{b}"
    );
    let copy = format!("{}_copy", school.db);
    let restored = env.json(&[
        "--db",
        &school.url(),
        "restore",
        b["id"].as_str().unwrap(),
        "--create-db",
        &copy,
    ]);
    assert_eq!(restored["rows"], 123, "{restored}");

    // The schema as pg_dump writes it, owners and privileges included, is the same.
    let (before, after) = (schema_dump(&school.db), schema_dump(&copy));
    assert!(
        before.contains("OWNER TO") && before.contains("GRANT SELECT("),
        "{before}"
    );
    if before != after {
        let diff: Vec<String> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("- {a}\n+ {b}"))
            .collect();
        panic!("the restored schema differs:\n{}", diff.join("\n"));
    }
    // The database itself: its owner and who may connect.
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) || ' ' || datacl::text FROM pg_database WHERE datname = '{copy}'"
            )
        ),
        psql(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) || ' ' || datacl::text FROM pg_database WHERE datname = '{}'",
                school.db
            )
        )
    );
    // The large objects' bytes and owners are the same (one of 6.4 MB, in two parts; an empty one).
    let objects = "SELECT string_agg(d.id || ':' || md5(lo_get(d.scan)) || ':' || pg_get_userbyid(m.lomowner), ',' ORDER BY d.id) \
                   FROM school.documents d JOIN pg_largeobject_metadata m ON m.oid = d.scan";
    assert_eq!(psql(&copy, objects), psql(&school.db, objects));
    assert_eq!(
        psql(
            &copy,
            "SELECT length(lo_get(scan)) FROM school.documents WHERE id = 2"
        ),
        "6400000"
    );
    school.check_usable(&copy, &school.app, Some(&school.report));
    school.drop_all(&[&copy]);
}

#[test]
fn a_server_without_the_roles_is_told_which_and_offered_create_roles_or_owner() {
    let school = School::new("roles");
    let env = Env::new();
    let b = env.json(&["--db", &school.url(), "backup"]);
    let id = b["id"].as_str().unwrap().to_string();
    // The server loses the database and its roles (a new server has neither).
    psql(
        "postgres",
        &format!("DROP DATABASE {} WITH (FORCE)", school.db),
    );
    psql(
        "postgres",
        &format!("DROP ROLE {}; DROP ROLE {};", school.app, school.report),
    );
    let server = format!("postgres://postgres@{}:{}/postgres", pg_host(), pg_port());

    // Refused before anything is made, naming both roles and the two ways on.
    let first = format!("{}_a", school.db);
    let (code, line) = env.fails(&["--db", &server, "restore", &id, "--create-db", &first]);
    assert_eq!(code, "target_mismatch", "{line}");
    assert!(
        line.contains(&school.app) && line.contains(&school.report),
        "{line}"
    );
    assert!(
        line.contains("--create-roles") && line.contains("--owner"),
        "{line}"
    );
    assert_eq!(
        psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{first}'")
        ),
        "0"
    );

    // A test restore reports the missing roles without failing.
    let checked = env.json(&["--db", &server, "verify", &id, "--test-restore"]);
    let said = checked.to_string();
    assert!(
        said.contains("roles not on this server") && said.contains(&school.app),
        "{checked}"
    );

    // --create-roles: made without login; once given a login, the application works.
    let second = format!("{}_b", school.db);
    let restored = env.json(&[
        "--db",
        &server,
        "restore",
        &id,
        "--create-db",
        &second,
        "--create-roles",
    ]);
    assert!(
        restored["warnings"].to_string().contains("without login"),
        "{restored}"
    );
    assert_eq!(
        psql(
            "postgres",
            &format!(
                "SELECT string_agg(rolname || ':' || rolcanlogin, ',' ORDER BY rolname) FROM pg_roles WHERE rolname IN ('{}', '{}')",
                school.app, school.report
            )
        ),
        format!("{}:false,{}:false", school.app, school.report)
    );
    psql(
        "postgres",
        &format!(
            "ALTER ROLE {} LOGIN; ALTER ROLE {} LOGIN;",
            school.app, school.report
        ),
    );
    school.check_usable(&second, &school.app, Some(&school.report));
    psql("postgres", &format!("DROP DATABASE {second} WITH (FORCE)"));
    psql(
        "postgres",
        &format!("DROP ROLE {}; DROP ROLE {};", school.app, school.report),
    );

    // --owner: everything belongs to one existing role, which can use it at once.
    let owner = format!("{}_owner", school.db);
    psql("postgres", &format!("CREATE ROLE {owner} LOGIN"));
    let third = format!("{}_c", school.db);
    env.json(&[
        "--db",
        &server,
        "restore",
        &id,
        "--create-db",
        &third,
        "--owner",
        &owner,
    ]);
    assert_eq!(
        psql(
            &third,
            "SELECT string_agg(DISTINCT pg_get_userbyid(relowner)::text, ',') FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'school'"
        ),
        owner
    );
    school.check_usable(&third, &owner, None);
    psql("postgres", &format!("DROP DATABASE {third} WITH (FORCE)"));
    psql("postgres", &format!("DROP ROLE {owner}"));
}

/// `psql -f FILE` as `user`, with `vars`.
fn load_as(user: &str, db: &str, file: &std::path::Path, vars: &[&str]) {
    let mut args: Vec<String> = vars
        .iter()
        .flat_map(|v| ["-v".to_string(), v.to_string()])
        .collect();
    args.extend(["-f".to_string(), file.display().to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if let Err(e) = support::psql_as(user, db, &args) {
        panic!("loading {} as {user}: {e}", file.display());
    }
}

#[test]
fn the_erp_restored_into_a_new_database_is_usable_by_its_own_role_at_once() {
    let Some(fx) = fixtures() else { return };
    let n = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let (role, db) = (format!("sv_erp_app_{n}"), format!("sv_erp_owned_{n}"));
    psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
    // The ERP's schema made by the ERP's own role (not a superuser); a small school in it (the
    // generator ends with a CHECKPOINT, which only a superuser may run).
    load_as(&role, &db, &fx.join("erp-schema.sql"), &[]);
    load_as(
        "postgres",
        &db,
        &fx.join("gen-erp-data.sql"),
        &["sf=1", "students=40", "teachers=90", "seed=7"],
    );
    let env = Env::new();
    let url = format!("postgres://postgres@{}:{}/{db}", pg_host(), pg_port());
    let b = env.json(&["--db", &url, "backup"]);
    let copy = format!("{db}_copy");
    env.json(&[
        "--db",
        &url,
        "restore",
        b["id"].as_str().unwrap(),
        "--create-db",
        &copy,
    ]);
    // Every table, view and sequence is the ERP role's again, and the role can read and
    // write every table of it straight away.
    let foreign = psql(
        &copy,
        &format!(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S') \
             AND pg_get_userbyid(c.relowner) <> '{role}'"
        ),
    );
    assert_eq!(foreign, "0", "objects not owned by {role}");
    let tables = psql_as(
        &role,
        &copy,
        "DO $$ DECLARE r record; n bigint; total bigint := 0; BEGIN \
           FOR r IN SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'public' LOOP \
             EXECUTE 'SELECT count(*) FROM ' || r.t INTO n; total := total + 1; \
             EXECUTE 'DELETE FROM ' || r.t || ' WHERE false'; \
           END LOOP; \
           RAISE NOTICE 'tables %', total; END $$; \
         SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
    )
    .unwrap_or_else(|e| panic!("{role} cannot use the restored ERP: {e}"));
    assert_eq!(tables, "175");
    psql("postgres", &format!("DROP DATABASE {copy} WITH (FORCE)"));
    psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"));
    psql("postgres", &format!("DROP ROLE {role}"));
}
