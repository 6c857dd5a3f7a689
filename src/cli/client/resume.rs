//! The client's small resume records (`proto/client-v1.md` §1–2) and the retry schedule.
//!
//! * An **upload state** file, one per (local file, creation URL), says which tus upload
//!   the file is going to and what the file looked like when it started (size, mtime, and
//!   a fingerprint of its first and last 64 KiB). A file that changed since starts over as
//!   a new upload; one that did not resumes from the server's offset. It holds no file name
//!   (names can be PHI): its own name is a hash of the path and the URL.
//! * A **download sidecar** beside a `.part` file keeps the strong `ETag` and digest the
//!   server gave, so the next run can ask for the rest with `Range` + `If-Range`.
//!
//! Pure: values in, bytes or decisions out. The callers write the bytes atomically
//! (temporary file, mode 0600, fsync, rename) and read at most [`MAX_RECORD_BYTES`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest resume record read.
pub const MAX_RECORD_BYTES: u64 = 64 << 10;
/// How much of each end of a file goes into its fingerprint.
pub const FINGERPRINT_EDGE: u64 = 64 << 10;

/// Where an upload of one file stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadState {
    /// Format version, 1.
    pub v: u8,
    /// The creation URL the upload was made at.
    pub to: String,
    /// The upload's absolute URL.
    pub upload: String,
    /// The file's size when the upload began.
    pub size: u64,
    /// The file's modification time (ns since the epoch) when the upload began.
    pub mtime_ns: i64,
    /// [`fingerprint`] of the file when the upload began (hex).
    pub fingerprint: String,
}

/// What a `.part` file is a prefix of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartState {
    /// Format version, 1.
    pub v: u8,
    /// The strong `ETag` of the representation.
    pub etag: String,
    /// The representation's length.
    pub length: u64,
    /// Its SHA-256 from `Repr-Digest` (hex).
    pub sha256: String,
}

/// Why a record was not usable (the caller then starts afresh, and says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record of this format or version.
    #[error("the resume record is not a version 1 record of this client")]
    Format,
}

impl UploadState {
    /// Encodes for the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Decodes a record; another version or shape is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let s: Self = serde_json::from_slice(bytes).map_err(|_| RecordError::Format)?;
        (s.v == 1 && is_hex64(&s.fingerprint))
            .then_some(s)
            .ok_or(RecordError::Format)
    }

    /// Whether the file still is what the upload began with.
    pub fn same_file(&self, to: &str, size: u64, mtime_ns: i64, fingerprint: &str) -> bool {
        self.to == to
            && self.size == size
            && self.mtime_ns == mtime_ns
            && self.fingerprint == fingerprint
    }
}

impl PartState {
    /// Encodes for the file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    /// Decodes a record; another version or shape is refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let s: Self = serde_json::from_slice(bytes).map_err(|_| RecordError::Format)?;
        (s.v == 1 && is_hex64(&s.sha256) && s.etag.starts_with('"'))
            .then_some(s)
            .ok_or(RecordError::Format)
    }
}

/// The upload state file's name for a file (its absolute path) and a creation URL:
/// 32 hex digits, so the name says nothing about the file.
pub fn upload_state_name(abs_path: &[u8], to: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"sallyport-client/upload-state/v1\0");
    h.update((abs_path.len() as u64).to_be_bytes());
    h.update(abs_path);
    h.update(to.as_bytes());
    let d = h.finalize();
    format!("{}.json", hex::encode(&d[..16]))
}

/// The fingerprint of a file of `size` bytes whose first and last
/// `min(size, FINGERPRINT_EDGE)` bytes are `head` and `tail`.
pub fn fingerprint(size: u64, head: &[u8], tail: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"sallyport-client/fingerprint/v1\0");
    h.update(size.to_be_bytes());
    h.update((head.len() as u64).to_be_bytes());
    h.update(head);
    h.update((tail.len() as u64).to_be_bytes());
    h.update(tail);
    hex::encode(h.finalize())
}

/// The wait before retry number `attempt` (0-based): 250 ms doubling to at most 8 s, or
/// the server's `Retry-After` when it asks for longer (capped at 60 s).
pub fn backoff(attempt: u32, retry_after_secs: Option<u64>) -> std::time::Duration {
    let ours = 250u64.saturating_mul(1u64 << attempt.min(5)).min(8_000);
    let theirs = retry_after_secs.map_or(0, |s| s.min(60).saturating_mul(1000));
    std::time::Duration::from_millis(ours.max(theirs))
}

