//! `[blob]`: which blob store, validated into [`BlobSettings`]. The S3 keys are checked
//! here one by one, each refusal naming its key; the credentials file is read here (as
//! other secret files are, at load time).

use std::path::{Path, PathBuf};

use super::raw::RawBlob;
use super::{BlobSettings, ByteSize, ConfigError, invalid};
use crate::blob::s3::settings::{
    DEFAULT_PIECE_SIZE, MAX_PIECE_SIZE, MIN_PIECE_SIZE, S3Credentials, S3Keys, S3Settings,
};

/// Keys only the S3 backend reads, for the "set but backend is local" refusal.
const S3_ONLY: &[&str] = &[
    "endpoint",
    "region",
    "bucket",
    "prefix",
    "path_style",
    "credentials_file",
    "ca_file",
    "piece_size",
    "allow_unconditional_create",
];

/// Validates `[blob]`.
pub(super) fn blob_settings(
    raw: &RawBlob,
    data_dir: &Path,
    allow_open: bool,
) -> Result<BlobSettings, ConfigError> {
    refuse_inline_keys(raw)?;
    match raw.backend.as_deref().unwrap_or("local") {
        "local" => {
            if let Some(key) = s3_keys_set(raw).first() {
                return Err(invalid(
                    &format!("blob.{key}"),
                    "is an S3 setting but blob.backend is \"local\"",
                ));
            }
            Ok(BlobSettings::Local {
                path: raw
                    .path
                    .as_deref()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| data_dir.join("blobs")),
            })
        }
        "s3" => {
            if raw.path.is_some() {
                return Err(invalid(
                    "blob.path",
                    "is a local-directory setting but blob.backend is \"s3\"",
                ));
            }
            Ok(BlobSettings::S3(Box::new(s3_settings(raw, allow_open)?)))
        }
        other => Err(invalid(
            "blob.backend",
            format!("unknown backend {other:?} (supported: \"local\", \"s3\")"),
        )),
    }
}

fn refuse_inline_keys(raw: &RawBlob) -> Result<(), ConfigError> {
    for (key, set) in [
        ("access_key", raw.access_key.is_some()),
        ("secret_key", raw.secret_key.is_some()),
        ("access_key_id", raw.access_key_id.is_some()),
        ("secret_access_key", raw.secret_access_key.is_some()),
        ("session_token", raw.session_token.is_some()),
    ] {
        if set {
            return Err(invalid(
                &format!("blob.{key}"),
                "S3 keys are never written in the configuration (it is readable by more than \
                 the gateway, and gets copied into tickets and backups): put them in a \
                 0600 file named by blob.credentials_file, or in AWS_ACCESS_KEY_ID / \
                 AWS_SECRET_ACCESS_KEY",
            ));
        }
    }
    Ok(())
}

fn s3_keys_set(raw: &RawBlob) -> Vec<&'static str> {
    let set = [
        raw.endpoint.is_some(),
        raw.region.is_some(),
        raw.bucket.is_some(),
        raw.prefix.is_some(),
        raw.path_style.is_some(),
        raw.credentials_file.is_some(),
        raw.ca_file.is_some(),
        raw.piece_size.is_some(),
        raw.allow_unconditional_create.is_some(),
    ];
    S3_ONLY
        .iter()
        .zip(set)
        .filter(|(_, s)| *s)
        .map(|(k, _)| *k)
        .collect()
}

fn s3_settings(raw: &RawBlob, allow_open: bool) -> Result<S3Settings, ConfigError> {
    let (endpoint, allow_http, aws) = match raw.endpoint.as_deref() {
        None => (None, false, true),
        Some(url) => {
            let (http, host) = endpoint(url)?;
            (
                Some(url.trim_end_matches('/').to_owned()),
                http,
                host.ends_with(".amazonaws.com"),
            )
        }
    };
    let region = raw.region.clone().unwrap_or_else(|| "us-east-1".to_owned());
    if region.is_empty()
        || region.len() > 64
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(invalid(
            "blob.region",
            "must be 1-64 lowercase letters, digits and '-' (example: eu-central-1)",
        ));
    }
    let bucket = raw
        .bucket
        .clone()
        .ok_or_else(|| invalid("blob.bucket", "is required when blob.backend is \"s3\""))?;
    check_bucket(&bucket)?;
    let prefix = prefix(raw.prefix.as_deref().unwrap_or(""))?;
    let credentials = match raw.credentials_file.as_deref() {
        None => S3Credentials::Environment,
        Some("") => return Err(invalid("blob.credentials_file", "must not be empty")),
        Some(file) => S3Credentials::Keys(
            S3Keys::from_file(Path::new(file), allow_open)
                .map_err(|e| invalid("blob.credentials_file", e.to_string()))?,
        ),
    };
    let ca_file = match raw.ca_file.as_deref() {
        None => None,
        Some("") => return Err(invalid("blob.ca_file", "must not be empty")),
        Some(_) if allow_http => {
            return Err(invalid(
                "blob.ca_file",
                "is set but blob.endpoint is http:// (there is no TLS to trust it for)",
            ));
        }
        Some(file) => Some(PathBuf::from(file)),
    };
    let piece_size = match raw.piece_size.as_deref() {
        None => DEFAULT_PIECE_SIZE,
        Some(v) => {
            let size: ByteSize = v
                .parse()
                .map_err(|m: String| invalid("blob.piece_size", m))?;
            if !(MIN_PIECE_SIZE..=MAX_PIECE_SIZE).contains(&size) {
                return Err(invalid(
                    "blob.piece_size",
                    format!("{size} is not from {MIN_PIECE_SIZE} to {MAX_PIECE_SIZE}"),
                ));
            }
            size
        }
    };
    Ok(S3Settings {
        endpoint,
        allow_http,
        region,
        bucket,
        prefix,
        // AWS serves virtual-hosted buckets; most other S3 servers expect path style.
        path_style: raw.path_style.unwrap_or(!aws),
        credentials,
        ca_file,
        piece_size,
        allow_unconditional_create: raw.allow_unconditional_create.unwrap_or(false),
    })
}

