//! Where copies stand: the destinations as the jobs see them ([`Offsite`]), whether a copy is
//! due, which destinations are behind, and per-destination tallies for lists.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::catalog::{CopyRecord, CopyState};
use crate::error::Result;
use crate::keychain::Keychain;
use crate::offsite::DestinationSettings;
use crate::retention::Retention;

use super::{copies_by_key, copyable};
use crate::jobs::Vault;

/// The destinations and what they need: their settings, the keychain holding their secrets,
/// and the local retention (theirs unless they have their own).
#[derive(Clone)]
pub struct Offsite {
    /// Every destination (switched-off ones are skipped).
    pub destinations: Vec<DestinationSettings>,
    /// Where their secrets are.
    pub keychain: Arc<dyn Keychain>,
    /// The local folder's retention.
    pub local_policy: Retention,
}

impl std::fmt::Debug for Offsite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offsite")
            .field("destinations", &self.destinations)
            .field("local_policy", &self.local_policy)
            .finish_non_exhaustive()
    }
}

impl Offsite {
    /// The destinations of the settings file `config`, their secrets in `keychain`.
    pub fn from_config(config: &crate::config::Config, keychain: Arc<dyn Keychain>) -> Offsite {
        Offsite {
            destinations: config.destinations.clone(),
            keychain,
            local_policy: config.retention.policy(),
        }
    }

    pub(crate) fn enabled(&self) -> impl Iterator<Item = &DestinationSettings> {
        self.destinations.iter().filter(|d| d.enabled)
    }

    /// Whether a copy is owed somewhere and due now (so a schedule look knows to sync).
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn due(&self, vault: &Vault, now: DateTime<Utc>) -> Result<bool> {
        if self.enabled().next().is_none() {
            return Ok(false);
        }
        let copies = copies_by_key(vault).await?;
        for b in copyable(vault).await? {
            for d in self.enabled() {
                match copies.get(&(b.id.clone(), d.name.clone())) {
                    None => return Ok(true),
                    Some(c)
                        if c.state != CopyState::Done && c.next_try_at.is_none_or(|t| t <= now) =>
                    {
                        return Ok(true)
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(false)
    }
}

/// A destination that has owed copies for a while (pending or failed).
#[derive(Debug, Clone, Serialize)]
pub struct Behind {
    /// The destination.
    pub destination: String,
    /// Since when a copy waits (the oldest owed one).
    pub since: DateTime<Utc>,
    /// How many backups wait.
    pub waiting: usize,
    /// The last error of the oldest owed copy.
    pub error: Option<String>,
}

impl Behind {
    /// One line for the tray, the banner, a warning.
    pub fn line(&self) -> String {
        format!(
            "no copy to {} since {} ({} waiting){}",
            self.destination,
            self.since
                .with_timezone(&chrono::Local)
                .format("%a %d %b %H:%M"),
            self.waiting,
            self.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        )
    }
}

impl Offsite {
    /// The enabled destinations whose oldest owed copy waits since `max_age` or longer.
    ///
    /// # Errors
    /// `Catalog`.
    pub async fn behind(
        &self,
        vault: &Vault,
        max_age: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Behind>> {
        let copies = vault.catalog.copies().await?;
        Ok(self
            .enabled()
            .filter_map(|d| {
                let t = Tally::of(&d.name, &copies);
                let since = t.waiting_since?;
                (now - since >= max_age).then(|| Behind {
                    destination: d.name.clone(),
                    since,
                    waiting: t.pending + t.failed,
                    error: t.last_error,
                })
            })
            .collect())
    }
}

/// How one destination's copies stand: the counts, and the oldest copy still owed.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Copies there.
    pub done: usize,
    /// Copies waiting for the destination to be reachable.
    pub pending: usize,
    /// Copies the destination refused.
    pub failed: usize,
    /// Since when the oldest owed copy waits.
    pub waiting_since: Option<DateTime<Utc>>,
    /// That copy's last error.
    pub last_error: Option<String>,
}

impl Tally {
    /// The tally of `destination` among `copies`.
    pub fn of(destination: &str, copies: &[CopyRecord]) -> Tally {
        let here = copies.iter().filter(|c| c.destination == destination);
        let count = |s: CopyState| here.clone().filter(|c| c.state == s).count();
        let oldest = here
            .clone()
            .filter(|c| c.state != CopyState::Done)
            .min_by_key(|c| c.since);
        Tally {
            done: count(CopyState::Done),
            pending: count(CopyState::Pending),
            failed: count(CopyState::Failed),
            waiting_since: oldest.map(|c| c.since),
            last_error: oldest.and_then(|c| c.error.clone()),
        }
    }
}

/// The copy of backup `id` at each enabled destination: its record, or none (not copied yet,
/// which lists show as pending).
pub fn copies_of<'a>(
    id: &str,
    copies: &'a [CopyRecord],
    destinations: &'a [DestinationSettings],
) -> Vec<(&'a str, Option<&'a CopyRecord>)> {
    destinations
        .iter()
        .filter(|d| d.enabled)
        .map(|d| {
            let copy = copies
                .iter()
                .find(|c| c.backup_id == id && c.destination == d.name);
            (d.name.as_str(), copy)
        })
        .collect()
}