/// The next chunk to send: `(offset, length)`, or `None` when the upload is complete.
pub fn next_chunk(offset: u64, size: u64, chunk_size: u64) -> Option<(u64, u64)> {
    (offset < size).then(|| (offset, chunk_size.max(1).min(size - offset)))
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> UploadState {
        UploadState {
            v: 1,
            to: "https://gw.example/files/".into(),
            upload: "https://gw.example/files/0123456789abcdefghjkmnpqrs".into(),
            size: 10,
            mtime_ns: 1_700_000_000_000_000_000,
            fingerprint: fingerprint(10, b"0123456789", b"0123456789"),
        }
    }

    /// The golden vector in proto/vectors/client-v1/ decodes to the documented values.
    #[test]
    fn golden_vectors() {
        let up = include_bytes!("../../../proto/vectors/client-v1/upload-state.json");
        let s = UploadState::from_bytes(up).unwrap();
        assert_eq!(s, state());
        assert_eq!(s.to_bytes(), up.to_vec());
        let part = include_bytes!("../../../proto/vectors/client-v1/part-state.json");
        let p = PartState::from_bytes(part).unwrap();
        assert_eq!(p.length, 103_634);
        assert_eq!(p.to_bytes(), part.to_vec());
        assert_eq!(
            upload_state_name(b"/data/referral.pdf", "https://gw.example/files/"),
            include_str!("../../../proto/vectors/client-v1/upload-state-name.txt").trim()
        );
    }

    #[test]
    fn records_refuse_other_shapes() {
        let good = state().to_bytes();
        assert!(UploadState::from_bytes(&good).is_ok());
        let text = String::from_utf8(good).unwrap();
        for bad in [
            text.replace("\"v\":1", "\"v\":2"),
            text.replace("\"size\"", "\"extra\":1,\"size\""),
            text.replace("\"fingerprint\":\"", "\"fingerprint\":\"x"),
            text[..text.len() / 2].to_owned(),
            String::new(),
        ] {
            assert_eq!(
                UploadState::from_bytes(bad.as_bytes()),
                Err(RecordError::Format)
            );
        }
        assert!(
            PartState::from_bytes(b"{\"v\":1,\"etag\":\"W/x\",\"length\":1,\"sha256\":\"\"}")
                .is_err()
        );
    }

    #[test]
    fn same_file_compares_every_fact() {
        let s = state();
        let f = s.fingerprint.clone();
        assert!(s.same_file(&s.to, 10, s.mtime_ns, &f));
        assert!(!s.same_file("https://other/files/", 10, s.mtime_ns, &f));
        assert!(!s.same_file(&s.to, 11, s.mtime_ns, &f));
        assert!(!s.same_file(&s.to, 10, s.mtime_ns + 1, &f));
        assert!(!s.same_file(&s.to, 10, s.mtime_ns, &fingerprint(10, b"x", b"y")));
    }

    #[test]
    fn state_names_differ_by_path_and_url() {
        let a = upload_state_name(b"/a", "https://g/files/");
        assert_eq!(a.len(), 37);
        assert_ne!(a, upload_state_name(b"/b", "https://g/files/"));
        assert_ne!(a, upload_state_name(b"/a", "https://h/files/"));
        // Length-prefixed: moving bytes between path and URL changes the name.
        assert_ne!(
            upload_state_name(b"/ab", "c"),
            upload_state_name(b"/a", "bc")
        );
    }

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        assert_eq!(backoff(0, None).as_millis(), 250);
        assert_eq!(backoff(1, None).as_millis(), 500);
        assert_eq!(backoff(10, None).as_millis(), 8000);
        assert_eq!(backoff(0, Some(3)).as_millis(), 3000);
        assert_eq!(backoff(0, Some(100_000)).as_millis(), 60_000);
    }

    proptest! {
        /// Chunks tile the file exactly: contiguous, none empty, none over the chunk size.
        #[test]
        fn chunks_tile_the_file(size in 0u64..10_000, chunk in 0u64..3000) {
            let mut at = 0;
            let mut n = 0;
            while let Some((off, len)) = next_chunk(at, size, chunk) {
                prop_assert_eq!(off, at);
                prop_assert!(len >= 1 && len <= chunk.max(1));
                at += len;
                n += 1;
                prop_assert!(n <= size);
            }
            prop_assert_eq!(at, size);
        }

        /// Any state round-trips through its bytes.
        #[test]
        fn upload_state_round_trips(size in any::<u64>(), mtime in any::<i64>(), url in "https://[a-z]{1,10}/files/[a-z0-9]{0,26}") {
            let s = UploadState { v: 1, to: "https://g/files/".into(), upload: url, size, mtime_ns: mtime, fingerprint: "0".repeat(64) };
            prop_assert_eq!(UploadState::from_bytes(&s.to_bytes()).unwrap(), s);
        }
    }
}
