//! One destination, opened: what SchoolVault does there (upload a backup file and its checksum,
//! list, read, delete, test) through Apache OpenDAL, and every service's failures said as one
//! line that names the destination and what to do.
//!
//! Uploads stream the local file in 8 MiB chunks (S3: a multipart upload, so a 1 GB backup
//! never sits in memory), hash it on the way, and end with a check there: the size always,
//! and the bytes themselves (read back and hashed) where the service keeps no checksum of its
//! own (folders, WebDAV); S3 checks every part's CRC32C as it arrives. Folders and WebDAV get
//! the file under `<name>.part` and rename it, so an interrupted copy never looks complete;
//! S3 makes the object appear only when the multipart upload completes.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::TryStreamExt;
use opendal::layers::{RetryLayer, TimeoutLayer};
use opendal::{services, Operator};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::error::{Error, ErrorKind, Result};
use crate::keychain::Keychain;
use crate::offsite::destination::{DestinationSettings, Location};
use crate::offsite::lock::{bucket_url, ObjectLock};

/// The checksum file beside each backup file: `<id>.svb.sha256`.
pub const SIDECAR_SUFFIX: &str = ".sha256";
const PART_SUFFIX: &str = ".part";
const CHUNK: usize = 8 * 1024 * 1024;
const PROBE_NAME: &str = ".schoolvault-test";

/// An object at a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteObject {
    /// Its name (the backup's file name).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// What changes when anyone rewrites it (the ETag, else the modification time).
    pub tag: Option<String>,
}

/// One destination, ready to use.
pub struct Store {
    name: String,
    location: Location,
    op: Operator,
    bandwidth: Option<u64>,
    lock: Option<ObjectLock>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.name)
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// The secret for `d`: from the keychain when one was saved, else (S3) the environment.
fn secret_for(
    d: &DestinationSettings,
    keychain: &dyn Keychain,
) -> Result<Option<zeroize::Zeroizing<String>>> {
    if !d.secret_saved {
        return Ok(None);
    }
    keychain.get(&d.secret_account())?.map(Some).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            format!("The secret of destination {} is missing from the keychain", d.name),
            format!(
                "Give it again: `schoolvault destination add {} URL --access-key-id ID --secret-stdin` (or in the app's settings)",
                d.name
            ),
        )
        .in_app(format!("Type it again: Settings → Offsite copies → {} → Change", d.name))
    })
}

/// An ETag as a plain value: listings and HEAD requests quote it differently.
fn etag(raw: &str) -> String {
    raw.trim_start_matches("W/").trim_matches('"').to_string()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn config_error(d: &str, e: &opendal::Error) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("Destination {d} cannot be set up: {}", short(e)),
        "Check its address in the settings",
    )
}

/// The first line of an OpenDAL error (without the context it appends: request URLs…), and
/// the innermost cause when there is one ("connection refused").
fn short(e: &opendal::Error) -> String {
    let text = e.message().to_string();
    let line = text.lines().next().unwrap_or_default().trim();
    // S3 errors come as `S3Error { code: "AccessDenied", message: "Access Denied", … }`.
    let quoted = |field: &str| {
        let start = line.find(&format!("{field}: \""))? + field.len() + 3;
        let end = line[start..].find('"')? + start;
        Some(&line[start..end])
    };
    let line = match (quoted("code"), quoted("message")) {
        (Some(code), Some(message)) if line.contains("S3Error") => format!("{code}: {message}"),
        _ => line.to_string(),
    };
    let mut s: String = line.chars().take(200).collect();
    if s.is_empty() {
        s = e.kind().to_string();
    }
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut innermost = None;
    while let Some(c) = cause {
        innermost = Some(c);
        cause = c.source();
    }
    if let Some(c) = innermost {
        let c: String = c.to_string().chars().take(120).collect();
        if !c.is_empty() && !s.contains(&c) {
            s = format!("{s}: {c}");
        }
    }
    s
}

