//! MariaDB and MySQL: the connection (`mysql://` or `mariadb://` addresses, the password from
//! the keychain or `MYSQL_PWD`, never the command line), what its errors mean for the user,
//! and ([`snapshot`]) the consistent snapshot that implements [`crate::source::Source`].
//!
//! Tables travel in the `LOAD DATA` text form: one row per line, columns separated by a tab,
//! `\N` for NULL, and `\\`, `\t`, `\n`, `\r`, `\0`, `\Z` escaped; every value exactly as the
//! server's text protocol sends it (DECIMAL digits, DATETIME(6) micro-seconds, BIT and BLOB
//! bytes, JSON text), with TIMESTAMPs in UTC.

mod restore;
mod sessions;
mod snapshot;
mod swap;

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlDatabaseError};
use sqlx::ConnectOptions;

use crate::error::{Error, ErrorKind, Result};

pub use restore::{
    create_database, database_exists, drop_database, drop_database_if_empty, drop_leftovers,
    live_row_counts, may_create_database, probe, NewDatabase,
};
pub use sessions::{end_sessions, holding_sessions, other_sessions};
pub use snapshot::{MyReader, MySnapshot, STATEMENT_END};
pub use swap::{
    create_triggers, drop_triggers, repoint_sequence_defaults, swap_tables, tables_of, triggers_of,
    wait_for_tables, TriggerDef,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A MariaDB or MySQL database to back up.
#[derive(Clone)]
pub struct MyTarget {
    options: MySqlConnectOptions,
}

impl std::fmt::Debug for MyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MyTarget({})", self.describe())
    }
}

impl MyTarget {
    /// Whether `url` names a MariaDB or MySQL database.
    pub fn is_url(url: &str) -> bool {
        let u = url.trim_start().to_ascii_lowercase();
        u.starts_with("mysql://") || u.starts_with("mariadb://")
    }

    /// Parse a `mysql://USER@HOST:PORT/DATABASE` (or `mariadb://`) address; the password comes
    /// from `MYSQL_PWD` when the address has none.
    ///
    /// # Errors
    /// `InvalidInput` for anything else (the message does not repeat the address: it may hold
    /// a password), or an address without a database.
    pub fn parse(url: &str) -> Result<MyTarget> {
        let bad = || {
            Error::new(
                ErrorKind::InvalidInput,
                "The database address is not a valid MariaDB/MySQL URL",
                "Write it as mysql://USER@HOST:PORT/DATABASE (put the password in MYSQL_PWD, not in the URL)",
            )
        };
        let trimmed = url.trim();
        let rest = trimmed.split_once("://").map(|(_, r)| r).ok_or_else(bad)?;
        let mut options: MySqlConnectOptions =
            format!("mysql://{rest}").parse().map_err(|_| bad())?;
        if options.get_database().is_none_or(str::is_empty) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "The database address names no database",
                "Write it as mysql://USER@HOST:PORT/DATABASE",
            ));
        }
        if !MyTarget::url_has_password(trimmed) {
            if let Ok(p) = std::env::var("MYSQL_PWD") {
                options = options.password(&p);
            }
        }
        Ok(MyTarget {
            options: session_options(options),
        })
    }

    /// A connection from its parts (the settings screen's fields); the password stays in
    /// memory (none: `MYSQL_PWD`, else no password). `tls` maps onto MariaDB's SSL modes
    /// (`verify-full` checks the host name too), with `ca_file` trusted for the checking modes.
    pub fn from_parts(
        host: &str,
        port: u16,
        database: &str,
        user: &str,
        password: Option<&str>,
        tls: crate::source::postgres::Tls,
        ca_file: Option<&std::path::Path>,
    ) -> MyTarget {
        use crate::source::postgres::Tls;
        use sqlx::mysql::MySqlSslMode;
        let mut options = MySqlConnectOptions::new()
            .host(host)
            .port(port)
            .database(database)
            .username(user)
            .ssl_mode(match tls {
                Tls::Disable => MySqlSslMode::Disabled,
                Tls::Prefer => MySqlSslMode::Preferred,
                Tls::Require => MySqlSslMode::Required,
                Tls::VerifyCa => MySqlSslMode::VerifyCa,
                Tls::VerifyFull => MySqlSslMode::VerifyIdentity,
            });
        options = session_options(options);
        if let Some(ca) = ca_file.filter(|_| tls.verifies()) {
            options = options.ssl_ca(ca);
        }
        if let Some(p) = password {
            options = options.password(p);
        } else if let Ok(p) = std::env::var("MYSQL_PWD") {
            options = options.password(&p);
        }
        MyTarget { options }
    }

    /// Whether the address carries a password (which then shows in `ps` and shell history:
    /// the CLI warns).
    pub fn url_has_password(url: &str) -> bool {
        let rest = url.trim().split_once("://").map_or("", |(_, r)| r);
        url::Url::parse(&format!("mysql://{rest}"))
            .is_ok_and(|u| u.password().is_some_and(|p| !p.is_empty()))
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

    /// The login's user name.
    pub fn user(&self) -> String {
        self.options.get_username().to_string()
    }

    /// The database's name.
    pub fn database(&self) -> String {
        self.options.get_database().unwrap_or_default().to_string()
    }

    /// The same server and login, another database.
    pub fn with_database(&self, database: &str) -> MyTarget {
        MyTarget {
            options: self.options.clone().database(database),
        }
    }

    /// Open a connection.
    ///
    /// # Errors
    /// `DbUnreachable`, `DbAuth`, `NotFound` (no such database) or `Database`.
    pub async fn connect(&self) -> Result<MySqlConnection> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.options.connect()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(my_error(&e, self)),
            Err(_) => Err(Error::new(
                ErrorKind::DbUnreachable,
                format!(
                    "The database server at {} did not answer within {} seconds",
                    self.describe(),
                    CONNECT_TIMEOUT.as_secs()
                ),
                "Check that MariaDB/MySQL is running there and that this computer can reach it (firewall, VPN)",
            )),
        }
    }
}

