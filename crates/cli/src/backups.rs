//! The backups already made and the record of runs: `list`, `inspect`, `verify` (with or without
//! a test restore), `delete`, `rescan`, `decrypt`, `prune` and `history`.

use std::io::IsTerminal;
use std::path::PathBuf;

use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::catalog::{BackupRecord, RunRecord};
use schoolvault_engine::jobs::{self, InspectReport, RescanEntry, Vault, VerifyReport};
use schoolvault_engine::retention::Prune;
use schoolvault_engine::source::postgres::PgTarget;
use schoolvault_engine::source::Database;
use schoolvault_engine::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::args::{Cli, PolicyArgs};
use crate::offsite::{copies_of, copies_text, CopyView};
use crate::output::Report;
use crate::progress::progress_for;
use crate::restore::confirm;
use crate::session::Session;
use schoolvault_engine::config::Config;
use schoolvault_engine::keychain::Keys;
use schoolvault_engine::offsite::DestinationSettings;

/// A backup in `list`: the catalog's record, whether its file is in the backup folder, and its
/// copies at the destinations.
#[derive(Serialize)]
pub(crate) struct Listed {
    #[serde(flatten)]
    record: BackupRecord,
    local: bool,
    copies: Vec<CopyView>,
}

/// The backups, newest first (`list`).
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Listing(Vec<Listed>);

impl Report for Listing {
    fn text(&self) -> Result<Vec<String>> {
        if self.0.is_empty() {
            return Ok(vec![
                "No backups yet. Make one with `schoolvault backup`.".to_string()
            ]);
        }
        let mut text = vec![format!(
            "{:<22} {:<20} {:<9} {:>10} {:>7} {:>10} {:>8}  {}",
            "ID", "CREATED (UTC)", "TYPE", "SIZE", "TABLES", "ROWS", "TIME", "VERIFIED"
        )];
        for listed in &self.0 {
            let b = &listed.record;
            let how = match &b.verify_message {
                Some(m) if m.starts_with("test restore") => " (test restore)",
                _ => "",
            };
            let verified = match (b.verify_ok, b.verified_at) {
                (Some(true), Some(t)) => format!("ok {}{how}", t.format("%Y-%m-%d %H:%M")),
                (Some(false), _) => "FAILED".to_string(),
                (Some(true), None) => "ok".to_string(),
                _ => "-".to_string(),
            };
            let mut status = if b.status.is_complete() {
                String::new()
            } else {
                format!("  [{}]", b.status)
            };
            if !listed.local {
                status.push_str("  [not on this computer]");
            }
            if !listed.copies.is_empty() {
                status.push_str(&format!("  {}", copies_text(&listed.copies)));
            }
            text.push(format!(
                "{:<22} {:<20} {:<9} {:>10} {:>7} {:>10} {:>7.1}s  {}{}",
                b.id,
                b.created_at.format("%Y-%m-%d %H:%M:%S"),
                b.kind.as_str(),
                schoolvault_engine::size::human(b.size),
                b.tables,
                b.rows,
                b.duration_ms as f64 / 1000.0,
                verified,
                status
            ));
        }
        Ok(text)
    }
}

/// `list`.
///
/// # Errors
/// `Catalog` errors.
pub(crate) async fn list(vault: &Vault, destinations: &[DestinationSettings]) -> Result<Listing> {
    let copies = vault.catalog.copies().await?;
    Ok(Listing(
        vault
            .catalog
            .list()
            .await?
            .into_iter()
            .map(|record| Listed {
                local: record.path.is_file(),
                copies: copies_of(&record.id, &copies, destinations),
                record,
            })
            .collect(),
    ))
}

/// `inspect`: a backup's header and contents, or what an old-system file holds.
///
/// # Errors
/// No such backup; a file that is not a backup.
pub(crate) async fn inspect(vault: &Vault, backup: &str) -> Result<InspectReport> {
    jobs::inspect(vault, backup).await
}

