//! The one error type of the engine, and the policy behind it.
//!
//! Policy: every error that reaches a person is one line that says what happened and what to
//! do about it ("This backup was made with key 3f9a…; this computer has c01d…. Import the
//! matching key with `schoolvault key import`."). An error carries a [`ErrorKind`] that the
//! CLI maps to exit codes and the desktop app to `{code, message}`; nobody matches on the text.
//! Secrets (keys, passwords, connection strings with passwords) never appear in a message.

use std::fmt;
use std::io;

/// What went wrong, as a stable code for programs (the UI, scripts, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[cfg_attr(feature = "ts", ts(export))]
pub enum ErrorKind {
    /// The backup was encrypted with a key this computer does not have.
    WrongKey,
    /// No encryption key is configured where one is needed.
    NoKey,
    /// The OS keychain could not be used.
    Keychain,
    /// The file ends early.
    Truncated,
    /// The file's bytes were changed (a flipped bit, a bad disk, tampering).
    Damaged,
    /// The file is not a SchoolVault (or old-system) backup at all.
    NotABackup,
    /// A backup format this version cannot read.
    UnsupportedVersion,
    /// No backup with that id, or no such file.
    NotFound,
    /// The database server cannot be reached.
    DbUnreachable,
    /// The database server refused the login.
    DbAuth,
    /// A table or sequence that the backup user may not read.
    TableUnreadable,
    /// Other errors reported by the database server.
    Database,
    /// The disk is full.
    DiskFull,
    /// The restore target does not match the backup (a table is missing…).
    TargetMismatch,
    /// The data read back does not match what the backup recorded.
    Inconsistent,
    /// Another file-system error.
    Io,
    /// The catalog (the local index of backups) failed.
    Catalog,
    /// The operation was cancelled.
    Cancelled,
    /// Another backup or restore holds the run lock.
    Busy,
    /// Other sessions on the database hold the locks a restore needs (the ERP is in use).
    InUse,
    /// A bad argument or setting.
    InvalidInput,
    /// The file could have been written by anyone (an old-system file under the public
    /// development key): restoring it needs the person's explicit trust.
    #[serde(rename = "untrusted_file")]
    Untrusted,
    /// An offsite destination (folder, bucket, WebDAV server) cannot be reached now: the
    /// copy waits and is tried again.
    DestinationUnreachable,
    /// An offsite destination refused the credentials or the write.
    DestinationAuth,
    /// An offsite destination's bucket or folder does not exist.
    DestinationMissing,
    /// A bug: something that should not happen did.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order (for reading a code back).
    pub const ALL: [ErrorKind; 26] = [
        ErrorKind::WrongKey,
        ErrorKind::NoKey,
        ErrorKind::Keychain,
        ErrorKind::Truncated,
        ErrorKind::Damaged,
        ErrorKind::NotABackup,
        ErrorKind::UnsupportedVersion,
        ErrorKind::NotFound,
        ErrorKind::DbUnreachable,
        ErrorKind::DbAuth,
        ErrorKind::TableUnreadable,
        ErrorKind::Database,
        ErrorKind::DiskFull,
        ErrorKind::TargetMismatch,
        ErrorKind::Inconsistent,
        ErrorKind::Io,
        ErrorKind::Catalog,
        ErrorKind::Cancelled,
        ErrorKind::Busy,
        ErrorKind::InUse,
        ErrorKind::InvalidInput,
        ErrorKind::Untrusted,
        ErrorKind::DestinationUnreachable,
        ErrorKind::DestinationAuth,
        ErrorKind::DestinationMissing,
        ErrorKind::Internal,
    ];

