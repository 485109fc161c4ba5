//! Writing the database out: `backup` (a new encrypted archive, under the watchdog, with the
//! failure email) and `export --format v1` (an old-system file, to go back to the old system).

use std::path::Path;

use schoolvault_engine::archive::BackupKind;
use schoolvault_engine::jobs::{self, BackupOptions, BackupOutcome, ExportOutcome};
use schoolvault_engine::Result;
use serde::{Serialize, Serializer};

use crate::args::KindArg;
use crate::email::email_plan;
use crate::offsite::{copies_of, copies_text, copy_warnings, CopyView};
use crate::output::Report;
use crate::session::Session;

/// What `backup` made, and where it was copied.
pub(crate) struct Made(BackupOutcome, Vec<CopyView>, Vec<String>);

impl Serialize for Made {
    /// The new backup's file, size, key and contents: a summary, not the catalog record.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let Made(out, copies, _) = self;
        let b = &out.backup;
        serde_json::json!({
            "id": b.id, "file": b.path, "size": b.size, "sha256": b.sha256,
            "key_fingerprint": b.key_fingerprint, "tables": b.tables, "rows": b.rows,
            "duration_ms": b.duration_ms, "key_generated": out.key_generated,
            "copies": copies,
        })
        .serialize(s)
    }
}

impl Report for Made {
    fn text(&self) -> Result<Vec<String>> {
        let b = &self.0.backup;
        Ok([
            format!(
                "Backup {} of {} written: {} tables, {} rows, {} in {:.1} s",
                b.id,
                b.database,
                b.tables,
                b.rows,
                schoolvault_engine::size::human(b.size),
                b.duration_ms as f64 / 1000.0
            ),
            format!("File: {}", b.path.display()),
        ]
        .into_iter()
        .chain((!self.1.is_empty()).then(|| format!("Copies: {}", copies_text(&self.1))))
        .collect())
    }

    fn warnings(&self) -> &[String] {
        &self.2
    }

    fn notes(&self, _json: bool) -> Vec<String> {
        let Made(out, ..) = self;
        let mut notes: Vec<String> = out
            .unsupported
            .iter()
            .map(|u| format!("warning: not in the backup's schema (restore it by hand): {u}"))
            .collect();
        if out.key_generated {
            notes.push(format!(
                "A new encryption key was generated and stored in the OS keychain (fingerprint {}).\n\
                 Save a recovery copy NOW with `schoolvault key export` and keep it somewhere safe:\n\
                 without it, these backups cannot be opened if this computer is lost.",
                out.backup.key_fingerprint
            ));
        }
        notes
    }
}

/// `backup`: back up the database under the watchdog; email the administrators if it fails.
///
/// # Errors
/// No database, `Busy` when another backup runs, the backup's errors.
pub(crate) async fn backup(session: &Session, kind: KindArg, jobs: usize) -> Result<Made> {
    let vault = &session.vault;
    let target = session.database("back up")?;
    let opts = BackupOptions {
        kind: match kind {
            KindArg::Manual => BackupKind::Manual,
            KindArg::Scheduled => BackupKind::Scheduled,
        },
        jobs,
        ..BackupOptions::default()
    };
    let email = email_plan(&session.settings);
    let done = jobs::backup_attended(
        vault,
        &target,
        &opts,
        session.watchdog,
        &email,
        &session.offsite,
        session.progress.clone(),
    )
    .await;
    if let Some(e) = &done.email_error {
        eprintln!("warning: {e}");
    }
    let out = done.backup?;
    let mut warnings = out.warnings.clone();
    warnings.extend(copy_warnings(&done.copies));
    warnings.extend(
        done.copy_error
            .map(|e| format!("the offsite copies were not made: {e}")),
    );
    let copies = copies_of(
        &out.backup.id,
        &session.vault.catalog.copies().await?,
        &session.offsite.destinations,
    );
    Ok(Made(out, copies, warnings))
}

impl Report for ExportOutcome {
    fn text(&self) -> Result<Vec<String>> {
        Ok(vec![format!(
            "Wrote {} ({} records, {}) for the old system.",
            self.path.display(),
            self.records,
            schoolvault_engine::size::human(self.size)
        )])
    }

    fn notes(&self, _json: bool) -> Vec<String> {
        vec![format!(
            "It is encrypted with key {}: give the old system that key as BACKUP_ENCRYPTION_KEY (`schoolvault key export` prints it).",
            self.key_fingerprint
        )]
    }
}

/// `export --format v1`: write the database as an old-system file, to `out` or into the backup
/// folder.
///
/// # Errors
/// No database or key, `Busy`, the export's errors.
pub(crate) async fn export_v1(session: &Session, out: Option<&Path>) -> Result<ExportOutcome> {
    let target = session.target("export")?;
    jobs::export_v1(&session.vault, &target, out).await
}
