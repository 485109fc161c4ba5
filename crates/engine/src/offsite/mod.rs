//! Offsite copies: the second (and third…) place every backup is kept, so a dead disk, a stolen
//! or burnt office PC, or ransomware on the school's network does not take the only copy.
//!
//! | file | owns |
//! |---|---|
//! | `destination` | a destination's settings (name, URL, credentials' keychain account, retention, bandwidth) and what its URL means |
//! | `lock` | S3 Object Lock: each copy locked for N days, and the bucket's lock checked |
//! | `store` | talking to one destination through Apache OpenDAL: upload, list, read, delete, test, and each service's errors in words |
//!
//! What is stored there, under the destination's folder or prefix, per backup:
//! - `<id>.svb`: the backup file, byte for byte (it is already encrypted; the destination never
//!   sees a key or a row);
//! - `<id>.svb.sha256`: `<sha256>  <id>.svb`, written only after the file is complete and
//!   checked there: `sha256sum -c` checks a copy by hand, and a file without it is a copy that
//!   never finished.
//!
//! Which copies exist and which are pending lives in the catalog (`copies`); the jobs that
//! copy, verify, prune and fetch are in `jobs::offsite`.

mod destination;
mod lock;
mod store;

pub use destination::{DestinationSettings, Location, DESTINATION_SECRET_PREFIX, MAX_LOCK_DAYS};
pub use store::{RemoteObject, Store, SIDECAR_SUFFIX};
