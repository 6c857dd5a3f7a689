//! The documents the Bulk Data flow answers with (`proto/bulk-v1.md` §4–5): the
//! complete-status manifest and the `OperationOutcome` of an error. Pure: typed values in,
//! JSON out; the service supplies the absolute file URLs.
//!
//! Each `output[]` entry carries its file's SHA-256 and size as FHIR extensions, under the
//! URLs `sallyport client download --manifest` reads (`proto/client-v1.md` §3), and the
//! manifest carries one top-level extension naming the batch and the SHA-256 of its
//! manifest and provenance record, so a partner can tie the files to their provenance.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The extension carrying a file's SHA-256 (`valueString`, 64 lowercase hex digits).
pub const SHA256_EXTENSION: &str = "https://sallyport.dev/fhir/StructureDefinition/file-sha256";
/// The extension carrying a file's size in bytes: `valueInteger` (a JSON number) up to
/// 2^31 − 1, which is all FHIR's 32-bit `integer` holds, and `valueInteger64` (FHIR R5
/// `integer64`, a JSON string of decimal digits) from 2 GiB up ([`size_extension`]).
pub const SIZE_EXTENSION: &str = "https://sallyport.dev/fhir/StructureDefinition/file-size";
/// The manifest-level extension naming the batch and its documents' digests.
pub const BATCH_EXTENSION: &str = "https://sallyport.dev/fhir/StructureDefinition/batch-provenance";

/// One file of a complete export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The FHIR resource type of every line.
    pub resource_type: String,
    /// The absolute download URL (a signed link: a credential).
    pub url: String,
    /// The number of resources (lines).
    pub count: u64,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// What a complete-status manifest says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Complete {
    /// When the data was fixed (Unix seconds): the batch's release.
    pub transaction_time: u64,
    /// The kick-off request URL.
    pub request: String,
    /// `requiresAccessToken`: the file URLs need the client's access token (else they
    /// are signed links).
    pub requires_access_token: bool,
    /// The files.
    pub files: Vec<OutputFile>,
    /// The batch delivered.
    pub batch: String,
    /// SHA-256 of the batch manifest.
    pub manifest_sha256: String,
    /// SHA-256 of the provenance record, when the batch has one.
    pub provenance_sha256: Option<String>,
}

/// A file's size extension. FHIR's `integer` is 32-bit, so a size of 2 GiB or more (an
/// NDJSON export file often is) cannot be a `valueInteger`: it is an `integer64`, which
/// FHIR JSON writes as a string so that no reader rounds it.
pub fn size_extension(size: u64) -> Value {
    match i32::try_from(size) {
        Ok(small) => json!({"url": SIZE_EXTENSION, "valueInteger": small}),
        Err(_) => json!({"url": SIZE_EXTENSION, "valueInteger64": size.to_string()}),
    }
}

/// The complete-status manifest.
pub fn complete(c: &Complete) -> Value {
    let output: Vec<Value> = c
        .files
        .iter()
        .map(|f| {
            json!({
                "type": f.resource_type,
                "url": f.url,
                "count": f.count,
                "extension": [
                    {"url": SHA256_EXTENSION, "valueString": f.sha256},
                    size_extension(f.size),
                ],
            })
        })
        .collect();
    let mut batch = vec![
        json!({"url": "batch", "valueString": c.batch}),
        json!({"url": "manifest-sha256", "valueString": c.manifest_sha256}),
    ];
    if let Some(p) = &c.provenance_sha256 {
        batch.push(json!({"url": "provenance-sha256", "valueString": p}));
    }
    json!({
        "transactionTime": instant(c.transaction_time),
        "request": c.request,
        "requiresAccessToken": c.requires_access_token,
        "output": output,
        "error": [],
        "extension": [{"url": BATCH_EXTENSION, "extension": batch}],
    })
}

