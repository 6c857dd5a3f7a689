//! Object keys of the S3 blob store and what a listing of them means; no I/O.
//!
//! A blob is a set of immutable *piece* objects
//! `{prefix}blobs/{blob name}/g{generation:020}/{start:020}`, each holding the blob's bytes
//! `[start, start + size)`. The blob's content is the pieces of its highest generation,
//! which must be contiguous from offset 0; anything else is corruption, reported, never
//! silently returned as data. Older generations are leftovers of a replace that crashed
//! before its cleanup: readers ignore them. Keys that do not parse strictly (strays) are
//! ignored by readers and by [`Keys::parse_blob`]. The normative text is
//! `proto/at-rest-v1.md`, "Object storage layout".

use std::fmt;

use crate::blob::{BlobId, BlobKind};

/// Digits of the generation and start fields (`u64::MAX` has 20).
const DIGITS: usize = 20;

/// The key scheme of one store: `{prefix}blobs/…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// `{prefix}blobs/`.
    root: String,
}

/// One piece object of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Piece {
    /// The replace generation it belongs to.
    pub generation: u64,
    /// Its first byte's offset in the blob.
    pub start: u64,
    /// Its size in bytes.
    pub size: u64,
}

impl Piece {
    /// One past its last byte's offset.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }
}

/// The pieces of a blob's highest generation violate the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    /// The generation.
    pub generation: u64,
    /// Where the gap or overlap is.
    pub offset: u64,
    /// What was found there.
    pub found: u64,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found > self.offset {
            write!(
                f,
                "generation {}: a gap, no piece starts at offset {} (next piece at {})",
                self.generation, self.offset, self.found
            )
        } else {
            write!(
                f,
                "generation {}: pieces overlap, one starts at {} before the previous end {}",
                self.generation, self.found, self.offset
            )
        }
    }
}

impl Keys {
    /// The scheme under `prefix`, which is empty or ends with `/` (validated by settings).
    pub fn new(prefix: &str) -> Self {
        Self {
            root: format!("{prefix}blobs/"),
        }
    }

    /// `{prefix}blobs/`: every blob's objects are below it.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `{prefix}blobs/{blob name}`: the blob's objects are below it.
    pub fn blob_dir(&self, id: BlobId) -> String {
        format!("{}{id}", self.root)
    }

    /// The key of one piece.
    pub fn piece(&self, id: BlobId, generation: u64, start: u64) -> String {
        format!("{}{id}/g{generation:020}/{start:020}", self.root)
    }

    /// The blob and piece position a key names, when it is exactly a piece key of this
    /// scheme; `None` for anything else.
    pub fn parse(&self, key: &str) -> Option<(BlobId, u64, u64)> {
        let rest = key.strip_prefix(&self.root)?;
        let mut parts = rest.split('/');
        let (name, generation, start) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let (object, suffix) = name.split_once('.')?;
        let id = BlobId {
            object: object.parse().ok()?,
            kind: BlobKind::from_suffix(suffix)?,
        };
        Some((id, number(generation.strip_prefix('g')?)?, number(start)?))
    }

    /// The blob a key belongs to, when it is a piece key (see [`Keys::parse`]).
    pub fn parse_blob(&self, key: &str) -> Option<BlobId> {
        self.parse(key).map(|(id, _, _)| id)
    }
}

/// Exactly 20 ASCII digits, in range.
fn number(s: &str) -> Option<u64> {
    if s.len() != DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The pieces of one blob as listed: every generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pieces: Vec<Piece>,
}

impl Listing {
    /// A listing of these pieces (any order).
    pub fn new(mut pieces: Vec<Piece>) -> Self {
        pieces.sort();
        Self { pieces }
    }

    /// Every piece, of every generation, by (generation, start).
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// Whether the blob exists (has any piece).
    pub fn exists(&self) -> bool {
        !self.pieces.is_empty()
    }

    /// The highest generation, if any piece exists.
    pub fn generation(&self) -> Option<u64> {
        self.pieces.last().map(|p| p.generation)
    }