impl Report for InspectReport {
    fn text(&self) -> Result<Vec<String>> {
        let mut text = Vec::new();
        if let Some(v1) = &self.v1 {
            text.push(format!("File:        {}", self.path.display()));
            text.push(format!(
                "Format:      old system's backup (v1), version {}",
                v1.version
            ));
            text.push(format!("Timestamp:   {}", v1.timestamp));
            text.push(format!("Tables ({}):", v1.tables.len()));
            for t in &v1.tables {
                text.push(format!(
                    "  {:<20} -> {:<20} {:>8} records",
                    t.key,
                    t.table.as_deref().unwrap_or("(no such table)"),
                    t.records
                ));
            }
        } else if let Some(h) = &self.header {
            text.push(format!("File:        {}", self.path.display()));
            text.push(format!("Backup id:   {}", h.backup_id));
            text.push(format!("Type:        {}", h.kind.as_str()));
            text.push(format!("Created:     {}", h.created_at.to_rfc3339()));
            text.push(format!(
                "Source:      {} {} database {}",
                h.source.engine, h.source.server_version, h.source.database
            ));
            text.push(format!("Key:         {}", h.key_fingerprint));
            text.push(format!("Written by:  SchoolVault {}", h.app_version));
            match (&self.manifest, &self.manifest_error) {
                (Some(m), _) => {
                    text.push(format!("Snapshot at: {}", m.snapshot_at.to_rfc3339()));
                    text.push(format!("Tables ({}):", m.tables.len()));
                    for t in &m.tables {
                        text.push(format!("  {}", t.display_name()));
                    }
                    text.push(format!("Sequences:   {}", m.sequences.len()));
                }
                (None, Some(e)) => text.push(format!("Contents:    not readable: {e}")),
                (None, None) => {}
            }
        }
        Ok(text)
    }

    /// The text's warning about the public development key (the JSON has `v1.dev_key`).
    fn notes(&self, json: bool) -> Vec<String> {
        match &self.v1 {
            Some(v1) if v1.dev_key && !json => vec![format!(
                "warning: {}",
                schoolvault_engine::legacy::DEV_KEY_WARNING
            )],
            _ => Vec::new(),
        }
    }
}

impl Report for VerifyReport {
    fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn text(&self) -> Result<Vec<String>> {
        Ok(vec![if self.format == 1 {
            format!(
                "Old-system backup {} opens and reads: {} tables, {} records.",
                self.path.display(),
                self.tables,
                self.rows
            )
        } else {
            format!(
                "Backup {} is good: {} tables, {} rows, {} of data checked.",
                self.backup_id,
                self.tables,
                self.rows,
                schoolvault_engine::size::human(self.bytes)
            )
        }])
    }
}

/// `verify`, and with `test_restore` a restore into a scratch database (`scratch_db`: a name on
/// the --db server, or a whole URL) that is compared and dropped.
///
/// # Errors
/// What the verification or test restore found; no database for a test restore.
pub(crate) async fn verify(
    session: &Session,
    backup: &str,
    test_restore: bool,
    scratch_db: Option<String>,
) -> Result<VerifyReport> {
    let vault = &session.vault;
    crate::offsite::fetch(session, backup).await?;
    if !test_restore {
        return jobs::verify(vault, backup, session.progress.clone()).await;
    }
    // A MariaDB/MySQL backup is test-restored on the --db MariaDB/MySQL server.
    let pg_scratch = scratch_db
        .as_deref()
        .is_some_and(|u| u.starts_with("postgres"));
    if let (false, Ok(Database::MariaDb(server))) =
        (pg_scratch, session.database("test-restore on"))
    {
        return jobs::test_restore_mariadb(
            vault,
            backup,
            &server,
            scratch_db.as_deref(),
            session.progress.clone(),
        )
        .await;
    }
    // --scratch-db takes a database name on the --db server, or a whole URL.
    let (server, name) = match scratch_db {
        Some(url) if url.starts_with("postgres") => {
            let t = PgTarget::parse(&url)?;
            let name = t.database();
            // Connect through the server's maintenance database: the scratch one
            // does not exist yet.
            (t.with_database("postgres"), Some(name))
        }
        other => (session.target("test-restore on")?, other),
    };
    jobs::test_restore(
        vault,
        backup,
        &server,
        name.as_deref(),
        session.progress.clone(),
    )
    .await
}

/// The backup `delete` removed.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Deleted(BackupRecord);

impl Report for Deleted {
    fn text(&self) -> Result<Vec<String>> {
        Ok(vec![format!(
            "Deleted backup {} ({}).",
            self.0.id,
            self.0.path.display()
        )])
    }
}

/// `delete`, after a typed confirmation unless `yes`.
///
/// # Errors
/// Not confirmed, no such backup, I/O and `Catalog` errors.
pub(crate) async fn delete(vault: &Vault, id: &str, yes: bool) -> Result<Deleted> {
    if !yes {
        confirm(&format!("This deletes backup {id} for good."), id)?;
    }
    Ok(Deleted(jobs::delete(vault, id).await?))
}