    /// The kind whose [`code`](Self::code) this is.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The stable code, as the UI and `--json` output see it.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::WrongKey => "wrong_key",
            ErrorKind::NoKey => "no_key",
            ErrorKind::Keychain => "keychain",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Damaged => "damaged",
            ErrorKind::NotABackup => "not_a_backup",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::NotFound => "not_found",
            ErrorKind::DbUnreachable => "db_unreachable",
            ErrorKind::DbAuth => "db_auth",
            ErrorKind::TableUnreadable => "table_unreadable",
            ErrorKind::Database => "database",
            ErrorKind::DiskFull => "disk_full",
            ErrorKind::TargetMismatch => "target_mismatch",
            ErrorKind::Inconsistent => "inconsistent",
            ErrorKind::Io => "io",
            ErrorKind::Catalog => "catalog",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Busy => "busy",
            ErrorKind::InUse => "in_use",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Untrusted => "untrusted_file",
            ErrorKind::DestinationUnreachable => "destination_unreachable",
            ErrorKind::DestinationAuth => "destination_auth",
            ErrorKind::DestinationMissing => "destination_missing",
            ErrorKind::Internal => "internal",
        }
    }
}

/// An engine error: what happened, and what the person can do about it.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    guidance: String,
    /// The guidance where it is read in the desktop app, when it differs: the app's own
    /// settings and buttons, not the CLI's flags and environment variables.
    app_guidance: Option<String>,
    cause: Option<Cause>,
}

/// What lower layer an error came from, for programs that react to it (retry a deadlock,
/// ignore a closed pipe): never matched from the message's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The database server's SQLSTATE, e.g. `40P01` (deadlock).
    SqlState(String),
    /// A file-system or pipe error of this kind.
    Io(io::ErrorKind),
    /// The file read is damaged or not what it should be (a catalog that is no SQLite
    /// database, or holds rows or a schema this version cannot read): rebuilding it helps,
    /// waiting or retrying does not.
    Damaged,
}

/// The engine's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` saying `message` (what happened) and `guidance` (what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>, guidance: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            guidance: guidance.into(),
            app_guidance: None,
            cause: None,
        }
    }

    /// This error, with what to do said for the desktop app's reader (its settings and
    /// buttons) where `guidance` names the CLI's flags or environment variables.
    #[must_use]
    pub fn in_app(mut self, guidance: impl Into<String>) -> Self {
        self.app_guidance = Some(guidance.into());
        self
    }

    /// The one line as the desktop app shows it: the app's guidance where there is one.
    pub fn for_app(&self) -> String {
        match &self.app_guidance {
            Some(g) => Error {
                app_guidance: None,
                guidance: g.clone(),
                ..self.clone()
            }
            .to_string(),
            None => self.to_string(),
        }
    }

    /// This error, remembering the lower-layer `cause`.
    #[must_use]
    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The database server's SQLSTATE, when the server reported the error.
    pub fn sqlstate(&self) -> Option<&str> {
        match &self.cause {
            Some(Cause::SqlState(s)) => Some(s),
            _ => None,
        }
    }

    /// The I/O error's kind, when a file or pipe failed.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match &self.cause {
            Some(Cause::Io(k)) => Some(*k),
            _ => None,
        }
    }

    /// Whether the file read is damaged or foreign ([`Cause::Damaged`]).
    pub fn is_damaged(&self) -> bool {
        matches!(self.cause, Some(Cause::Damaged))
    }

    /// The kind, for programs.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The stable code, e.g. `wrong_key`.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// What happened.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What to do about it.
    pub fn guidance(&self) -> &str {
        &self.guidance
    }

    /// Prefix the message with where it happened ("restoring table public.users: …").
    #[must_use]
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }

    /// A file-system error while doing `what` (e.g. "writing /backups/x.svb.partial").
    /// A full disk gets its own kind and advice.
    pub fn io(what: impl fmt::Display, err: &io::Error) -> Self {
        if let Some(inner) = inner_error(err) {
            return inner.clone();
        }
        Error::io_inner(what, err).with_cause(Cause::Io(err.kind()))
    }

    fn io_inner(what: impl fmt::Display, err: &io::Error) -> Self {
        // ENOSPC (28) and EDQUOT (122) on Linux; StorageFull on every platform.
        if err.kind() == io::ErrorKind::StorageFull || matches!(err.raw_os_error(), Some(28 | 122))
        {
            return Error::new(
                ErrorKind::DiskFull,
                format!("The disk is full while {what}"),
                "Free some space (delete old backups, or choose a backup folder on a larger disk) and try again; nothing was changed",
            );
        }
        if err.kind() == io::ErrorKind::NotFound {
            return Error::new(
                ErrorKind::NotFound,
                format!("File not found while {what}"),
                "Check the path and try again",
            );
        }
        if err.kind() == io::ErrorKind::PermissionDenied {
            return Error::new(
                ErrorKind::Io,
                format!("Permission denied while {what}"),
                "Check that this user may read and write that folder",
            );
        }
        Error::new(
            ErrorKind::Io,
            format!("{what} failed: {err}"),
            "Check the disk and the folder's permissions, then try again",
        )
    }

    /// Wrap this error in an `io::Error`, so it can travel through `Read`/`Write` and come
    /// out unchanged through [`Error::io`].
    pub fn into_io(self) -> io::Error {
        io::Error::other(self)
    }
}

