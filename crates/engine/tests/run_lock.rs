//! Every operation that changes the backup folder or the catalog takes the run lock itself:
//! while another run holds it, each one is refused with `Busy` before it touches anything.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use schoolvault_engine::jobs::{self, BackupOptions, RestoreOptions, Vault};
use schoolvault_engine::keychain::{Keys, OsKeychain};
use schoolvault_engine::progress::Silent;
use schoolvault_engine::retention::Retention;
use schoolvault_engine::source::postgres::PgTarget;
use schoolvault_engine::ErrorKind;

#[tokio::test]
async fn operations_take_the_run_lock_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.hex");
    std::fs::write(&key_file, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let keys = Keys::new(Some(&key_file), Box::new(OsKeychain)).unwrap();
    let vault = Vault::open(
        dir.path().join("backups"),
        &dir.path().join("catalog.sqlite"),
        keys,
    )
    .await
    .unwrap();
    // Nothing listens on port 1: an operation that got past the lock would fail otherwise.
    let target = PgTarget::parse("postgres://postgres@127.0.0.1:1/school").unwrap();
    let held = vault.lock().unwrap();
    let busy = |what: &str, e: Option<schoolvault_engine::Error>| {
        let e = e.unwrap_or_else(|| panic!("{what} ran while another run held the lock"));
        assert_eq!(e.kind(), ErrorKind::Busy, "{what}: {e}");
    };
    let backup = jobs::backup(&vault, &target, &BackupOptions::default(), Arc::new(Silent)).await;
    busy("backup", backup.err());
    let restore = jobs::restore(
        &vault,
        "some-id",
        &target,
        &RestoreOptions::default(),
        Arc::new(Silent),
    )
    .await;
    busy("restore", restore.err());
    busy(
        "test restore",
        jobs::test_restore(&vault, "some-id", &target, None, Arc::new(Silent))
            .await
            .err(),
    );
    busy("delete", jobs::delete(&vault, "some-id").await.err());
    busy("rescan", jobs::rescan(&vault, Arc::new(Silent)).await.err());
    busy(
        "prune",
        jobs::prune(&vault, &Retention::default(), false, chrono::Utc::now())
            .await
            .err(),
    );
    busy("export", jobs::export_v1(&vault, &target, None).await.err());
    // Nothing was recorded as a failed run: they never started.
    assert!(vault.catalog.runs(10).await.unwrap().is_empty());
    drop(held);
    assert!(jobs::rescan(&vault, Arc::new(Silent))
        .await
        .unwrap()
        .is_empty());
    let e = jobs::delete(&vault, "some-id").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}
