//! S3 Object Lock: copies kept immutable for a number of days (compliance mode: nobody, not
//! even someone holding the destination's credentials or the account's owner, can delete or
//! overwrite them before then), so ransomware that finds the keys cannot destroy the offsite
//! copies; and the check, when a destination is tested, that its bucket has Object Lock at all.
//!
//! OpenDAL does not speak these two S3 calls (`PutObjectRetention`, `GetObjectLockConfiguration`),
//! so they are signed here with SigV4 (reqsign, which OpenDAL's S3 service signs with too) and
//! sent through OpenDAL's HTTP client (the same TLS set-up as every other request).

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use reqsign_core::SignRequest;
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// Where a bucket is and how to sign for it, and how long copies stay locked.
pub(crate) struct ObjectLock {
    destination: String,
    days: u32,
    /// `scheme://host[:port][/bucket]`: the bucket's address (path style or virtual host).
    bucket_url: String,
    /// The folder inside the bucket, with a trailing `/` (or empty).
    prefix: String,
    region: String,
    credential: reqsign_aws_v4::Credential,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectLock")
            .field("days", &self.days)
            .field("bucket_url", &self.bucket_url)
            .finish_non_exhaustive()
    }
}

/// Percent-encode one path segment as S3 (and SigV4) expect: everything but `A-Za-z0-9-._~`.
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The text of `<tag>…</tag>` in an S3 XML answer.
fn xml_value<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim())
}

/// Where the bucket answers: `endpoint/bucket` (path style), `scheme://bucket.host` (virtual
/// host), or AWS's own address for the region.
pub(crate) fn bucket_url(
    bucket: &str,
    endpoint: Option<&str>,
    region: &str,
    path_style: bool,
) -> String {
    let endpoint = endpoint
        .map(str::to_string)
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    if path_style {
        return format!("{endpoint}/{}", encode_segment(bucket));
    }
    match endpoint.split_once("://") {
        Some((scheme, host)) => format!("{scheme}://{bucket}.{host}"),
        None => format!("{endpoint}/{}", encode_segment(bucket)),
    }
}

impl ObjectLock {
    pub(crate) fn new(
        destination: &str,
        days: u32,
        bucket_url: String,
        prefix: &str,
        region: &str,
        access_key_id: &str,
        secret: &str,
    ) -> ObjectLock {
        let prefix = prefix.trim_matches('/');
        ObjectLock {
            destination: destination.to_string(),
            days,
            bucket_url,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            region: region.to_string(),
            credential: reqsign_aws_v4::Credential {
                access_key_id: access_key_id.to_string(),
                secret_access_key: secret.to_string(),
                session_token: None,
                expires_in: None,
            },
        }
    }

    /// The lock's length in days.
    pub(crate) fn days(&self) -> u32 {
        self.days
    }

    /// The address of object `name` (under the prefix), with `query`.
    fn object_url(&self, name: &str, query: &str) -> String {
        let key = format!("{}{name}", self.prefix);
        let path: Vec<String> = key.split('/').map(encode_segment).collect();
        format!("{}/{}?{query}", self.bucket_url, path.join("/"))
    }

    /// Sign and send one request; the status and body of the answer.
    async fn send(&self, method: http::Method, url: &str, body: Vec<u8>) -> Result<(u16, String)> {
        let unreachable = |why: String| {
            Error::new(
                ErrorKind::DestinationUnreachable,
                format!("Destination {} cannot be reached ({why})", self.destination),
                "Check the network and that the server is up; the copy is tried again at the next sync",
            )
        };
        let mut builder = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-amz-content-sha256", hex::encode(Sha256::digest(&body)));
        if !body.is_empty() {
            use base64::Engine as _;
            let md5 = base64::engine::general_purpose::STANDARD
                .encode(<md5::Md5 as md5::Digest>::digest(&body));
            builder = builder
                .header("content-md5", md5)
                .header("content-type", "application/xml")
                .header("content-length", body.len().to_string());
        }
        let request = builder
            .body(opendal::Buffer::from(Bytes::from(body)))
            .map_err(|e| unreachable(format!("bad request address: {e}")))?;
        let (mut parts, body) = request.into_parts();
        reqsign_aws_v4::RequestSigner::new("s3", &self.region)
            .sign_request(
                &reqsign_core::Context::new(),
                &mut parts,
                Some(&self.credential),
                None,
            )
            .await
            .map_err(|e| unreachable(format!("signing: {e}")))?;
        let response = opendal::HttpTransporter::default()
            .send(http::Request::from_parts(parts, body))
            .await
            .map_err(|e| unreachable(e.to_string().lines().next().unwrap_or("").to_string()))?;
        let status = response.status().as_u16();
        let text = String::from_utf8_lossy(&response.into_body().to_vec()).into_owned();
        Ok((status, text))
    }

