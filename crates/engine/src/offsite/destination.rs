//! A destination's settings, as the settings file holds them (`[[destinations]]`), and what
//! its URL means. Secrets (an S3 secret key, a WebDAV password) are never here: the keychain
//! holds them under `destination-<name>`, and the file records only that one was saved.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::RetentionSettings;
use crate::error::{Error, ErrorKind, Result};

/// The keychain account of a destination's secret is this prefix and the destination's name.
pub const DESTINATION_SECRET_PREFIX: &str = "destination-";

/// One offsite destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationSettings {
    /// The name people and commands use (`NAS`, `cloud`): letters, digits, `-`, `_`.
    pub name: String,
    /// Where: `file:///media/usb/schoolvault` (or a plain absolute path),
    /// `s3://BUCKET/PREFIX?endpoint=…&region=…&path_style=true`, `webdav+https://HOST/PATH`.
    pub url: String,
    /// Copies go there (a destination switched off keeps its files and its place in the list).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The S3 access key id, or the WebDAV user (none: the S3 key comes from
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// True when the secret (S3 secret key, WebDAV password) is saved in the keychain.
    #[serde(default)]
    pub secret_saved: bool,
    /// Its own retention; none: the same as the local folder's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSettings>,
    /// Upload at most this many kilobytes (1000 bytes) per second; none: as fast as it goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_kbps: Option<u32>,
    /// S3 buckets with Object Lock: every copy is locked (compliance mode) for this many days,
    /// so nobody holding the credentials can delete or overwrite it before then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_days: Option<u32>,
}

/// The longest Object Lock SchoolVault sets (ten years): a lock cannot be shortened.
pub const MAX_LOCK_DAYS: u32 = 3650;

fn yes() -> bool {
    true
}

/// What a destination's URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A folder: a USB disk, a mounted NAS or network share, a sync client's folder.
    Folder {
        /// The folder.
        path: PathBuf,
    },
    /// An S3-compatible bucket (AWS, Backblaze B2, Wasabi, Cloudflare R2, MinIO…).
    S3 {
        /// The bucket.
        bucket: String,
        /// The folder inside it (no leading or trailing `/`; may be empty).
        prefix: String,
        /// The service's address; none: AWS.
        endpoint: Option<String>,
        /// The region (`us-east-1` unless given).
        region: String,
        /// Address the bucket as `endpoint/bucket` (MinIO, most self-hosted servers) rather
        /// than `bucket.endpoint` (default: path style with an endpoint, virtual host on AWS).
        path_style: bool,
    },
    /// A WebDAV server (Nextcloud, most NAS boxes).
    WebDav {
        /// `http(s)://host:port`.
        endpoint: String,
        /// The folder on the server.
        root: String,
        /// The user named in the URL (`webdav+https://user@host/…`), if any.
        user: Option<String>,
    },
}

fn bad_url(url: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::InvalidInput,
        format!("The destination address {url:?} {why}"),
        "Write it as file:///media/usb/schoolvault, s3://BUCKET/PREFIX?endpoint=https://…&region=…, or webdav+https://HOST/PATH",
    )
}