/// What every session runs with: the server's own SQL mode (no PIPES_AS_CONCAT, so SHOW CREATE
/// answers as the server writes it), TIMESTAMPs in UTC whatever the server's zone, utf8mb4.
fn session_options(options: MySqlConnectOptions) -> MySqlConnectOptions {
    options
        .pipes_as_concat(false)
        .timezone(Some("+00:00".to_string()))
        .charset("utf8mb4")
}

/// `name` quoted as a MariaDB/MySQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The server's error number, when it answered with one.
fn number(err: &sqlx::Error) -> Option<u16> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// Map a database error to an engine error that says what to do.
pub fn my_error(err: &sqlx::Error, target: &MyTarget) -> Error {
    let at = target.describe();
    let user = target.options.get_username();
    match err {
        sqlx::Error::Io(io) => Error::new(
            ErrorKind::DbUnreachable,
            format!("Cannot reach the database server at {at} ({})", io.kind()),
            "Check that MariaDB/MySQL is running there and that the address and port are right",
        ),
        sqlx::Error::Tls(e) => Error::new(
            ErrorKind::DbUnreachable,
            format!("The secure connection to {at} failed: {e}"),
            "Check the server's TLS settings",
        ),
        sqlx::Error::Database(db) => {
            let msg = db.message();
            match number(err) {
                Some(1045) => Error::new(
                    ErrorKind::DbAuth,
                    format!("The database server {at} rejected the login of user {user}"),
                    "Check the user and the password (MYSQL_PWD, or the keychain)",
                )
                .in_app("Type the right user and password in Settings → School database, then Test connection and Save"),
                Some(1044) => Error::new(
                    ErrorKind::DbAuth,
                    format!("User {user} may not use the database {}: {msg}", target.database()),
                    format!("GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON {}.* TO the backup's user", quote_ident(&target.database())),
                ),
                Some(1049) => Error::new(
                    ErrorKind::NotFound,
                    format!("The database server {} has no database {:?}", target.options.get_host(), target.database()),
                    "Check the database name in the address",
                ),
                Some(1142 | 1143 | 1227 | 1370) => Error::new(
                    ErrorKind::TableUnreadable,
                    format!("The database refused access: {msg}"),
                    format!("Grant the backup user what a backup reads (GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON {}.* TO …), or back up as the database's owner", quote_ident(&target.database())),
                ),
                Some(n) => Error::new(
                    ErrorKind::Database,
                    format!("The database reported an error: {msg} (error {n})"),
                    "Nothing was changed; fix the cause and try again",
                ),
                None => Error::new(
                    ErrorKind::Database,
                    format!("The database reported an error: {msg}"),
                    "Nothing was changed; fix the cause and try again",
                ),
            }
        }
        other => Error::new(
            ErrorKind::DbUnreachable,
            format!("The database connection to {at} failed: {other}"),
            "Check that the address points at a MariaDB/MySQL server; try again",
        ),
    }
}

/// Append `value` to `out` in the `LOAD DATA` text form (NULL is written by the caller).
pub(crate) fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            0 => out.extend_from_slice(b"\\0"),
            0x1a => out.extend_from_slice(b"\\Z"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_escape_so_that_each_row_is_one_line() {
        let mut out = Vec::new();
        escape_into(&mut out, b"a\tb\nc\\d\0e\r\x1af");
        assert_eq!(out, b"a\\tb\\nc\\\\d\\0e\\r\\Zf");
        assert!(!out.contains(&b'\n') && !out.contains(&b'\t'));
    }

    #[test]
    fn addresses_name_a_database_and_never_echo_a_password() {
        assert!(MyTarget::is_url("mariadb://root@127.0.0.1:3306/school"));
        assert!(!MyTarget::is_url("postgres://u@h/db"));
        let t = MyTarget::parse("mariadb://backup@db.school.lan:3307/erp").expect("parse");
        assert_eq!(t.describe(), "backup@db.school.lan:3307/erp");
        let e = MyTarget::parse("mysql://root:secret@h:3306").expect_err("no database");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = MyTarget::parse("mysql//x:secret@").expect_err("not a URL");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