/// Checks `blob.endpoint`: an `https://` URL, or `http://` to a loopback host only (the
/// store's requests are signed, not encrypted: on any real network they need TLS).
/// Returns (is http, host).
fn endpoint(url: &str) -> Result<(bool, String), ConfigError> {
    let key = "blob.endpoint";
    let uri: http::Uri = url
        .parse()
        .map_err(|_| invalid(key, "is not a URL (example: https://s3.example.org)"))?;
    let http = match uri.scheme_str() {
        Some("https") => false,
        Some("http") => true,
        _ => {
            return Err(invalid(
                key,
                "must start with https:// (or http:// to a loopback address)",
            ));
        }
    };
    if uri.query().is_some() || !matches!(uri.path(), "" | "/") {
        return Err(invalid(
            key,
            "must be scheme://host[:port] with no path or query",
        ));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(invalid(
            key,
            "must not contain user information (credentials come from blob.credentials_file)",
        ));
    }
    let host = uri
        .host()
        .ok_or_else(|| invalid(key, "has no host"))?
        .to_ascii_lowercase();
    if http && !is_loopback(&host) {
        return Err(invalid(
            key,
            "http:// is allowed only to a loopback address (127.0.0.1, [::1], localhost); use https://",
        ));
    }
    Ok((http, host))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `audit.checkpoint_bucket`: unset, the blob bucket when the blob store is S3 (else none);
/// `"off"`, none; a bucket name, that bucket on the blob store's endpoint (S3 only).
pub(super) fn checkpoint_bucket(
    raw: Option<&str>,
    blob: &BlobSettings,
) -> Result<Option<String>, ConfigError> {
    const KEY: &str = "audit.checkpoint_bucket";
    match (raw, blob) {
        (Some("off"), _) => Ok(None),
        (None, BlobSettings::S3(s3)) => Ok(Some(s3.bucket.clone())),
        (None, BlobSettings::Local { .. }) => Ok(None),
        (Some(_), BlobSettings::Local { .. }) => Err(invalid(
            KEY,
            "needs blob.backend = \"s3\": the bucket is reached with the [blob] endpoint and keys (use audit.checkpoint_dir on local disk)",
        )),
        (Some(name), BlobSettings::S3(_)) => {
            check_bucket_named(KEY, name)?;
            Ok(Some(name.to_owned()))
        }
    }
}

/// S3's bucket naming rules: 3-63 of lowercase letters, digits, '.' and '-', starting and
/// ending with a letter or digit.
fn check_bucket(bucket: &str) -> Result<(), ConfigError> {
    check_bucket_named("blob.bucket", bucket)
}

fn check_bucket_named(key: &str, bucket: &str) -> Result<(), ConfigError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
        && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(invalid(
            key,
            "must be 3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit",
        ))
    }
}

/// Validates `blob.prefix` and returns it ending with `/` (or empty): segments of S3's
/// safe characters that the S3 client leaves as they are (letters, digits and `!-_.'()`), none empty, `.` or `..`, no leading
/// `/`. Other printable characters are refused because the S3 client would
/// percent-encode them, so the keys in the bucket would not start with what is written
/// here.
fn prefix(raw: &str) -> Result<String, ConfigError> {
    let key = "blob.prefix";
    if raw.is_empty() {
        return Ok(String::new());
    }
    if raw.len() > 512 {
        return Err(invalid(key, "must be at most 512 characters"));
    }
    if raw.starts_with('/') {
        return Err(invalid(
            key,
            "must not start with '/' (keys are relative to the bucket)",
        ));
    }
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    for segment in trimmed.split('/') {
        match segment {
            "" => return Err(invalid(key, "must not contain an empty segment (\"//\")")),
            "." | ".." => return Err(invalid(key, "must not contain a \".\" or \"..\" segment")),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!-_.'()".contains(&b))
        {
            return Err(invalid(
                key,
                "may contain only ASCII letters, digits, '/' and !-_.'() (other characters would be percent-encoded in the keys)",
            ));
        }
    }
    Ok(format!("{trimmed}/"))
}
