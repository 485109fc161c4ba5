//! Offsite copies on the command line: `destination add|list|test|remove`, `sync [--verify]`,
//! `rescan --from NAME`, and the `copies` every backup shows in `list` and `backup`.

use std::path::PathBuf;

use schoolvault_engine::catalog::{CopyRecord, CopyState};
use schoolvault_engine::config::RetentionSettings;
use schoolvault_engine::jobs::{self, DestinationReport, RescanEntry, SyncOptions};
use schoolvault_engine::keychain::{Keychain, OsKeychain};
use schoolvault_engine::offsite::{DestinationSettings, Store};
use schoolvault_engine::{Error, ErrorKind, Result};
use serde::Serialize;

use crate::args::DestinationAction;
use crate::output::Report;
use crate::session::Session;

/// A backup's copy at one destination, as `list` and `backup` show it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CopyView {
    pub(crate) destination: String,
    pub(crate) state: CopyState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The copies of backup `id` at every enabled destination (none recorded yet: pending).
pub(crate) fn copies_of(
    id: &str,
    copies: &[CopyRecord],
    destinations: &[DestinationSettings],
) -> Vec<CopyView> {
    jobs::copies_of(id, copies, destinations)
        .into_iter()
        .map(|(destination, copy)| CopyView {
            destination: destination.to_string(),
            state: copy.map_or(CopyState::Pending, |c| c.state),
            error: copy.and_then(|c| c.error.clone()),
            since: copy.filter(|c| c.state != CopyState::Done).map(|c| c.since),
        })
        .collect()
}

