//! `sync --verify`: a destination compared with the catalog (missing, size, unfinished,
//! rewritten and extra copies); what must be copied again is marked so.

use std::collections::{HashMap, HashSet};

use crate::catalog::{BackupRecord, CopyRecord, CopyState};
use crate::error::Result;
use crate::offsite::{RemoteObject, Store};

use super::{file_name, DestinationReport, Finding};
use crate::jobs::Locked;

/// Compare a destination with the catalog; mark what must be copied again.
pub(super) async fn verify_one(
    vault: &Locked<'_>,
    store: &Store,
    backups: &[BackupRecord],
    copies: &mut HashMap<(String, String), CopyRecord>,
    read_back: bool,
    report: &mut DestinationReport,
) -> Result<()> {
    let there: HashMap<String, RemoteObject> = store
        .list()
        .await?
        .into_iter()
        .map(|o| (o.name.clone(), o))
        .collect();
    let mut known = HashSet::new();
    for b in backups {
        let name = file_name(b);
        known.insert(name.clone());
        let key = (b.id.clone(), store.name().to_string());
        let problem = match there.get(&name) {
            None => Some(("missing", "not there".to_string())),
            Some(o) if o.size != b.size => Some((
                "size",
                format!("{} bytes there, {} in the catalog", o.size, b.size),
            )),
            Some(o) => {
                let recorded = copies.get(&key).filter(|c| c.state == CopyState::Done);
                let changed = recorded.is_some_and(|c| c.tag.is_some() && c.tag != o.tag);
                if store.recorded_sha256(&name).await?.as_deref() != Some(b.sha256.as_str()) {
                    Some((
                        "unfinished",
                        "no checksum file, or another checksum".to_string(),
                    ))
                } else if changed || read_back {
                    let (sha, _) = store.hash(&name).await?;
                    if sha == b.sha256 {
                        if let Some(c) = recorded {
                            // Rewritten with the same bytes (a sync tool touching it): fine.
                            let mut c = c.clone();
                            c.tag.clone_from(&o.tag);
                            vault.catalog.set_copy(&c).await?;
                            copies.insert(key.clone(), c);
                        }
                        None
                    } else {
                        Some((
                            "checksum",
                            "its bytes changed after it was copied".to_string(),
                        ))
                    }
                } else {
                    None
                }
            }
        };
        match problem {
            Some((problem, detail)) => {
                // Copied again below, now.
                copies.remove(&key);
                vault.catalog.remove_copy(&b.id, store.name()).await?;
                report.findings.push(Finding {
                    name,
                    problem: problem.into(),
                    detail,
                    repaired: false,
                });
            }
            None => {
                if !copies.get(&key).is_some_and(|c| c.state == CopyState::Done) {
                    // There and sound, but the catalog did not know (copied before a
                    // rescan): say so in the catalog.
                    let o = &there[&name];
                    let rec = CopyRecord::done(&b.id, store.name(), o.size, o.tag.clone());
                    vault.catalog.set_copy(&rec).await?;
                    copies.insert(key, rec);
                }
            }
        }
    }
    for name in there.keys().filter(|n| !known.contains(*n)) {
        report.findings.push(Finding {
            name: name.clone(),
            problem: "extra".into(),
            detail: "there, but not in this computer's list (kept by that destination's retention, or made elsewhere)".into(),
            repaired: false,
        });
    }
    Ok(())
}