impl Location {
    /// What `url` points at.
    ///
    /// # Errors
    /// `InvalidInput` for an address SchoolVault cannot use, or one holding a password (it
    /// belongs in the keychain: `--secret-stdin`).
    pub fn parse(url: &str) -> Result<Location> {
        let url = url.trim();
        if url.starts_with('/') {
            return Ok(Location::Folder {
                path: PathBuf::from(url),
            });
        }
        let parsed =
            url::Url::parse(url).map_err(|e| bad_url(url, &format!("is not valid ({e})")))?;
        if parsed.password().is_some() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "The destination address holds a password",
                "Leave the password out of the address; give it with --secret-stdin (it is kept in the keychain)",
            )
            .in_app("Leave the password out of the address and type it in the password field (it is kept in the keychain)"));
        }
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|()| bad_url(url, "is not a folder on this computer"))?;
                Ok(Location::Folder { path })
            }
            "s3" => {
                let bucket = parsed
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad_url(url, "names no bucket"))?
                    .to_string();
                let prefix = parsed.path().trim_matches('/').to_string();
                let mut endpoint = None;
                let mut region = None;
                let mut path_style = None;
                for (k, v) in parsed.query_pairs() {
                    match &*k {
                        "endpoint" => endpoint = Some(v.trim_end_matches('/').to_string()),
                        "region" => region = Some(v.into_owned()),
                        "path_style" => {
                            path_style = Some(match &*v {
                                "true" | "1" | "yes" => true,
                                "false" | "0" | "no" => false,
                                _ => return Err(bad_url(url, "has path_style neither true nor false")),
                            })
                        }
                        other => {
                            return Err(bad_url(
                                url,
                                &format!("has {other:?}, which SchoolVault does not know (endpoint, region, path_style)"),
                            ))
                        }
                    }
                }
                if let Some(e) = &endpoint {
                    if !(e.starts_with("http://") || e.starts_with("https://")) {
                        return Err(bad_url(
                            url,
                            "has an endpoint that is not http:// or https://",
                        ));
                    }
                }
                Ok(Location::S3 {
                    bucket,
                    prefix,
                    path_style: path_style.unwrap_or(endpoint.is_some()),
                    endpoint,
                    region: region.unwrap_or_else(|| "us-east-1".into()),
                })
            }
            "webdav+http" | "webdav+https" | "webdav" | "webdavs" => {
                let scheme = if parsed.scheme().ends_with('s') {
                    "https"
                } else {
                    "http"
                };
                let host = parsed
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| bad_url(url, "names no server"))?;
                let endpoint = match parsed.port() {
                    Some(port) => format!("{scheme}://{host}:{port}"),
                    None => format!("{scheme}://{host}"),
                };
                let user = Some(parsed.username())
                    .filter(|u| !u.is_empty())
                    .map(percent_decode);
                Ok(Location::WebDav {
                    endpoint,
                    root: format!("/{}", parsed.path().trim_matches('/')),
                    user,
                })
            }
            other => Err(bad_url(
                url,
                &format!("uses {other}://, which SchoolVault cannot copy to"),
            )),
        }
    }

    /// A short word for the kind of place, for lists and messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::Folder { .. } => "folder",
            Location::S3 { .. } => "s3",
            Location::WebDav { .. } => "webdav",
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) if bytes[i] == b'%' => {
                out.push(b);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl DestinationSettings {
    /// The keychain account of this destination's secret.
    pub fn secret_account(&self) -> String {
        format!("{DESTINATION_SECRET_PREFIX}{}", self.name)
    }

    /// What its URL points at.
    ///
    /// # Errors
    /// As [`Location::parse`].
    pub fn location(&self) -> Result<Location> {
        Location::parse(&self.url)
    }

    /// A folder destination's folder, made when it is added, on a disk that is there (its
    /// parent exists): copies never create it, so an unplugged USB disk never turns into a
    /// folder on this computer's own disk. Other destinations: nothing to do.
    ///
    /// # Errors
    /// As [`Location::parse`]; I/O errors making the folder.
    pub fn make_folder(&self) -> Result<()> {
        if let Location::Folder { path } = self.location()? {
            if !path.is_dir() && path.parent().is_some_and(std::path::Path::is_dir) {
                std::fs::create_dir(&path).map_err(|e| {
                    Error::io(format_args!("creating the folder {}", path.display()), &e)
                })?;
            }
        }
        Ok(())
    }

    /// The rules a destination obeys: a usable name and URL, a retention that keeps something.
    ///
    /// # Errors
    /// `InvalidInput` naming the destination and what to do.
    pub fn validate(&self) -> Result<()> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 40
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("{:?} cannot name a destination", self.name),
                "Use up to 40 letters, digits, - or _ (e.g. NAS, cloud, usb-disk)",
            ));
        }
        let location = self.location()?;
        if let Location::Folder { path } = &location {
            if !path.is_absolute() {
                return Err(bad_url(&self.url, "is not an absolute folder"));
            }
        }
        if let Some(r) = &self.retention {
            r.policy().validate().map_err(|e| {
                Error::new(
                    ErrorKind::InvalidInput,
                    format!("Destination {}: {}", self.name, e.message()),
                    e.guidance().to_string(),
                )
            })?;
        }
        if self.bandwidth_kbps == Some(0) {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("Destination {} has a bandwidth limit of 0", self.name),
                "Give the limit in kilobytes per second (e.g. 2000), or none to go as fast as the line allows",
            ));
        }
        if let Some(days) = self.lock_days {
            if !matches!(location, Location::S3 { .. }) {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("Destination {} is not an S3 bucket, so it cannot lock copies", self.name),
                    "Object Lock is for S3 buckets made with it turned on; leave the lock out for folders and WebDAV",
                ));
            }
            if days == 0 || days > MAX_LOCK_DAYS {
                return Err(Error::new(
                    ErrorKind::InvalidInput,
                    format!("Destination {} would lock copies for {days} days", self.name),
                    format!("Give 1 to {MAX_LOCK_DAYS} days (a locked copy cannot be removed, nor its lock shortened, until then)"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_mean_what_the_readme_says() {
        assert_eq!(
            Location::parse("file:///media/usb/schoolvault").expect("file"),
            Location::Folder {
                path: PathBuf::from("/media/usb/schoolvault")
            }
        );
        assert_eq!(
            Location::parse("/mnt/nas").expect("path"),
            Location::Folder {
                path: PathBuf::from("/mnt/nas")
            }
        );
        assert_eq!(
            Location::parse(
                "s3://school-backups/erp/daily?endpoint=http://127.0.0.1:9000/&region=eu-west-1"
            )
            .expect("s3"),
            Location::S3 {
                bucket: "school-backups".into(),
                prefix: "erp/daily".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-1".into(),
                path_style: true,
            }
        );
        let Location::S3 {
            path_style,
            region,
            endpoint,
            ..
        } = Location::parse("s3://b").expect("aws")
        else {
            panic!("not s3")
        };
        assert!(!path_style && endpoint.is_none() && region == "us-east-1");
        assert_eq!(
            Location::parse("webdav+https://it%40school@nas.school.lan:8443/backups/")
                .expect("dav"),
            Location::WebDav {
                endpoint: "https://nas.school.lan:8443".into(),
                root: "/backups".into(),
                user: Some("it@school".into()),
            }
        );
        for bad in [
            "ftp://host/x",
            "s3:///nobucket",
            "s3://b?path_style=maybe",
            "s3://b?endpoint=127.0.0.1:9000",
            "s3://b?secret=x",
            "webdav+http://user:pw@host/x",
            "relative/folder",
        ] {
            let err = Location::parse(bad).expect_err(bad);
            assert_eq!(err.code(), "invalid_input", "{bad}");
            assert!(!err.to_string().contains("pw@"), "{err}");
        }
    }

    #[test]
    fn names_and_limits_are_checked() {
        let mut d = DestinationSettings {
            name: "NAS".into(),
            url: "/mnt/nas".into(),
            enabled: true,
            access_key_id: None,
            secret_saved: false,
            retention: None,
            bandwidth_kbps: None,
            lock_days: None,
        };
        d.validate().expect("fine");
        d.lock_days = Some(30);
        assert!(d.validate().is_err(), "a folder cannot lock");
        d.url = "s3://b".into();
        d.validate().expect("s3 locks");
        d.lock_days = Some(0);
        assert!(d.validate().is_err());
        d.lock_days = None;
        d.url = "/mnt/nas".into();
        assert_eq!(d.secret_account(), "destination-NAS");
        d.name = "my nas/../x".into();
        assert!(d.validate().is_err());
        d.name = "NAS".into();
        d.bandwidth_kbps = Some(0);
        assert!(d.validate().is_err());
        d.bandwidth_kbps = None;
        d.retention = Some(RetentionSettings {
            keep_days: 0,
            ..RetentionSettings::default()
        });
        assert!(d.validate().is_err());
    }
}