/// One word per copy for a text list: `NAS:ok cloud:pending`.
pub(crate) fn copies_text(copies: &[CopyView]) -> String {
    copies
        .iter()
        .map(|c| {
            let state = match c.state {
                CopyState::Done => "ok",
                CopyState::Pending => "pending",
                CopyState::Failed => "FAILED",
            };
            format!("{}:{state}", c.destination)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// What to say about destinations left behind (a copy pending is never an error of the
/// backup itself).
pub(crate) fn copy_warnings(reports: &[DestinationReport]) -> Vec<String> {
    reports
        .iter()
        .filter(|r| !r.is_complete())
        .map(|r| {
            let why = r
                .problem()
                .map_or_else(|| "not copied yet".into(), |(_, why)| why);
            format!(
                "the copy to {} is pending ({} backup(s) owed): {why}",
                r.destination,
                r.owed.len()
            )
        })
        .collect()
}

/// What a `destination` command did.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum DestinationDone {
    Saved {
        destination: DestinationSettings,
        tested: bool,
    },
    Listed(Vec<DestinationRow>),
    Tested {
        destination: String,
        ok: bool,
    },
    Removed {
        removed: String,
    },
}

/// A destination in `destination list`.
#[derive(Serialize)]
pub(crate) struct DestinationRow {
    name: String,
    kind: String,
    url: String,
    enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention: Option<RetentionSettings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bandwidth_kbps: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_days: Option<u32>,
    copies_done: usize,
    copies_pending: usize,
    copies_failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pending_since: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

impl Report for DestinationDone {
    fn text(&self) -> Result<Vec<String>> {
        Ok(match self {
            DestinationDone::Saved {
                destination,
                tested,
            } => vec![format!(
                "Destination {} saved{}: every backup is copied there from now on (`schoolvault sync` copies the ones made before).",
                destination.name,
                if *tested { " and tested" } else { " (not tested)" }
            )],
            DestinationDone::Listed(rows) if rows.is_empty() => vec![
                "No destinations yet. Add one with `schoolvault destination add NAME URL`.".into(),
            ],
            DestinationDone::Listed(rows) => {
                let mut text = vec![format!(
                    "{:<12} {:<7} {:<8} {:>6} {:>8} {:>7}  {}",
                    "NAME", "KIND", "ENABLED", "COPIES", "PENDING", "FAILED", "WHERE"
                )];
                for r in rows {
                    text.push(format!(
                        "{:<12} {:<7} {:<8} {:>6} {:>8} {:>7}  {}",
                        r.name,
                        r.kind,
                        if r.enabled { "yes" } else { "no" },
                        r.copies_done,
                        r.copies_pending,
                        r.copies_failed,
                        r.url
                    ));
                    if let Some(days) = r.lock_days {
                        text.push(format!("    every copy locked for {days} days (S3 Object Lock)"));
                    }
                    if let Some(since) = r.pending_since {
                        text.push(format!(
                            "    waiting since {}{}",
                            since.format("%Y-%m-%d %H:%M UTC"),
                            r.last_error
                                .as_ref()
                                .map(|e| format!(": {e}"))
                                .unwrap_or_default()
                        ));
                    }
                }
                text
            }
            DestinationDone::Tested { destination, .. } => vec![format!(
                "Destination {destination} works: a test file was written, read back and deleted."
            )],
            DestinationDone::Removed { removed } => vec![format!(
                "Destination {removed} removed. Its files there were left as they are."
            )],
        })
    }
}

/// `destination …`.
///
/// # Errors
/// Bad names or URLs, the keychain, the test's failure, the settings file.
pub(crate) async fn destination(
    session: &Session,
    action: DestinationAction,
) -> Result<DestinationDone> {
    let mut settings = session.settings.clone();
    match action {
        DestinationAction::Add {
            name,
            url,
            access_key_id,
            secret_stdin,
            keep_days,
            keep_last,
            keep_weekly,
            keep_monthly,
            bandwidth,
            lock_days,
            no_test,
        } => {
            let own_retention = keep_days.is_some()
                || keep_last.is_some()
                || keep_weekly.is_some()
                || keep_monthly.is_some();
            let existing = settings
                .destinations
                .iter()
                .position(|d| d.name.eq_ignore_ascii_case(&name));
            let mut d = DestinationSettings {
                name: name.clone(),
                url,
                enabled: true,
                access_key_id,
                secret_saved: secret_stdin
                    || existing.is_some_and(|i| settings.destinations[i].secret_saved),
                retention: own_retention.then(|| RetentionSettings {
                    keep_days: keep_days.unwrap_or(0),
                    keep_last,
                    keep_weekly,
                    keep_monthly,
                }),
                bandwidth_kbps: bandwidth,
                lock_days,
            };
            if let Some(i) = existing {
                d.name.clone_from(&settings.destinations[i].name);
            }
            d.validate()?;
            d.make_folder()?;
            let keychain = OsKeychain;
            if secret_stdin {
                let mut line = String::new();
                std::io::stdin()
                    .read_line(&mut line)
                    .map_err(|e| Error::io("reading the secret from standard input", &e))?;
                let secret =
                    zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string());
                if secret.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidInput,
                        "No secret was given on standard input",
                        "Pipe it in: `printf '%s\\n' \"$SECRET\" | schoolvault destination add … --secret-stdin`",
                    ));
                }
                keychain.set(&d.secret_account(), &secret)?;
            }
            if !no_test {
                Store::open(&d, &keychain)?.test().await.map_err(|e| {
                    Error::new(
                        e.kind(),
                        e.message().to_string(),
                        format!(
                            "{} (nothing was saved; --no-test saves it anyway)",
                            e.guidance()
                        ),
                    )
                })?;
            }
            match existing {
                Some(i) => settings.destinations[i] = d.clone(),
                None => settings.destinations.push(d.clone()),
            }
            settings.save(&session.config_path)?;
            Ok(DestinationDone::Saved {
                destination: d,
                tested: !no_test,
            })
        }
        DestinationAction::List => {
            let copies = session.vault.catalog.copies().await?;
            let rows = settings
                .destinations
                .iter()
                .map(|d| {
                    let t = jobs::Tally::of(&d.name, &copies);
                    DestinationRow {
                        name: d.name.clone(),
                        kind: d.location().map_or("?", |l| l.kind()).to_string(),
                        url: d.url.clone(),
                        enabled: d.enabled,
                        retention: d.retention.clone(),
                        bandwidth_kbps: d.bandwidth_kbps,
                        lock_days: d.lock_days,
                        copies_done: t.done,
                        copies_pending: t.pending,
                        copies_failed: t.failed,
                        pending_since: t.waiting_since,
                        last_error: t.last_error,
                    }
                })
                .collect();
            Ok(DestinationDone::Listed(rows))
        }
        DestinationAction::Test { name } => {
            let d = settings.destination(&name)?;
            Store::open(d, &OsKeychain)?.test().await?;
            Ok(DestinationDone::Tested {
                destination: d.name.clone(),
                ok: true,
            })
        }
        DestinationAction::Remove { name } => {
            let d = settings.destination(&name)?.clone();
            // First, under the run lock: a sync running now makes this wait, nothing changed.
            jobs::forget_destination(&session.vault, &d.name).await?;
            settings.destinations.retain(|o| o.name != d.name);
            settings.save(&session.config_path)?;
            if d.secret_saved {
                OsKeychain.delete(&d.secret_account())?;
            }
            Ok(DestinationDone::Removed { removed: d.name })
        }
    }
}

