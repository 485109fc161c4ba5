//! Putting a backup back: `restore` (after a typed confirmation, with a safety backup first),
//! and the confirmation question that `restore` and `delete` ask on a terminal.

use std::io::{IsTerminal, Write};

use schoolvault_engine::jobs::{self, RestoreOptions, RestoreOutcome};
use schoolvault_engine::legacy::V1Mode;
use schoolvault_engine::source::mysql::{self, MyTarget};
use schoolvault_engine::source::postgres;
use schoolvault_engine::source::{Database, Session as DbSession};
use schoolvault_engine::{Error, ErrorKind, Result};

use crate::output::Report;
use crate::session::{target, Session};

/// How `restore` restores, as its flags say.
pub(crate) struct RestoreArgs {
    /// A backup id or a file.
    pub(crate) backup: String,
    /// Do not ask for confirmation.
    pub(crate) yes: bool,
    /// Restore into this database instead of --db.
    pub(crate) target_db: Option<String>,
    /// Skip the safety backup of the target.
    pub(crate) no_safety_backup: bool,
    /// Old-system files: replace instead of merge.
    pub(crate) replace: bool,
    /// Create this database and restore into it.
    pub(crate) create_db: Option<String>,
    /// Restore an old-system file under the public development key.
    pub(crate) trust_dev_key: bool,
    /// Roles the server lacks: refuse, create, or one owner.
    pub(crate) roles: jobs::RoleChoice,
    /// Give up when the tables stay locked longer than this.
    pub(crate) lock_timeout: Option<std::time::Duration>,
    /// End the other sessions on the target first.
    pub(crate) end_sessions: bool,
}

impl Report for RestoreOutcome {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn text(&self) -> Result<Vec<String>> {
        let mut text: Vec<String> = self
            .v1_tables
            .iter()
            .flatten()
            .map(|t| {
                format!(
                    "  {:<20} {:>7} inserted {:>7} updated {:>7} removed",
                    t.table, t.inserted, t.updated, t.deleted
                )
            })
            .collect();
        text.push(format!(
            "Restored backup {} into {}: {} tables, {} rows in {:.1} s.",
            self.backup_id,
            self.target,
            self.tables,
            self.rows,
            self.duration_ms as f64 / 1000.0
        ));
        if let Some(s) = &self.safety_backup {
            text.push(format!(
                "The data as it was before is in safety backup {} (undo with `schoolvault restore {} --yes`).",
                s.id, s.id
            ));
        }
        Ok(text)
    }
}

/// `restore` on a MariaDB/MySQL server: into a new database (`--create-db`), or over the live
/// one, all or nothing.
async fn restore_mariadb(
    session: &Session,
    server: MyTarget,
    args: &RestoreArgs,
) -> Result<RestoreOutcome> {
    match args.create_db.as_deref() {
        Some(name) => {
            crate::offsite::fetch(session, &args.backup).await?;
            jobs::restore_new_mariadb(
                &session.vault,
                &args.backup,
                &server,
                name,
                session.progress.clone(),
            )
            .await
        }
        None => {
            // A database that cannot be reached, or does not exist, is the restore's own error.
            if let Ok(sessions) = mysql::other_sessions(&server).await {
                announce_sessions(
                    &sessions,
                    &server.describe(),
                    args.end_sessions,
                    args.lock_timeout,
                );
            }
            if !args.yes {
                confirm(
                    &format!(
                        "This replaces ALL data in the backup's tables of {} with the backup's.",
                        server.describe()
                    ),
                    &server.database(),
                )?;
            }
            crate::offsite::fetch(session, &args.backup).await?;
            let opts = RestoreOptions {
                safety_backup: !args.no_safety_backup,
                lock_timeout: args.lock_timeout,
                end_sessions: args.end_sessions,
                ..RestoreOptions::default()
            };
            jobs::restore_replace_mariadb(
                &session.vault,
                &args.backup,
                &server,
                &opts,
                session.progress.clone(),
            )
            .await
        }
    }
}

/// `restore`: replace the target's data with the backup's, in one transaction.
///
/// # Errors
/// No database, not confirmed, `Busy`, the restore's errors.
pub(crate) async fn restore(session: &Session, args: RestoreArgs) -> Result<RestoreOutcome> {
    let url = args.target_db.clone().or_else(|| session.db.clone());
    let mariadb = match url.as_deref() {
        Some(u) if MyTarget::is_url(u) => Some(MyTarget::parse(u)?),
        Some(_) => None,
        // The settings file's database, of either engine.
        None => match session.database("restore into")? {
            Database::MariaDb(t) => Some(t),
            Database::Postgres(_) => None,
        },
    };
    if let Some(server) = mariadb {
        return restore_mariadb(session, server, &args).await;
    }
    let target = target(url.as_deref(), &session.settings, "restore into")?;
    if args.create_db.is_none() {
        // A database that cannot be reached, or does not exist, is the restore's own error.
        if let Ok(sessions) = postgres::other_sessions(&target).await {
            announce_sessions(
                &sessions,
                &target.describe(),
                args.end_sessions,
                args.lock_timeout,
            );
        }
    }
    if !args.yes && args.create_db.is_none() {
        confirm(
            &format!(
                "This replaces ALL data in the backup's tables of {} with the backup's.",
                target.describe()
            ),
            &target.database(),
        )?;
    }
    // A backup listed from a destination (a new computer) is downloaded and checked first.
    crate::offsite::fetch(session, &args.backup).await?;
    let opts = RestoreOptions {
        safety_backup: !args.no_safety_backup,
        v1_mode: if args.replace {
            V1Mode::Replace
        } else {
            V1Mode::Merge
        },
        create_db: args.create_db,
        trust_dev_key: args.trust_dev_key,
        roles: args.roles,
        lock_timeout: args.lock_timeout,
        end_sessions: args.end_sessions,
        ..RestoreOptions::default()
    };
    jobs::restore(
        &session.vault,
        &args.backup,
        &target,
        &opts,
        session.progress.clone(),
    )
    .await
}

/// Before a replace restore: who else is connected to the database `at` (their open
/// transactions hold the tables the restore replaces), and what the restore will do about them.
fn announce_sessions(
    sessions: &[DbSession],
    at: &str,
    end: bool,
    lock_timeout: Option<std::time::Duration>,
) {
    if sessions.is_empty() {
        return;
    }
    eprintln!(
        "{} other session{} connected to {at} (tell the school's users about the downtime first):",
        sessions.len(),
        if sessions.len() == 1 { " is" } else { "s are" },
    );
    for s in sessions {
        eprintln!("  {}", s.describe());
    }
    if end {
        eprintln!("They are ended (--end-sessions) just before the tables are replaced; their open transactions roll back.");
    } else if let Some(t) = lock_timeout {
        eprintln!("The restore waits up to {} s for those holding the tables (--lock-timeout), then stops with nothing changed; --end-sessions ends them first.", t.as_secs());
    } else {
        eprintln!("The restore waits for those holding the tables to finish; --end-sessions ends them first, --lock-timeout SECS gives up after SECS seconds.");
    }
}

/// Ask on a terminal; refuse elsewhere.
///
/// # Errors
/// `InvalidInput` when stdin is not a terminal, `Cancelled` for any other answer.
pub(crate) fn confirm(question: &str, expected: &str) -> Result<()> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "Refusing to go on without confirmation",
            "Add --yes to confirm when not running on a terminal",
        ));
    }
    eprint!("{question} Type {expected:?} to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .map_err(|e| Error::io("reading the answer", &e))?;
    if answer.trim() == expected {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Cancelled,
            "Not confirmed",
            "Nothing was changed",
        ))
    }
}