    /// The pieces of the highest generation, by start, checked contiguous from 0.
    pub fn current(&self) -> Result<Vec<Piece>, Corrupt> {
        let Some(generation) = self.generation() else {
            return Ok(Vec::new());
        };
        let current: Vec<Piece> = self
            .pieces
            .iter()
            .filter(|p| p.generation == generation)
            .copied()
            .collect();
        let mut end = 0u64;
        for p in &current {
            if p.start != end {
                return Err(Corrupt {
                    generation,
                    offset: end,
                    found: p.start,
                });
            }
            end = p.end();
        }
        Ok(current)
    }

    /// Pieces of older generations (left by a replace that did not finish its cleanup).
    pub fn stale(&self) -> impl Iterator<Item = &Piece> {
        let current = self.generation();
        self.pieces
            .iter()
            .filter(move |p| Some(p.generation) != current)
    }
}

/// The length of a contiguous piece list from [`Listing::current`].
pub fn length(current: &[Piece]) -> u64 {
    current.last().map_or(0, Piece::end)
}

/// The parts of the pieces that hold `[offset, end)`: (piece, range inside the piece),
/// in order; empty pieces and pieces outside the range are left out.
pub fn overlapping(current: &[Piece], offset: u64, end: u64) -> Vec<(Piece, std::ops::Range<u64>)> {
    current
        .iter()
        .filter(|p| p.size > 0 && offset < end && p.start < end && p.end() > offset)
        .map(|p| {
            let from = offset.max(p.start) - p.start;
            let to = end.min(p.end()) - p.start;
            (*p, from..to)
        })
        .collect()
}

/// What `truncate(len)` does to the current pieces, in the order to do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cut {
    /// Delete the piece (it lies wholly at or past `len`).
    Delete(Piece),
    /// Rewrite the piece with only its first `keep` bytes (it straddles `len`, or it is
    /// the piece at 0 and `len` is 0: a blob keeps one piece so that it still exists).
    Shorten(Piece, u64),
}