    /// An S3 error answer as the one line a person reads.
    fn refused(&self, doing: &str, status: u16, body: &str) -> Error {
        let code = xml_value(body, "Code").unwrap_or("");
        let message = xml_value(body, "Message").unwrap_or("");
        let name = &self.destination;
        if code.starts_with("ObjectLockConfigurationNotFound")
            || (code == "InvalidRequest" && message.contains("Object Lock"))
            || code == "NotImplemented"
            || status == 501
        {
            return Error::new(
                ErrorKind::InvalidInput,
                format!("Destination {name}: its bucket has no Object Lock, so copies cannot be kept immutable"),
                "Use a bucket made with Object Lock turned on, or set the destination's lock to none",
            );
        }
        match code {
            "RequestTimeTooSkewed" => {
                return Error::new(
                    ErrorKind::DestinationAuth,
                    format!("Destination {name} refused {doing}: this computer's clock is wrong"),
                    "Set the computer's date and time (automatic time), then try again",
                )
            }
            "SignatureDoesNotMatch" | "InvalidAccessKeyId" => {
                return Error::new(
                    ErrorKind::DestinationAuth,
                    format!("Destination {name} refused the access key ({doing})"),
                    "Check the access key and secret in the destination's settings",
                )
            }
            _ => {}
        }
        if status == 403 {
            return Error::new(
                ErrorKind::DestinationAuth,
                format!("Destination {name} refused {doing}: permission denied ({code}: {message})"),
                "Give the access key the s3:PutObjectRetention and s3:GetBucketObjectLockConfiguration permissions; a lock already longer than the destination's (a bucket default) cannot be shortened: set the destination's lock to at least the bucket's",
            );
        }
        Error::new(
            ErrorKind::DestinationUnreachable,
            format!("Destination {name} refused {doing} (HTTP {status} {code}: {message})"),
            "Check the destination's settings; the copy is tried again at the next sync",
        )
    }

    /// Check that the bucket has Object Lock turned on.
    ///
    /// # Errors
    /// `InvalidInput` when it has not; the destination errors.
    pub(crate) async fn check_bucket(&self) -> Result<()> {
        let url = format!("{}/?object-lock", self.bucket_url);
        let (status, body) = self.send(http::Method::GET, &url, Vec::new()).await?;
        if status == 200 && xml_value(&body, "ObjectLockEnabled") == Some("Enabled") {
            return Ok(());
        }
        if status == 200 {
            return Err(self.refused("", 404, "<Code>ObjectLockConfigurationNotFound</Code>"));
        }
        Err(self.refused("reading the bucket's Object Lock settings", status, &body))
    }

    /// Lock object `name` until `days` from `now`; the date it is locked until.
    ///
    /// # Errors
    /// As [`ObjectLock::check_bucket`].
    pub(crate) async fn retain(&self, name: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let until = now + Duration::days(i64::from(self.days));
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>COMPLIANCE</Mode><RetainUntilDate>{}</RetainUntilDate></Retention>",
            until.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let url = self.object_url(name, "retention");
        let (status, text) = self
            .send(http::Method::PUT, &url, body.into_bytes())
            .await?;
        if (200..300).contains(&status) {
            return Ok(until);
        }
        Err(self.refused(&format!("locking {name}"), status, &text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_bucket_style() {
        assert_eq!(
            bucket_url("b", Some("http://127.0.0.1:9000"), "us-east-1", true),
            "http://127.0.0.1:9000/b"
        );
        assert_eq!(
            bucket_url("b", None, "eu-west-1", false),
            "https://b.s3.eu-west-1.amazonaws.com"
        );
        let lock = ObjectLock::new("c", 7, "http://h/b".into(), "/school/erp/", "r", "id", "s");
        assert_eq!(
            lock.object_url("x y+1.svb", "retention"),
            "http://h/b/school/erp/x%20y%2B1.svb?retention"
        );
        assert!(!format!("{lock:?}").contains("\"s\""));
        assert_eq!(
            xml_value("<a><Code>NoSuch</Code></a>", "Code"),
            Some("NoSuch")
        );
    }
}