/// Never created here: copies would fill this computer's own disk.
fn folder_present(name: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::DestinationUnreachable,
        format!("Destination {name}: the folder {} is not there", path.display()),
        "Plug in the USB disk or mount the network share (the copy waits and is tried again); to use a new folder, create it first",
    ))
}

impl Store {
    /// Open destination `d`, reading its secret from `keychain` when one was saved.
    ///
    /// # Errors
    /// `InvalidInput` for a bad URL or a missing secret; `Keychain`.
    pub fn open(d: &DestinationSettings, keychain: &dyn Keychain) -> Result<Store> {
        // OpenDAL's HTTP client (reqwest on rustls with ring), installed once per process.
        static HTTP: std::sync::Once = std::sync::Once::new();
        HTTP.call_once(|| {
            // Already installed (by another part of the process) is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
            opendal_http_transport_reqwest::install_default();
        });
        let location = d.location()?;
        let secret = secret_for(d, keychain)?;
        let mut lock = None;
        let op = match &location {
            Location::Folder { path } => {
                // Before OpenDAL, which would make the folder.
                folder_present(&d.name, path)?;
                let root = path.to_string_lossy();
                Operator::new(services::Fs::default().root(&root))
            }
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                path_style,
            } => {
                let mut b = services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    // Nothing is read from ~/.aws or the instance metadata service (which
                    // hangs on a school PC); the key comes from the keychain or the two
                    // variables below.
                    .disable_config_load()
                    .disable_ec2_metadata()
                    .checksum_algorithm("crc32c");
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                if !path_style {
                    b = b.enable_virtual_host_style();
                }
                let id = d.access_key_id.clone().or_else(|| env("AWS_ACCESS_KEY_ID"));
                let key = secret
                    .as_ref()
                    .map(|s| s.to_string())
                    .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
                match (id, key) {
                    (Some(id), Some(key)) => {
                        b = b.access_key_id(&id).secret_access_key(&key);
                        lock = d.lock_days.map(|days| {
                            ObjectLock::new(
                                &d.name,
                                days,
                                bucket_url(bucket, endpoint.as_deref(), region, *path_style),
                                prefix,
                                region,
                                &id,
                                &key,
                            )
                        });
                    }
                    _ => {
                        return Err(Error::new(
                            ErrorKind::InvalidInput,
                            format!("Destination {} has no S3 access key", d.name),
                            format!(
                                "Give one: `schoolvault destination add {} URL --access-key-id ID --secret-stdin`, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                                d.name
                            ),
                        )
                        .in_app(format!("Give its access key ID and secret: Settings → Offsite copies → {} → Change", d.name)))
                    }
                }
                Operator::new(b)
            }
            Location::WebDav {
                endpoint,
                root,
                user,
            } => {
                let mut b = services::Webdav::default().endpoint(endpoint).root(root);
                if let Some(u) = d.access_key_id.clone().or_else(|| user.clone()) {
                    b = b.username(&u);
                }
                if let Some(p) = &secret {
                    b = b.password(p);
                }
                Operator::new(b)
            }
        }
        .map_err(|e| config_error(&d.name, &e))?
        .layer(
            RetryLayer::new()
                .with_max_times(2)
                .with_min_delay(Duration::from_millis(300))
                .with_jitter(),
        )
        .layer(TimeoutLayer::new().with_io_timeout(Duration::from_secs(60)));
        Ok(Store {
            name: d.name.clone(),
            location,
            op,
            bandwidth: d.bandwidth_kbps.map(|k| u64::from(k) * 1000),
            lock,
        })
    }

    /// The destination's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What its URL points at.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// `e`, met while `doing`, as the one-line error a person reads.
    fn error(&self, doing: &str, e: &opendal::Error) -> Error {
        use opendal::ErrorKind as K;
        let detail = short(e);
        let name = &self.name;
        let code = |c: &str| detail.contains(c);
        if code("RequestTimeTooSkewed") {
            return Error::new(
                ErrorKind::DestinationAuth,
                format!("Destination {name} refused {doing}: this computer's clock is wrong"),
                "Set the computer's date and time (automatic time), then try again",
            );
        }
        if code("certificate") {
            return Error::new(
                ErrorKind::DestinationUnreachable,
                format!("Destination {name}: its TLS certificate is not trusted ({detail})"),
                "Give the server a certificate from a public or the school's trusted authority (installed on this computer), or check the address",
            );
        }
        if code("NoSuchBucket") {
            return Error::new(
                ErrorKind::DestinationMissing,
                format!("Destination {name}: the bucket does not exist"),
                "Create the bucket, or correct its name in the destination's address",
            );
        }
        match e.kind() {
            K::PermissionDenied => Error::new(
                ErrorKind::DestinationAuth,
                if code("InvalidAccessKeyId") || code("SignatureDoesNotMatch") {
                    format!("Destination {name} refused the access key ({doing})")
                } else {
                    format!("Destination {name} refused {doing}: permission denied ({detail})")
                },
                "Check the access key and secret (or user and password), and that they may write there",
            ),
            K::NotFound => Error::new(
                ErrorKind::DestinationMissing,
                format!("Destination {name}: {doing} found nothing there ({detail})"),
                "Check the destination's address (bucket, folder)",
            ),
            K::ConfigInvalid => config_error(name, e),
            // OpenDAL 0.59 maps a WebDAV 401 to `Unexpected` and keeps the HTTP status only in
            // its (private) context, which its text shows: the server's answer, not ours.
            _ if detail.contains("401") || detail.contains("Unauthorized") => Error::new(
                ErrorKind::DestinationAuth,
                format!("Destination {name} refused the login ({doing})"),
                "Check the user and password in the destination's settings",
            ),
            _ => Error::new(
                ErrorKind::DestinationUnreachable,
                format!("Destination {name} cannot be reached ({doing}: {detail})"),
                "Check the network and that the server is up; the copy waits and is tried again at the next backup or `schoolvault sync`",
            )
            .in_app("Check the network and that the server is up; the copy waits and is tried again at the next backup or with Sync now"),
        }
    }

    /// A folder destination whose folder is not there (a USB disk not plugged in, a NAS
    /// share not mounted).
    fn folder_present(&self) -> Result<()> {
        match &self.location {
            Location::Folder { path } => folder_present(&self.name, path),
            _ => Ok(()),
        }
    }

    /// Whether the service keeps a checksum it checks itself (S3's per-part CRC32C): when it
    /// does not, an upload is read back and hashed.
    fn checks_its_own(&self) -> bool {
        matches!(self.location, Location::S3 { .. })
    }

    /// Folders and WebDAV get `.part` and a rename; S3 shows an object only once complete.
    fn renames(&self) -> bool {
        !matches!(self.location, Location::S3 { .. })
    }

    /// Write, read back and delete a small object: each failure said as what to fix.
    ///
    /// # Errors
    /// `DestinationUnreachable`, `DestinationAuth`, `DestinationMissing`, `Inconsistent`.
    pub async fn test(&self) -> Result<()> {
        self.folder_present()?;
        // Listing first: a bucket that does not exist, or credentials that may not read, are
        // said as such (some servers make a bucket on the first write).
        match self.op.list("/").await {
            Ok(_) => {}
            Err(e)
                if e.kind() == opendal::ErrorKind::NotFound
                    && matches!(self.location, Location::WebDav { .. }) => {}
            Err(e) => return Err(self.error("listing its backups", &e)),
        }
        if let Some(lock) = &self.lock {
            lock.check_bucket().await?;
        }
        let body = format!("SchoolVault test {}", chrono::Utc::now().to_rfc3339());
        self.op
            .write(PROBE_NAME, body.clone().into_bytes())
            .await
            .map_err(|e| self.error("a test write", &e))?;
        let back = self
            .op
            .read(PROBE_NAME)
            .await
            .map_err(|e| self.error("reading the test file back", &e))?
            .to_vec();
        let _ = self.remove(PROBE_NAME).await;
        if back != body.as_bytes() {
            return Err(Error::new(
                ErrorKind::Inconsistent,
                format!(
                    "Destination {} gave back other bytes than were written",
                    self.name
                ),
                "The storage is faulty or something rewrites files there; use another destination",
            ));
        }
        Ok(())
    }

    /// The backup files there (`.svb` and the old system's `.enc`), with their sizes.
    ///
    /// # Errors
    /// The mapped destination errors.
    pub async fn list(&self) -> Result<Vec<RemoteObject>> {
        self.folder_present()?;
        let entries = match self.op.list("/").await {
            Ok(entries) => entries,
            // An empty prefix on S3 lists as nothing; a WebDAV folder not made yet is empty.
            Err(e)
                if e.kind() == opendal::ErrorKind::NotFound
                    && !matches!(self.location, Location::Folder { .. }) =>
            {
                Vec::new()
            }
            Err(e) => return Err(self.error("listing the backups", &e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let name = entry.name().trim_end_matches('/').to_string();
            if !(name.ends_with(".svb") || name.ends_with(".enc")) || entry.metadata().is_dir() {
                continue;
            }
            let m = entry.metadata();
            if matches!(self.location, Location::S3 { .. }) && m.etag().is_some() {
                // S3 lists sizes and ETags: no request per object.
                out.push(RemoteObject {
                    name,
                    size: m.content_length(),
                    tag: m.etag().map(etag),
                });
            } else if let Some(obj) = self.stat(&name).await? {
                out.push(obj);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The object `name`, or none.
    ///
    /// # Errors
    /// The mapped destination errors.
    pub async fn stat(&self, name: &str) -> Result<Option<RemoteObject>> {
        match self.op.stat(name).await {
            Ok(m) => Ok(Some(RemoteObject {
                name: name.to_string(),
                size: m.content_length(),
                tag: m
                    .etag()
                    .map(etag)
                    .or_else(|| m.last_modified().map(|t| t.to_string())),
            })),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(&format!("looking at {name}"), &e)),
        }
    }

    /// The SHA-256 its checksum file records for `name`, if it has one.
    ///
    /// # Errors
    /// The mapped destination errors.
    pub async fn recorded_sha256(&self, name: &str) -> Result<Option<String>> {
        match self.op.read(&format!("{name}{SIDECAR_SUFFIX}")).await {
            Ok(b) => {
                let text = String::from_utf8_lossy(&b.to_vec()).into_owned();
                Ok(text
                    .split_whitespace()
                    .next()
                    .filter(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .map(str::to_ascii_lowercase))
            }
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(&format!("reading {name}{SIDECAR_SUFFIX}"), &e)),
        }
    }

    /// Copy the local backup `local` there as `name`, check it, and write its checksum file.
    /// `sha256` is what the catalog recorded for the local file: a local file that no longer
    /// matches it is not copied. `sent` hears the bytes sent so far.
    ///
    /// # Errors
    /// The mapped destination errors; `Damaged` when the local file changed; `Inconsistent`
    /// when the copy there does not match.
    pub async fn upload(
        &self,
        local: &Path,
        name: &str,
        sha256: &str,
        sent: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<RemoteObject> {
        self.folder_present()?;
        let sidecar = format!("{name}{SIDECAR_SUFFIX}");
        // Folders and WebDAV: the old checksum file goes first, so a copy cut off from here on
        // (the rename below replaces the file) is never taken for a finished one. S3 replaces
        // an object only when its upload completes, with the same bytes (a name is one
        // backup), so the checksum file stays true; deleting it would only leave a delete
        // marker in a versioned (Object Lock) bucket, or be refused by the lock.
        if self.renames() {
            match self.op.delete(&sidecar).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e) => return Err(self.error(&format!("copying {name}"), &e)),
            }
        }
        let target = if self.renames() {
            format!("{name}{PART_SUFFIX}")
        } else {
            name.to_string()
        };
        let mut file = tokio::fs::File::open(local)
            .await
            .map_err(|e| Error::io(format_args!("reading {}", local.display()), &e))?;
        let mut writer = self
            .op
            .writer_with(&target)
            .chunk(CHUNK)
            .concurrent(2)
            .await
            .map_err(|e| self.error(&format!("starting the upload of {name}"), &e))?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let started = Instant::now();
        let result: Result<()> = async {
            loop {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    let n = file
                        .read(&mut buf[filled..])
                        .await
                        .map_err(|e| Error::io(format_args!("reading {}", local.display()), &e))?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                if filled == 0 {
                    break;
                }
                buf.truncate(filled);
                hasher.update(&buf);
                total += filled as u64;
                writer
                    .write(Bytes::from(buf))
                    .await
                    .map_err(|e| self.error(&format!("uploading {name}"), &e))?;
                sent(total);
                self.pace(total, started).await;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            let _ = writer.abort().await;
            if self.renames() {
                let _ = self.op.delete(&target).await;
            }
            return Err(e);
        }
        let local_sha = hex::encode(hasher.finalize());
        if local_sha != sha256 {
            let _ = writer.abort().await;
            if self.renames() {
                let _ = self.op.delete(&target).await;
            }
            return Err(Error::new(
                ErrorKind::Damaged,
                format!("The local file of backup {name} changed since it was written, so it was not copied to {}", self.name),
                "Run `schoolvault verify` on it; copy a good backup instead",
            )
            .in_app("Verify it on the Backups screen; copy a good backup instead"));
        }
        writer
            .close()
            .await
            .map_err(|e| self.error(&format!("finishing the upload of {name}"), &e))?;
        if self.renames() {
            self.op
                .rename(&target, name)
                .await
                .map_err(|e| self.error(&format!("renaming {target}"), &e))?;
        }
        let there = self.stat(name).await?.ok_or_else(|| {
            Error::new(
                ErrorKind::Inconsistent,
                format!("Destination {} does not show {name} after the upload", self.name),
                "The copy is tried again at the next sync; if it keeps failing, test the destination",
            )
        })?;
        if there.size != total {
            return Err(self.mismatch(name, &format!("{} bytes there, {total} here", there.size)));
        }
        if !self.checks_its_own() {
            let (remote_sha, _) = self.hash(name).await?;
            if remote_sha != local_sha {
                return Err(self.mismatch(name, "its bytes differ from the local file"));
            }
        }
        self.op
            .write(&sidecar, format!("{local_sha}  {name}\n").into_bytes())
            .await
            .map_err(|e| self.error(&format!("writing {sidecar}"), &e))?;
        if let Some(lock) = &self.lock {
            let now = chrono::Utc::now();
            lock.retain(name, now).await?;
            lock.retain(&sidecar, now).await?;
        }
        Ok(there)
    }

    fn broke_off(&self, name: &str, e: &std::io::Error) -> Error {
        Error::new(
            ErrorKind::DestinationUnreachable,
            format!("Destination {}: reading {name} broke off ({e})", self.name),
            "Check the network and try again",
        )
    }

    fn mismatch(&self, name: &str, what: &str) -> Error {
        Error::new(
            ErrorKind::Inconsistent,
            format!("The copy of {name} at {} does not match ({what})", self.name),
            "It is copied again at the next sync; if it keeps failing, the destination's storage is faulty",
        )
    }

    /// Keep uploads under the bandwidth limit.
    async fn pace(&self, sent: u64, started: Instant) {
        if let Some(rate) = self.bandwidth.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(sent as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Read `name` there completely: its SHA-256 and size.
    ///
    /// # Errors
    /// The mapped destination errors.
    pub async fn hash(&self, name: &str) -> Result<(String, u64)> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut stream = self.stream(name).await?;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.broke_off(name, &e))?
        {
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hex::encode(hasher.finalize()), size))
    }

    async fn stream(
        &self,
        name: &str,
    ) -> Result<impl futures_util::Stream<Item = std::io::Result<Bytes>> + Unpin> {
        let reader = self
            .op
            .reader_with(name)
            .chunk(CHUNK)
            .await
            .map_err(|e| self.error(&format!("opening {name}"), &e))?;
        reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.error(&format!("reading {name}"), &e))
    }

    /// The first `len` bytes of `name` (a backup's header, for listing without downloading).
    ///
    /// # Errors
    /// The mapped destination errors.
    pub async fn head(&self, name: &str, len: u64) -> Result<Vec<u8>> {
        self.op
            .read_with(name)
            .range(0..len)
            .await
            .map(|b| b.to_vec())
            .map_err(|e| self.error(&format!("reading the start of {name}"), &e))
    }

    /// Download `name` into `to` (written under a temporary name, renamed when complete and
    /// matching `sha256` when one is given). `got` hears the bytes received so far.
    ///
    /// # Errors
    /// The mapped destination errors; `Damaged` when the bytes do not match; I/O errors.
    pub async fn download(
        &self,
        name: &str,
        to: &Path,
        sha256: Option<&str>,
        got: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64> {
        let dir = to.parent().unwrap_or_else(|| Path::new("."));
        let file_name = to
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| name.to_string());
        let (partial, file) = crate::storage::PartialFile::create_as(
            dir,
            &file_name,
            &format!(".{file_name}.{}.download", std::process::id()),
        )?;
        let mut out = tokio::fs::File::from_std(file);
        let mut stream = self.stream(name).await?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.broke_off(name, &e))?
        {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk)
                .await
                .map_err(|e| Error::io(format_args!("writing {}", to.display()), &e))?;
            got(size);
        }
        out.flush()
            .await
            .map_err(|e| Error::io(format_args!("writing {}", to.display()), &e))?;
        let got_sha = hex::encode(hasher.finalize());
        if let Some(want) = sha256 {
            if want != got_sha {
                return Err(Error::new(
                    ErrorKind::Damaged,
                    format!("The copy of {name} at {} is damaged (its checksum does not match)", self.name),
                    "Use another copy of this backup (another destination, or the local one); `schoolvault sync --verify` replaces a damaged copy",
                )
                .in_app("Use another copy of this backup (another destination, or the one on this computer)"));
            }
        }
        partial.commit(out.into_std().await)?;
        Ok(size)
    }

    /// Delete `name` and its checksum file there.
    ///
    /// # Errors
    /// The mapped destination errors (an object already gone is not one).
    pub async fn delete(&self, name: &str) -> Result<()> {
        for object in [format!("{name}{SIDECAR_SUFFIX}"), name.to_string()] {
            match self.remove(&object).await {
                Ok(()) => {}
                Err(e) if e.kind() == opendal::ErrorKind::NotFound => {}
                Err(e)
                    if e.kind() == opendal::ErrorKind::PermissionDenied && self.lock.is_some() =>
                {
                    return Err(Error::new(
                        ErrorKind::DestinationAuth,
                        format!("Destination {} keeps {object} under Object Lock", self.name),
                        "It can be removed once its lock ends; nothing to do",
                    ))
                }
                Err(e) => return Err(self.error(&format!("deleting {object}"), &e)),
            }
        }
        Ok(())
    }

    /// How many days each copy is locked for (S3 Object Lock), if it is.
    pub fn lock_days(&self) -> Option<u32> {
        self.lock.as_ref().map(ObjectLock::days)
    }

    /// Delete one object. In a bucket with Object Lock (always versioned) a plain delete only
    /// hides the object behind a marker and frees nothing; the object's version itself is
    /// deleted, which the bucket refuses while the lock holds.
    async fn remove(&self, object: &str) -> opendal::Result<()> {
        if self.lock.is_some() {
            let meta = self.op.stat(object).await?;
            if let Some(version) = meta.version() {
                return self.op.delete_with(object).version(version).await;
            }
        }
        self.op.delete(object).await
    }
}