/// What `sync` did.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct Synced(Vec<DestinationReport>);

impl Report for Synced {
    fn text(&self) -> Result<Vec<String>> {
        if self.0.is_empty() {
            return Ok(vec![
                "No destinations. Add one with `schoolvault destination add NAME URL`.".into(),
            ]);
        }
        let mut text = Vec::new();
        for r in &self.0 {
            for f in &r.findings {
                text.push(format!(
                    "{}: {} {} ({})",
                    r.destination, f.name, f.problem, f.detail
                ));
            }
            let mut line = format!(
                "{}: {} copied, {} still owed",
                r.destination,
                r.uploaded.len(),
                r.owed.len()
            );
            if !r.pruned.is_empty() {
                line.push_str(&format!(", {} old copies removed", r.pruned.len()));
            }
            match &r.error {
                Some(e) => line.push_str(&format!(": {e}")),
                None if r.owed.is_empty() => line.push_str(": up to date"),
                None => {}
            }
            text.push(line);
        }
        Ok(text)
    }
}

impl Synced {
    /// An error when a destination is not up to date (for the exit code).
    pub(crate) fn result(&self) -> Result<()> {
        let behind: Vec<&DestinationReport> = self.0.iter().filter(|r| !r.is_complete()).collect();
        let Some(first) = behind.first() else {
            return Ok(());
        };
        let (kind, why) = first.problem().unwrap_or((
            ErrorKind::DestinationUnreachable,
            "copies are still owed".into(),
        ));
        Err(Error::new(
            kind,
            format!(
                "{} of {} destinations not up to date: {why}",
                behind.len(),
                self.0.len()
            ),
            "The copies wait and are tried again at the next backup or `schoolvault sync`",
        ))
    }
}

/// `sync`.
///
/// # Errors
/// `Busy`; `Catalog`. A destination's failure is in the report (and [`Synced::result`]).
pub(crate) async fn sync(
    session: &Session,
    verify: bool,
    read_back: bool,
    prune: bool,
) -> Result<Synced> {
    let opts = SyncOptions {
        verify,
        read_back,
        now: true,
        prune,
    };
    Ok(Synced(
        jobs::sync(
            &session.vault,
            &session.offsite,
            opts,
            session.progress.clone(),
        )
        .await?,
    ))
}

/// What `rescan --from` found.
#[derive(Serialize)]
#[serde(transparent)]
pub(crate) struct RescannedFrom {
    entries: Vec<RescanEntry>,
    #[serde(skip)]
    from: String,
}

impl Report for RescannedFrom {
    fn text(&self) -> Result<Vec<String>> {
        let mut text: Vec<String> = self
            .entries
            .iter()
            .map(|e| {
                let name = e
                    .path
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                match &e.message {
                    Some(m) => format!("{name}: {} ({m})", e.status),
                    None => format!("{name}: {}", e.status),
                }
            })
            .collect();
        let listed = self
            .entries
            .iter()
            .filter(|e| e.status == "complete")
            .count();
        text.push(format!(
            "{listed} backups listed from {}; `schoolvault restore ID` downloads one when it is restored.",
            self.from
        ));
        Ok(text)
    }
}

/// `rescan --from NAME`.
///
/// # Errors
/// No such destination; its errors; `Busy`; `Catalog`.
pub(crate) async fn rescan_from(session: &Session, name: &str) -> Result<RescannedFrom> {
    let d = session.settings.destination(name)?;
    let entries = jobs::rescan_from(&session.vault, &session.offsite, d).await?;
    Ok(RescannedFrom {
        entries,
        from: d.name.clone(),
    })
}

/// A listed backup whose file is not here: brought back from a destination first.
///
/// # Errors
/// As [`jobs::fetch`].
pub(crate) async fn fetch(session: &Session, what: &str) -> Result<()> {
    if PathBuf::from(what).is_file() {
        return Ok(());
    }
    jobs::fetch(
        &session.vault,
        &session.offsite,
        what,
        session.progress.clone(),
    )
    .await
}