/// An `OperationOutcome` with one error issue: `issue_type` is the FHIR issue type code
/// (`invalid`, `not-supported`, `forbidden`, `not-found`, `throttled`, `processing`,
/// `exception`…), `code` the gateway's stable problem code, `text` its static title.
pub fn operation_outcome(issue_type: &str, code: &str, text: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{
            "severity": "error",
            "code": issue_type,
            "details": {
                "coding": [{"system": "urn:sallyport:problem", "code": code}],
                "text": text,
            },
            "diagnostics": code,
        }],
    })
}

/// A FHIR `instant` (RFC 3339, UTC, seconds).
pub fn instant(unix: u64) -> String {
    OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(0))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Complete {
        Complete {
            transaction_time: 1_800_000_000,
            request: "https://gw.example/fhir/$export?_type=Patient".into(),
            requires_access_token: false,
            files: vec![OutputFile {
                resource_type: "Patient".into(),
                url: "https://gw.example/d/x?s=1".into(),
                count: 3,
                sha256: "ab".repeat(32),
                size: 120,
            }],
            batch: "b".into(),
            manifest_sha256: "cd".repeat(32),
            provenance_sha256: Some("ef".repeat(32)),
        }
    }

    #[test]
    fn a_size_of_two_gib_or_more_is_an_integer64_string() {
        let v = |size: u64| size_extension(size);
        assert_eq!(v(0), json!({"url": SIZE_EXTENSION, "valueInteger": 0}));
        assert_eq!(
            v(2_147_483_647),
            json!({"url": SIZE_EXTENSION, "valueInteger": 2_147_483_647})
        );
        assert_eq!(
            v(2_147_483_648),
            json!({"url": SIZE_EXTENSION, "valueInteger64": "2147483648"})
        );
        assert_eq!(
            v(u64::MAX),
            json!({"url": SIZE_EXTENSION, "valueInteger64": "18446744073709551615"})
        );
        let big = complete(&Complete {
            files: vec![OutputFile {
                size: 5 << 30,
                ..sample().files.remove(0)
            }],
            ..sample()
        });
        assert_eq!(
            big["output"][0]["extension"][1]["valueInteger64"],
            "5368709120"
        );
        assert!(
            big["output"][0]["extension"][1]
                .get("valueInteger")
                .is_none()
        );
    }

    #[test]
    fn the_complete_manifest_has_the_ig_fields_and_our_extensions() {
        let m = complete(&sample());
        assert_eq!(m["transactionTime"], "2027-01-15T08:00:00Z");
        assert_eq!(m["requiresAccessToken"], false);
        assert_eq!(m["error"], json!([]));
        let o = &m["output"][0];
        assert_eq!(o["type"], "Patient");
        assert_eq!(o["count"], 3);
        assert_eq!(o["extension"][0]["url"], SHA256_EXTENSION);
        assert_eq!(o["extension"][1]["valueInteger"], 120);
        assert_eq!(
            m["extension"][0]["extension"][2]["valueString"],
            "ef".repeat(32)
        );
        let none = complete(&Complete {
            provenance_sha256: None,
            ..sample()
        });
        assert_eq!(
            none["extension"][0]["extension"].as_array().unwrap().len(),
            2
        );
    }

    #[test]
    fn the_golden_vector_matches() {
        let text = include_str!("../../proto/vectors/bulk-v1/complete-manifest.json");
        let golden: Value = serde_json::from_str(text).unwrap();
        assert_eq!(complete(&sample()), golden);
    }

    #[test]
    fn outcomes() {
        let o = operation_outcome("not-supported", "bulk.output_format", "no");
        assert_eq!(o["resourceType"], "OperationOutcome");
        assert_eq!(o["issue"][0]["severity"], "error");
        assert_eq!(o["issue"][0]["code"], "not-supported");
        assert_eq!(
            o["issue"][0]["details"]["coding"][0]["code"],
            "bulk.output_format"
        );
    }
}
