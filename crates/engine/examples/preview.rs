//! A bench binary (`scripts/bench.sh`): how long the restore modal's preview takes for a
//! backup, i.e. the time between "Restore…" and the warning with the row counts. It runs the
//! same engine call as the app (`jobs::restore_preview`): the backup read completely (every
//! part decrypted, decompressed and checked) and the target's row counts.
//!
//! `SCHOOLVAULT_DIR=… SCHOOLVAULT_CATALOG=… cargo run --release --example preview -- BACKUP postgres://…`
//! (the key from the keychain, or `BACKUP_ENCRYPTION_KEY`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use schoolvault_engine::jobs::{restore_preview, Vault};
use schoolvault_engine::keychain::{Keys, OsKeychain};
use schoolvault_engine::progress::Silent;
use schoolvault_engine::source::postgres::PgTarget;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [what, url] = args.as_slice() else {
        return Err("usage: preview BACKUP postgres://USER@HOST:PORT/DATABASE".into());
    };
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let (Some(dir), Some(catalog)) = (var("SCHOOLVAULT_DIR"), var("SCHOOLVAULT_CATALOG")) else {
        return Err("set SCHOOLVAULT_DIR and SCHOOLVAULT_CATALOG".into());
    };
    let keys = Keys::new(None, Box::new(OsKeychain)).map_err(|e| e.to_string())?;
    let vault = Vault::open(dir, &catalog, keys)
        .await
        .map_err(|e| e.to_string())?;
    let target = PgTarget::parse(url).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let preview = restore_preview(&vault, what, &target, Arc::new(Silent))
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "preview {:.2} s: {} tables, {} rows in the backup, {} live",
        t0.elapsed().as_secs_f64(),
        preview.tables.len(),
        preview.backup_rows,
        preview.live_rows
    );
    Ok(())
}
