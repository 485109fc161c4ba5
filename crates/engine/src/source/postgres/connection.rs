//! Connecting to PostgreSQL: the target (URL, TLS mode, password from the keychain), the
//! session settings every connection gets, and the mapping of database errors to one-line
//! errors that say what to do.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Row};

use crate::error::{Error, ErrorKind, Result};

pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a database is: a `postgres://` URL. Its password, if any, is never shown.
#[derive(Clone)]
pub struct PgTarget {
    pub(super) options: PgConnectOptions,
}

/// Whether the connection uses TLS, and what it checks (libpq's `sslmode`).
///
/// `Prefer` and `Require` encrypt but do not check who answers: they protect against someone
/// who can only listen, not against someone who can redirect the connection (a rogue server
/// would receive the password and the data). `VerifyCa` checks the server's certificate against
/// a CA (the settings' CA file, else the public web roots); `VerifyFull` also checks that the
/// certificate names the host connected to, and is the one mode safe on an untrusted network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum Tls {
    /// Never.
    Disable,
    /// When the server offers it (PostgreSQL's default); not checked.
    #[default]
    Prefer,
    /// Always; fail when the server has no TLS. The certificate is not checked.
    Require,
    /// Always, and the server's certificate must be signed by the trusted CA.
    VerifyCa,
    /// As `VerifyCa`, and the certificate must name the host.
    VerifyFull,
}

impl Tls {
    /// The libpq name: `disable`, `prefer`, `require`, `verify-ca`, `verify-full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Tls::Disable => "disable",
            Tls::Prefer => "prefer",
            Tls::Require => "require",
            Tls::VerifyCa => "verify-ca",
            Tls::VerifyFull => "verify-full",
        }
    }

    /// Parse a libpq `sslmode` name.
    ///
    /// # Errors
    /// `InvalidInput` for anything else.
    pub fn parse(text: &str) -> Result<Tls> {
        match text {
            "disable" => Ok(Tls::Disable),
            "prefer" => Ok(Tls::Prefer),
            "require" => Ok(Tls::Require),
            "verify-ca" => Ok(Tls::VerifyCa),
            "verify-full" => Ok(Tls::VerifyFull),
            other => Err(Error::new(
                ErrorKind::InvalidInput,
                format!("The TLS mode {other:?} is unknown"),
                "Choose disable, prefer, require, verify-ca or verify-full",
            )),
        }
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, Tls::VerifyCa | Tls::VerifyFull)
    }
}

/// What every session of ours sets at connection: its name (seen in `pg_stat_activity`), and
/// `standard_conforming_strings = on`, which the captured schema's string literals are written
/// for, whatever the server's or the database's default.
pub(super) fn session_options(options: PgConnectOptions) -> PgConnectOptions {
    options
        .application_name("schoolvault")
        .options([("standard_conforming_strings", "on")])
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgTarget({})", self.describe())
    }
}

impl PgTarget {
    /// Parse a `postgres://user[:password]@host[:port]/database` URL.
    ///
    /// # Errors
    /// `InvalidInput` for anything else; the message does not repeat the URL (it may hold a
    /// password).
    pub fn parse(url: &str) -> Result<PgTarget> {
        let options: PgConnectOptions = url.parse().map_err(|_| {
            Error::new(
                ErrorKind::InvalidInput,
                "The database address is not a valid PostgreSQL URL",
                "Write it as postgres://USER@HOST:PORT/DATABASE (put the password in the keychain or PGPASSWORD, not in the URL)",
            )
            .in_app("Check the server, port and database name in Settings → School database")
        })?;
        Ok(PgTarget {
            options: session_options(options),
        })
    }

    /// Whether a `postgres://` URL carries a password (which then shows in `ps` and shell
    /// history: the CLI warns).
    pub fn url_has_password(url: &str) -> bool {
        url::Url::parse(url).is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()))
    }

    /// A connection from its parts (the settings screen's fields); the password stays in memory.
    pub fn from_parts(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: Option<&str>,
        tls: Tls,
    ) -> PgTarget {
        let options = PgConnectOptions::new_without_pgpass()
            .host(host)
            .port(port)
            .database(database)
            .username(user)
            .ssl_mode(match tls {
                Tls::Disable => sqlx::postgres::PgSslMode::Disable,
                Tls::Prefer => sqlx::postgres::PgSslMode::Prefer,
                Tls::Require => sqlx::postgres::PgSslMode::Require,
                Tls::VerifyCa => sqlx::postgres::PgSslMode::VerifyCa,
                Tls::VerifyFull => sqlx::postgres::PgSslMode::VerifyFull,
            });
        let mut options = session_options(options);
        if let Some(p) = password {
            options = options.password(p);
        } else if let Ok(p) = std::env::var("PGPASSWORD") {
            options = options.password(&p);
        }
        PgTarget { options }
    }

    /// Trust the CA certificate(s) in the PEM file `path` for `verify-ca` / `verify-full`.
    #[must_use]
    pub fn with_ca_file(self, path: &std::path::Path) -> PgTarget {
        PgTarget {
            options: self.options.ssl_root_cert(path),
        }
    }

    /// `user@host:port/database`, safe to show.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}:{}/{}",
            self.options.get_username(),
            self.options.get_host(),
            self.options.get_port(),
            self.database()
        )
    }

    /// `user@host:port`: the server and login, without the database.
    pub fn server(&self) -> String {
        format!(
            "{}@{}:{}",
            self.options.get_username(),
            self.options.get_host(),
            self.options.get_port()
        )
    }

    /// The login it connects as.
    pub fn user(&self) -> String {
        self.options.get_username().to_string()
    }

    /// The database's name.
    pub fn database(&self) -> String {
        self.options
            .get_database()
            .unwrap_or(self.options.get_username())
            .to_string()
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, database: &str) -> PgTarget {
        PgTarget {
            options: self.options.clone().database(database),
        }
    }

    /// Open a connection.
    ///
    /// # Errors
    /// `DbUnreachable`, `DbAuth`, `NotFound` (no such database) or `Database`.
    pub async fn connect(&self) -> Result<PgConnection> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(db_error(&e, self)),
            Err(_) => Err(Error::new(
                ErrorKind::DbUnreachable,
                format!("The database server at {} did not answer within {} seconds", self.describe(), CONNECT_TIMEOUT.as_secs()),
                "Check that PostgreSQL is running there and that this computer can reach it (firewall, VPN)",
            )),
        }
    }
}