/// Plans `truncate(len)`: from the highest start down, so a crash part-way leaves a
/// contiguous prefix that is still at least `len` long.
pub fn plan_truncate(current: &[Piece], len: u64) -> Vec<Cut> {
    current
        .iter()
        .rev()
        .filter_map(|p| {
            if p.start >= len && p.start > 0 {
                Some(Cut::Delete(*p))
            } else if p.end() > len {
                Some(Cut::Shorten(*p, len - p.start))
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn piece(generation: u64, start: u64, size: u64) -> Piece {
        Piece {
            generation,
            start,
            size,
        }
    }

    #[test]
    fn keys_round_trip_and_strays_are_rejected() {
        let keys = Keys::new("tenant/");
        let id = BlobId::data("0123456789abcdefghjkmnpqrs".parse().unwrap());
        let key = keys.piece(id, 3, 8 << 20);
        assert_eq!(
            key,
            "tenant/blobs/0123456789abcdefghjkmnpqrs.data/g00000000000000000003/00000000000008388608"
        );
        assert_eq!(keys.parse(&key), Some((id, 3, 8 << 20)));
        assert_eq!(
            keys.blob_dir(id),
            "tenant/blobs/0123456789abcdefghjkmnpqrs.data"
        );
        let max = keys.piece(id, u64::MAX, u64::MAX);
        assert_eq!(keys.parse(&max), Some((id, u64::MAX, u64::MAX)));
        let dir = keys.blob_dir(id);
        for stray in [
            format!("{dir}/g00000000000000000000/notanumber"),
            format!("{dir}/00000000000000000000"),
            format!("{dir}/g0/00000000000000000000"),
            format!("{dir}/g00000000000000000000/0"),
            format!("{dir}/g00000000000000000000/00000000000000000000/x"),
            format!("{dir}/G00000000000000000000/00000000000000000000"),
            format!("{dir}/g99999999999999999999/00000000000000000000"),
            format!("{dir}/g+0000000000000000000/00000000000000000000"),
            format!("{}/g00000000000000000000/00000000000000000000", dir.to_uppercase()),
            format!("{dir}.tmp/g00000000000000000000/00000000000000000000"),
            "other/blobs/0123456789abcdefghjkmnpqrs.data/g00000000000000000000/00000000000000000000".into(),
            "tenant/blobs/0123456789abcdefghjkmnpqrs.wal/g00000000000000000000/00000000000000000000".into(),
            "tenant/blobs/".into(),
            String::new(),
        ] {
            assert_eq!(keys.parse(&stray), None, "{stray:?}");
        }
        assert_eq!(Keys::new("").root(), "blobs/");
    }

    #[test]
    fn the_highest_generation_is_the_content_and_must_be_contiguous() {
        let listing = Listing::new(vec![piece(1, 5, 5), piece(0, 0, 100), piece(1, 0, 5)]);
        assert_eq!(listing.generation(), Some(1));
        let current = listing.current().unwrap();
        assert_eq!(current, vec![piece(1, 0, 5), piece(1, 5, 5)]);
        assert_eq!(length(&current), 10);
        assert_eq!(
            listing.stale().copied().collect::<Vec<_>>(),
            vec![piece(0, 0, 100)]
        );

        let gap = Listing::new(vec![piece(0, 0, 5), piece(0, 6, 5)]);
        let err = gap.current().unwrap_err();
        assert_eq!((err.offset, err.found), (5, 6));
        assert!(err.to_string().contains("gap"), "{err}");
        let overlap = Listing::new(vec![piece(0, 0, 5), piece(0, 4, 5)]);
        assert!(
            overlap
                .current()
                .unwrap_err()
                .to_string()
                .contains("overlap")
        );
        let no_start = Listing::new(vec![piece(2, 3, 5)]);
        assert!(no_start.current().is_err());
        // Empty pieces are fine anywhere they touch.
        let empty = Listing::new(vec![piece(0, 0, 4), piece(0, 4, 0)]);
        assert_eq!(length(&empty.current().unwrap()), 4);
        assert!(!Listing::default().exists());
        assert_eq!(Listing::default().current().unwrap(), vec![]);
    }

    #[test]
    fn a_range_touches_only_the_pieces_it_overlaps() {
        let current = [
            piece(0, 0, 10),
            piece(0, 10, 0),
            piece(0, 10, 10),
            piece(0, 20, 10),
        ];
        let spans = |o, e| -> Vec<(u64, std::ops::Range<u64>)> {
            overlapping(&current, o, e)
                .into_iter()
                .map(|(p, r)| (p.start, r))
                .collect()
        };
        assert_eq!(spans(0, 1), vec![(0, 0..1)]);
        assert_eq!(spans(9, 11), vec![(0, 9..10), (10, 0..1)]);
        assert_eq!(spans(10, 20), vec![(10, 0..10)]);
        assert_eq!(spans(5, 25), vec![(0, 5..10), (10, 0..10), (20, 0..5)]);
        assert_eq!(spans(30, 30), vec![]);
        assert_eq!(spans(12, 12), vec![]);
    }

    #[test]
    fn truncate_plans_from_the_top_down() {
        let current = [piece(0, 0, 10), piece(0, 10, 10), piece(0, 20, 10)];
        let p = |s| piece(0, s, 10);
        assert_eq!(
            plan_truncate(&current, 15),
            vec![Cut::Delete(p(20)), Cut::Shorten(p(10), 5)]
        );
        assert_eq!(
            plan_truncate(&current, 10),
            vec![Cut::Delete(p(20)), Cut::Delete(p(10))]
        );
        assert_eq!(plan_truncate(&current, 30), vec![]);
        assert_eq!(
            plan_truncate(&current, 0),
            vec![
                Cut::Delete(p(20)),
                Cut::Delete(p(10)),
                Cut::Shorten(p(0), 0)
            ]
        );
        // An empty blob truncated to 0 needs nothing.
        assert_eq!(plan_truncate(&[piece(0, 0, 0)], 0), vec![]);
    }
}
