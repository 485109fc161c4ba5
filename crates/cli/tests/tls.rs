//! TLS to PostgreSQL: `verify-full` checks the server's certificate and its name, `verify-ca`
//! the certificate only, `require` neither. A cluster of its own serves a certificate for
//! `localhost` signed by a CA the test makes with openssl.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Env;

/// A PostgreSQL cluster with TLS on, its certificate for `localhost` signed by `ca`.
struct TlsCluster {
    version: String,
    name: String,
    port: u16,
    ca: PathBuf,
    other_ca: PathBuf,
    _certs: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is missing: install it with apt-get install openssl (make test does)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

impl TlsCluster {
    fn start() -> TlsCluster {
        let certs = tempfile::tempdir().unwrap();
        let d = certs.path().to_path_buf();
        let d = d.as_path();
        make_ca(d, "ca");
        make_ca(d, "other-ca");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
                "-out",
                "server.crt",
            ],
        );

        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server packages are missing (make test installs them)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
            .unwrap();
        let port = 30000 + (rand::random::<u16>() % 10000);
        let name = format!("svtls{port}");
        let ok = Command::new("pg_createcluster")
            .args([&version, &name, "--port", &port.to_string()])
            .args(["--", "--auth-local=trust", "--auth-host=trust"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(ok, "pg_createcluster failed: this test needs Debian's postgresql-common and root (make test has both)");
        let cluster = TlsCluster {
            version: version.clone(),
            name: name.clone(),
            port,
            ca: d.join("ca.pem"),
            other_ca: d.join("other-ca.pem"),
            _certs: certs,
        };
        // The server reads its key from its own data folder, owned by postgres, mode 0600.
        let data = PathBuf::from(format!("/var/lib/postgresql/{version}/{name}"));
        for f in ["server.crt", "server.key"] {
            std::fs::copy(d.join(f), data.join(format!("sv-{f}"))).unwrap();
            let ok = Command::new("chown")
                .args([
                    "postgres:postgres",
                    data.join(format!("sv-{f}")).to_str().unwrap(),
                ])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown failed");
        }
        let ok = Command::new("chmod")
            .args(["600", data.join("sv-server.key").to_str().unwrap()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chmod failed");
        let conf = format!("/etc/postgresql/{version}/{name}/conf.d/sv-tls.conf");
        std::fs::write(
            &conf,
            "ssl = on\nssl_cert_file = 'sv-server.crt'\nssl_key_file = 'sv-server.key'\nlisten_addresses = 'localhost,127.0.0.1'\n",
        )
        .unwrap();
        let started = Command::new("pg_ctlcluster")
            .args([&version, &name, "start"])
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "the TLS cluster did not start: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        cluster.psql("CREATE TABLE pupils (id int PRIMARY KEY, name text)");
        cluster.psql("INSERT INTO pupils SELECT g, 'pupil ' || g FROM generate_series(1, 25) g");
        cluster
    }

    fn psql(&self, sql: &str) {
        let out = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "/var/run/postgresql",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
            ])
            .args(["-c", sql])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TlsCluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args([&self.version, &self.name, "--stop"])
            .output();
    }
}

/// Set the database in a settings file of its own and back up: the code of the failure, if any.
fn backup_with(env: &Env, host: &str, port: u16, tls: &str, ca: Option<&Path>) -> Option<String> {
    let config = env.dir.path().join("config.toml");
    let mut set = env.cmd();
    set.env("SCHOOLVAULT_CONFIG", &config).args([
        "config",
        "set-db",
        "--host",
        host,
        "--port",
        &port.to_string(),
        "--name",
        "postgres",
        "--user",
        "postgres",
        "--tls",
        tls,
    ]);
    if let Some(ca) = ca {
        set.arg("--ca-file").arg(ca);
    }
    let out = set.output().unwrap();
    assert!(
        out.status.success(),
        "config set-db: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env
        .cmd()
        .env("SCHOOLVAULT_CONFIG", &config)
        .args(["--json", "backup"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if out.status.success() {
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["rows"], 25, "{doc}");
        None
    } else {
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("error:")).count(),
            1,
            "one error line: {stderr}"
        );
        Some(doc["error"]["code"].as_str().unwrap().to_string())
    }
}

#[test]
fn verify_full_checks_the_certificate_and_the_name() {
    let cluster = TlsCluster::start();
    let env = Env::new();
    let port = cluster.port;

    // The right CA and the certificate's name: the backup runs.
    assert_eq!(
        backup_with(&env, "localhost", port, "verify-full", Some(&cluster.ca)),
        None
    );
    // A CA that did not sign the server's certificate: refused (someone else answering).
    assert_eq!(
        backup_with(
            &env,
            "localhost",
            port,
            "verify-full",
            Some(&cluster.other_ca)
        )
        .as_deref(),
        Some("db_unreachable")
    );
    // No CA file: the public roots, which did not sign it either.
    assert_eq!(
        backup_with(&env, "localhost", port, "verify-full", None).as_deref(),
        Some("db_unreachable")
    );
    // The right CA but another name (the certificate is for localhost only): refused.
    assert_eq!(
        backup_with(&env, "127.0.0.1", port, "verify-full", Some(&cluster.ca)).as_deref(),
        Some("db_unreachable")
    );
    // verify-ca checks the signature: the right CA passes, another CA is refused. (libpq's
    // verify-ca would also accept another name; the driver here, sqlx 0.8.6 on rustls 0.23,
    // checks the name in verify-ca too, which is stricter, never weaker: README, Security.)
    assert_eq!(
        backup_with(&env, "localhost", port, "verify-ca", Some(&cluster.ca)),
        None
    );
    assert_eq!(
        backup_with(
            &env,
            "localhost",
            port,
            "verify-ca",
            Some(&cluster.other_ca)
        )
        .as_deref(),
        Some("db_unreachable")
    );
    // require encrypts without checking anything: it connects whatever the certificate.
    assert_eq!(backup_with(&env, "127.0.0.1", port, "require", None), None);

    // The settings file names the mode and the CA, and a CA file with another mode is refused.
    let text = std::fs::read_to_string(env.dir.path().join("config.toml")).unwrap();
    assert!(text.contains("tls = \"require\""), "{text}");
    let out = env
        .cmd()
        .env("SCHOOLVAULT_CONFIG", env.dir.path().join("config.toml"))
        .args([
            "config",
            "set-db",
            "--host",
            "localhost",
            "--name",
            "x",
            "--user",
            "u",
        ])
        .args(["--tls", "require", "--ca-file"])
        .arg(&cluster.ca)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify-ca or verify-full"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