/// Column `i` of a catalog row, or an error (never a panic) when it is NULL where a value was
/// expected or of another type: a server version or extension may answer differently.
///
/// # Errors
/// `Database`, naming the column.
pub fn col<'r, T>(row: &'r sqlx::postgres::PgRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(i).map_err(|e| {
        Error::new(
            ErrorKind::Database,
            format!("The database server answered a catalog query unexpectedly (column {i}: {e})"),
            "Nothing was changed; please report this with the server's version",
        )
    })
}

/// Map a database error to an engine error that says what to do.
pub fn db_error(err: &sqlx::Error, target: &PgTarget) -> Error {
    let error = db_error_inner(err, target);
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => error.with_cause(crate::error::Cause::SqlState(code.into_owned())),
            None => error,
        },
        _ => error,
    }
}

fn db_error_inner(err: &sqlx::Error, target: &PgTarget) -> Error {
    let at = target.describe();
    match err {
        // rustls reports a refused certificate as invalid data on the socket.
        sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => Error::new(
            ErrorKind::DbUnreachable,
            format!("The secure connection to {at} failed: {io}"),
            "Check the TLS settings: with verify-ca or verify-full, that the CA file is the one that signed the server's certificate and (verify-full) that the certificate names this host",
        ),
        sqlx::Error::Io(io) => Error::new(
            ErrorKind::DbUnreachable,
            format!("Cannot reach the database server at {at} ({})", io.kind()),
            "Check that PostgreSQL is running there and that the address and port are right",
        ),
        sqlx::Error::Tls(e) => Error::new(
            ErrorKind::DbUnreachable,
            format!("The secure connection to {at} failed: {e}"),
            "Check the server's TLS settings; with verify-ca or verify-full, that the CA file is the one that signed the server's certificate and (verify-full) that the certificate names this host",
        ),
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            let msg = db.message();
            match code.as_ref() {
                "28P01" => Error::new(
                    ErrorKind::DbAuth,
                    format!("The database server {at} rejected the password for user {}", target.options.get_username()),
                    "Check the password (schoolvault config set-db --password-stdin, or PGPASSWORD)",
                )
                .in_app("Type the right password in Settings → School database, then Test connection and Save"),
                "28000" => Error::new(
                    ErrorKind::DbAuth,
                    format!("The database server {at} refused the login: {msg}"),
                    "Check the user name, and that the server's pg_hba.conf allows this computer",
                ),
                "3D000" => Error::new(
                    ErrorKind::NotFound,
                    format!("The database server {} has no database {:?}", target.options.get_host(), target.database()),
                    "Check the database name in the settings",
                ),
                "42501" => Error::new(
                    ErrorKind::TableUnreadable,
                    format!("The database refused access: {msg}"),
                    format!("Grant the backup user SELECT on it (GRANT SELECT ON ALL TABLES IN SCHEMA … TO {}), or back up as the database owner", target.options.get_username()),
                ),
                "55P03" => Error::new(
                    ErrorKind::Database,
                    format!("A table is locked by another session: {msg}"),
                    "Another program (a migration?) holds an exclusive lock; try again when it has finished",
                ),
                "57P01" | "57P02" | "57P03" => Error::new(
                    ErrorKind::DbUnreachable,
                    format!("The database server ended the connection: {msg}"),
                    "The server was shut down or the session was terminated; try again",
                ),
                _ => Error::new(
                    ErrorKind::Database,
                    format!("The database reported an error: {msg} (SQLSTATE {code})"),
                    "Nothing was changed; fix the cause and try again",
                ),
            }
        }
        sqlx::Error::Protocol(p) => Error::new(
            ErrorKind::DbUnreachable,
            format!("The connection to {at} failed: {p}"),
            "Check that the address points at a PostgreSQL server; try again",
        ),
        other => Error::new(
            ErrorKind::Database,
            format!("The database connection to {at} failed: {other}"),
            "Try again; if it persists, check the server's log",
        ),
    }
}

pub(super) async fn exec(conn: &mut PgConnection, sql: &str, target: &PgTarget) -> Result<()> {
    sqlx::Executor::execute(&mut *conn, sqlx::raw_sql(sql))
        .await
        .map(|_| ())
        .map_err(|e| db_error(&e, target))
}
