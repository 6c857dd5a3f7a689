//! The shape of a download response, planned before any byte is read: whole or partial,
//! its content type and length, the `Content-Range` of a single range, the
//! `multipart/byteranges` framing of several, and the list of body [`Piece`]s.
//!
//! Not here: range parsing and planning (the pure [`crate::range`]), header names (the
//! download handler).

use bytes::Bytes;

use super::body::Piece;
use crate::artifact::ArtifactRecord;
use crate::range::{Boundary, MultipartError, MultipartLayout, RangePlan, content_range};

/// Why a response could not be laid out. Only a record no header can carry causes it.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    /// The artifact's entity tag is not a valid strong tag.
    #[error("the artifact's entity tag is not valid")]
    EntityTag,
    /// The multipart layout was refused (a content type no part header can carry).
    #[error(transparent)]
    Multipart(#[from] MultipartError),
}

/// The response's shape: whole or partial, headers-to-be, body pieces, artifact bytes.
#[derive(Debug, Clone)]
pub struct Shape {
    partial: bool,
    /// The `Content-Type` (the artifact's, or `multipart/byteranges; boundary=…`).
    pub content_type: String,
    /// The body's length in bytes, framing included.
    pub content_length: u64,
    /// `Content-Range` of a single-range response.
    pub content_range: Option<String>,
    /// The ranges as `first-last`, in the order sent (empty for the whole file).
    pub ranges: Vec<String>,
    /// The body, piece by piece.
    pub pieces: Vec<Piece>,
    /// Artifact bytes in the body (what the meter charges).
    pub data_bytes: u64,
}

impl Shape {
    /// The shape for `plan` of `record`. An unsatisfiable plan is answered before this is
    /// called; it would be laid out as the whole file.
    pub fn of(plan: &RangePlan, record: &ArtifactRecord) -> Result<Self, ShapeError> {
        let len = record.length;
        let ty = record.content_type.as_str().to_owned();
        Ok(match plan {
            RangePlan::Full | RangePlan::Unsatisfiable(_) => Shape {
                partial: false,
                content_type: ty,
                content_length: len,
                content_range: None,
                ranges: Vec::new(),
                pieces: if len == 0 {
                    Vec::new()
                } else {
                    vec![Piece::Range { offset: 0, len }]
                },
                data_bytes: len,
            },
            RangePlan::Single(r) => Shape {
                partial: true,
                content_type: ty,
                content_length: r.len(),
                content_range: Some(content_range(*r, len)),
                ranges: vec![format!("{}-{}", r.first(), r.last())],
                pieces: vec![Piece::Range {
                    offset: r.first(),
                    len: r.len(),
                }],
                data_bytes: r.len(),
            },
            RangePlan::Multi(ranges) => {
                let layout = MultipartLayout::new(Boundary::random(), &ty, ranges, len)?;
                let mut pieces = Vec::with_capacity(ranges.len() * 2 + 1);
                for (head, r) in layout.parts() {
                    pieces.push(Piece::Framing(Bytes::from(head)));
                    pieces.push(Piece::Range {
                        offset: r.first(),
                        len: r.len(),
                    });
                }
                pieces.push(Piece::Framing(Bytes::from(layout.trailer())));
                Shape {
                    partial: true,
                    content_type: layout.content_type(),
                    content_length: layout.body_len(),
                    content_range: None,
                    ranges: ranges
                        .iter()
                        .map(|r| format!("{}-{}", r.first(), r.last()))
                        .collect(),
                    pieces,
                    data_bytes: ranges.iter().map(|r| r.len()).sum(),
                }
            }
        })
    }

    /// Whether the response is partial (206) rather than the whole file (200).
    pub fn is_partial(&self) -> bool {
        self.partial
    }

    /// The status a GET gets (HEAD reports the same).
    pub fn status(&self) -> u16 {
        if self.partial { 206 } else { 200 }
    }
}