/// The engine error carried inside an `io::Error`, if any.
pub fn inner_error(err: &io::Error) -> Option<&Error> {
    err.get_ref().and_then(|e| e.downcast_ref::<Error>())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.guidance.is_empty() {
            write!(f, "{}.", self.message.trim_end_matches('.'))
        } else {
            write!(
                f,
                "{}. {}.",
                self.message.trim_end_matches('.'),
                self.guidance.trim_end_matches('.')
            )
        }
    }
}

impl std::error::Error for Error {}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        // A migration that could not run for want of space or a lock is no damage: only a
        // damaged file, or a catalog this version does not know (a newer one's), is.
        let damaged = match &err {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
                crate::catalog::is_damage(e)
            }
            _ => true,
        };
        let error = Error::new(
            ErrorKind::Catalog,
            format!("The backup catalog could not be upgraded: {err}"),
            "Run `schoolvault rescan` to set it aside and rebuild it from the backup files",
        )
        .in_app(crate::catalog::REBUILD_IN_APP);
        if damaged {
            error.with_cause(Cause::Damaged)
        } else {
            error
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_serialises_as_its_code_and_reads_back() {
        for k in ErrorKind::ALL {
            let json = serde_json::to_value(k).expect("serialise");
            assert_eq!(json, serde_json::json!(k.code()), "{k:?}");
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
        }
    }

    #[test]
    fn the_cause_is_kept_for_programs_not_read_from_the_text() {
        let e = Error::io(
            "writing the output",
            &io::Error::from(io::ErrorKind::BrokenPipe),
        );
        assert_eq!(e.io_kind(), Some(io::ErrorKind::BrokenPipe));
        assert_eq!(e.sqlstate(), None);
        let e = Error::new(ErrorKind::Database, "deadlock", "try again")
            .with_cause(Cause::SqlState("40P01".into()))
            .context("building the indexes");
        assert_eq!(e.sqlstate(), Some("40P01"));
        assert!(e.message().starts_with("building the indexes"));
    }

    #[test]
    fn every_code_reads_back_as_its_kind_and_a_backup_status_round_trips() {
        use crate::catalog::BackupStatus;
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
            let s = BackupStatus::Unusable(k);
            assert_eq!(BackupStatus::parse(s.as_str()), s);
        }
        assert_eq!(ErrorKind::from_code("no_such_code"), None);
        assert_eq!(BackupStatus::parse("complete"), BackupStatus::Complete);
        // A code a later version wrote: unusable all the same.
        assert_eq!(
            BackupStatus::parse("something_new"),
            BackupStatus::Unusable(ErrorKind::Damaged)
        );
    }

    #[test]
    fn display_is_one_line_with_guidance() {
        let e = Error::new(
            ErrorKind::NotFound,
            "No backup with id x",
            "Run `schoolvault list`",
        );
        assert_eq!(
            e.to_string(),
            "No backup with id x. Run `schoolvault list`."
        );
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn disk_full_is_recognised() {
        let e = Error::io("writing x", &io::Error::from_raw_os_error(28));
        assert_eq!(e.kind(), ErrorKind::DiskFull);
    }

    #[test]
    fn engine_error_survives_io_round_trip() {
        let e = Error::new(ErrorKind::Damaged, "bad", "do");
        let back = Error::io("reading", &e.into_io());
        assert_eq!(back.kind(), ErrorKind::Damaged);
        assert_eq!(back.message(), "bad");
    }
}