/// The files `rescan` found (in JSON, the list of files, as before a damaged catalog could be
/// set aside: that is said on stderr).
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Rescanned {
    entries: Vec<RescanEntry>,
    /// Where a damaged catalog was moved to.
    #[serde(skip)]
    set_aside: Option<PathBuf>,
    /// The backup folder, for the text.
    #[serde(skip)]
    dir: PathBuf,
}

impl Report for Rescanned {
    fn text(&self) -> Result<Vec<String>> {
        let mut text: Vec<String> = self
            .entries
            .iter()
            .map(|e| match &e.message {
                Some(m) => format!("{}: {} ({m})", e.path.display(), e.status),
                None => format!("{}: {}", e.path.display(), e.status),
            })
            .collect();
        if let Some(aside) = &self.set_aside {
            text.push(format!(
                "The damaged catalog was moved to {} (its run history is there); a new one was built.",
                aside.display()
            ));
        }
        text.push(format!(
            "{} files found in {}.",
            self.entries.len(),
            self.dir.display()
        ));
        Ok(text)
    }
}

/// `rescan`: the list rebuilt from the backup folder's files, before any other use of the
/// catalog (a damaged one is moved aside and replaced).
///
/// # Errors
/// I/O and `Catalog` errors.
pub(crate) async fn rescan(cli: &Cli, keys: Keys, settings: &Config) -> Result<Rescanned> {
    let (dir, catalog) = crate::session::vault_paths(cli, settings)?;
    let rebuilt = jobs::rebuild_list(
        dir.clone(),
        &catalog,
        std::sync::Arc::new(keys),
        progress_for(cli.json),
    )
    .await?;
    if let (Some(aside), true) = (&rebuilt.set_aside, cli.json) {
        eprintln!(
            "warning: the damaged catalog was moved to {}; a new one was built",
            aside.display()
        );
    }
    Ok(Rescanned {
        entries: rebuilt.entries,
        set_aside: rebuilt.set_aside,
        dir,
    })
}

/// `decrypt`: the backup's .tar.gz on stdout. Its output is the data itself, so it prints
/// nothing else and has no [`Report`].
///
/// # Errors
/// `InvalidInput` when stdout is a terminal; what reading the backup finds.
pub(crate) async fn decrypt(vault: &Vault, backup: &str) -> Result<()> {
    if std::io::stdout().is_terminal() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "Refusing to write binary data to the terminal",
            "Redirect it: schoolvault decrypt FILE > backup.tar.gz (or | tar tz)",
        ));
    }
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match jobs::decrypt(vault, backup, &mut lock).await {
        // The reader stopped early (`| tar t | head`): not an error of ours.
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::BrokenPipe) => Ok(()),
        other => other.map(|_| ()),
    }
}

/// What `prune` removed, or with `--dry-run` would remove.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Pruned {
    pruned: Vec<Prune>,
    /// Only listed, not removed.
    #[serde(skip)]
    dry_run: bool,
}

impl Report for Pruned {
    fn text(&self) -> Result<Vec<String>> {
        if self.pruned.is_empty() {
            return Ok(vec!["Nothing to prune.".to_string()]);
        }
        Ok(self
            .pruned
            .iter()
            .map(|p| {
                format!(
                    "{} {} ({}, {})",
                    if self.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    },
                    p.id,
                    p.created_at.format("%Y-%m-%d %H:%M"),
                    p.reason
                )
            })
            .collect())
    }
}

/// `prune`: the retention policy, `--keep-*` over the settings file's.
///
/// # Errors
/// `Busy`, I/O and `Catalog` errors.
pub(crate) async fn prune(session: &Session, dry_run: bool, policy: PolicyArgs) -> Result<Pruned> {
    let pruned = jobs::prune(
        &session.vault,
        &policy.policy(&session.settings),
        dry_run,
        chrono::Utc::now(),
    )
    .await?;
    Ok(Pruned { pruned, dry_run })
}

/// The run history, newest first (`history`).
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct History(Vec<RunRecord>);

impl Report for History {
    fn text(&self) -> Result<Vec<String>> {
        Ok(self
            .0
            .iter()
            .map(|r| {
                format!(
                    "{}  {:<12} {:<9} {:<8} {}",
                    r.started_at.format("%Y-%m-%d %H:%M:%S"),
                    r.operation.as_str(),
                    r.kind.map_or("-", BackupKind::as_str),
                    r.outcome.as_str(),
                    r.message.as_deref().unwrap_or("")
                )
            })
            .collect())
    }
}

/// `history`: the last `limit` runs.
///
/// # Errors
/// `Catalog` errors.
pub(crate) async fn history(vault: &Vault, limit: u32) -> Result<History> {
    Ok(History(vault.catalog.runs(limit).await?))
}
