//! SchoolVault's engine: everything that matters, with no GUI dependency.
//!
//! One module per concept: [`archive`] (the `.svb` format), [`crypto`] (the only user of
//! AES-GCM), [`legacy`] (the old system's v1 files), [`keychain`] (where keys come from), [`source`] (database adapters), [`storage`]
//! (where files go), [`offsite`] (copies in other places: folders, S3, WebDAV), [`catalog`] (the index of backups and runs), [`jobs`] (what the CLI and
//! the app call), [`schedule`] (when backups run, the run lock), [`retention`] (what to keep),
//! [`notify`] (failure emails), [`progress`] (events), [`config`] (default places), [`error`].

pub mod archive;
pub mod catalog;
pub mod config;
pub mod crypto;
pub mod demo;
pub mod error;
pub mod jobs;
pub mod keychain;
pub mod legacy;
pub mod notify;
pub mod offsite;
pub mod progress;
pub mod retention;
pub mod schedule;
pub mod size;
pub mod source;
pub mod storage;
pub mod tar_guard;

pub use error::{Error, ErrorKind, Result};
