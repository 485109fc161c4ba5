//! What a restore would do, shown before the person confirms: the backup read completely and
//! the target's current row counts beside the backup's.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::archive::{self};
use crate::error::Result;
use crate::progress::Progress;
use crate::source::mysql::{self, MyTarget};
use crate::source::postgres::{self, PgTarget};

use crate::jobs::reading::{is_v2, open_v1, scan_file, v1_warnings};
use crate::jobs::{join_error, Vault};

/// One table in a [`RestorePreview`].
#[derive(Debug, Clone, Serialize)]
pub struct PreviewTable {
    /// `schema.table` (or the old system's table).
    pub name: String,
    /// Rows in the backup.
    pub backup_rows: u64,
    /// Rows in the target now; `None` when the table is not there.
    pub live_rows: Option<u64>,
}

/// What a restore would do, for the warning shown before it: the backup (read completely,
/// so a damaged file is refused here) and the target's current row counts.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePreview {
    /// The backup's id.
    pub backup_id: String,
    /// The file.
    pub path: PathBuf,
    /// 2 for SchoolVault files, 1 for the old system's.
    pub format: u16,
    /// When the backup was made.
    pub created_at: Option<DateTime<Utc>>,
    /// The database it was made of.
    pub source_database: Option<String>,
    /// The target, `user@host:port/database`.
    pub target: String,
    /// The target database's name (what the user must type).
    pub target_database: String,
    /// Per table.
    pub tables: Vec<PreviewTable>,
    /// Rows in the backup.
    pub backup_rows: u64,
    /// Rows in the target's tables now.
    pub live_rows: u64,
    /// Warnings (old development key, unknown tables…).
    pub warnings: Vec<String>,
    /// An old-system file that opened only with the public development key: anyone could
    /// have written it, so a restore needs the person's explicit trust
    /// ([`RestoreOptions::trust_dev_key`](crate::jobs::RestoreOptions::trust_dev_key)) after a second warning.
    pub dev_key: bool,
    /// Into a database without the backup's tables (its schema, owners and privileges are
    /// built): the backup's roles this server lacks. The restore then needs a choice: create
    /// them, or one owner for everything.
    pub missing_roles: Vec<String>,
}

/// A SchoolVault backup read completely for the preview (the target's counts not yet in), the
/// `(schema, table)` names its tables have, and the privileges it carries.
async fn scan_preview(
    vault: &Vault,
    path: &std::path::Path,
    progress: Arc<dyn Progress>,
    target: String,
    target_database: String,
) -> Result<(
    RestorePreview,
    Vec<(String, String)>,
    crate::source::Privileges,
)> {
    let (keys, scan_path) = (vault.keys.clone(), path.to_path_buf());
    let scan = tokio::task::spawn_blocking(move || scan_file(&scan_path, &keys, progress.as_ref()))
        .await
        .map_err(join_error)??;
    let rows: std::collections::HashMap<u32, u64> =
        scan.end.tables.iter().map(|t| (t.index, t.rows)).collect();
    let tables = scan
        .manifest
        .tables
        .iter()
        .map(|t| PreviewTable {
            name: t.display_name(),
            backup_rows: rows.get(&t.index).copied().unwrap_or(0),
            live_rows: None,
        })
        .collect();
    let names = scan
        .manifest
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let preview = RestorePreview {
        backup_id: scan.header.backup_id.clone(),
        path: path.to_path_buf(),
        format: archive::FORMAT_VERSION,
        created_at: Some(scan.header.created_at),
        source_database: Some(scan.header.source.database.clone()),
        target,
        target_database,
        tables,
        backup_rows: scan.rows,
        live_rows: 0,
        warnings: scan.manifest.unsupported.clone(),
        dev_key: false,
        missing_roles: Vec::new(),
    };
    Ok((preview, names, scan.manifest.privileges.clone()))
}

/// [`restore_preview`] of a MariaDB/MySQL backup for the live MariaDB/MySQL database `target`.
///
/// # Errors
/// Everything [`verify`](crate::jobs::verify) reports; `TargetMismatch` for an old-system file
/// (PostgreSQL data); connection errors for the target.
pub async fn restore_preview_mariadb(
    vault: &Vault,
    what: &str,
    target: &MyTarget,
    progress: Arc<dyn Progress>,
) -> Result<RestorePreview> {
    let (path, _) = vault.resolve(what).await?;
    if !is_v2(&path)? {
        return Err(crate::Error::new(
            crate::ErrorKind::TargetMismatch,
            "An old-system backup holds PostgreSQL data, not a MariaDB/MySQL database",
            "Restore it into the school ERP's PostgreSQL database",
        ));
    }
    let (mut preview, names, _) =
        scan_preview(vault, &path, progress, target.describe(), target.database()).await?;
    let tables: Vec<String> = names.into_iter().map(|(_, t)| t).collect();
    let live = mysql::live_row_counts(target, &tables).await?;
    for (t, n) in preview.tables.iter_mut().zip(live) {
        t.live_rows = n;
    }
    preview.live_rows = preview.tables.iter().filter_map(|t| t.live_rows).sum();
    Ok(preview)
}

/// Read `what` completely and count the rows it would replace in `target`.
///
/// # Errors
/// Everything [`verify`](crate::jobs::verify) reports, and connection errors for the target.
pub async fn restore_preview(
    vault: &Vault,
    what: &str,
    target: &PgTarget,
    progress: Arc<dyn Progress>,
) -> Result<RestorePreview> {
    let (path, _) = vault.resolve(what).await?;
    let mut privileges = None;
    let (mut preview, names) = if is_v2(&path)? {
        let (preview, names, p) =
            scan_preview(vault, &path, progress, target.describe(), target.database()).await?;
        privileges = Some(p);
        (preview, names)
    } else {
        let v1 = open_v1(&path, vault.keys.clone()).await?;
        let summary = v1.summary();
        let mut tables = Vec::new();
        let mut names = Vec::new();
        for t in &summary.tables {
            tables.push(PreviewTable {
                name: t.table.clone().unwrap_or_else(|| t.key.clone()),
                backup_rows: t.records,
                live_rows: None,
            });
            names.push(("public".to_string(), t.table.clone().unwrap_or_default()));
        }
        let preview = RestorePreview {
            backup_id: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path: path.clone(),
            format: 1,
            created_at: DateTime::parse_from_rfc3339(&summary.timestamp)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            source_database: None,
            target: target.describe(),
            target_database: target.database(),
            tables,
            backup_rows: v1.records(),
            live_rows: 0,
            warnings: v1_warnings(&v1),
            dev_key: v1.dev_key,
            missing_roles: Vec::new(),
        };
        (preview, names)
    };
    let live = postgres::live_row_counts(target, &names).await?;
    for (t, n) in preview.tables.iter_mut().zip(live) {
        t.live_rows = n;
    }
    preview.live_rows = preview.tables.iter().filter_map(|t| t.live_rows).sum();
    let fresh = preview.tables.iter().all(|t| t.live_rows.is_none());
    if let Some(p) = privileges.filter(|p| fresh && !p.is_empty()) {
        let mut conn = target.connect().await?;
        preview.missing_roles =
            postgres::RoleMap::resolve(&mut conn, target, &p, postgres::RoleChoice::Lenient)
                .await?
                .missing;
    }
    Ok(preview)
}
