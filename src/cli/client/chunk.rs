//! The chunks an upload sends, and the reader that makes them ahead of the network.
//!
//! A [`Chunk`] is one PATCH body: its offset in the file, its bytes (a [`Bytes`] the HTTP
//! body takes without a copy) and their SHA-256 (the `Upload-Checksum`). A
//! [`ChunkReader`] makes chunks from a positioned [`Source`] (the file; bytes in tests)
//! and feeds the whole-file SHA-256 on the way, in one pass: each piece of a chunk is
//! read, then hashed by both hashers while it is still in cache.
//!
//! **Whole-file digest.** Every byte of the file enters the whole-file hasher exactly
//! once, in order, whatever offsets the server sends the client to: a chunk that starts
//! past what is hashed first hashes the gap from the source, and the part of a chunk
//! that is already hashed is skipped. The digest therefore never depends on which chunks
//! were sent, discarded or sent twice; [`ChunkReader::finish`] hashes what is left.
//!
//! **The pipeline's rule** ([`keep_read_ahead`]): while chunk k is on the wire, chunk k+1
//! is read and hashed on a blocking thread (`upload`). It is sent only if the server
//! accepted chunk k whole, at exactly the offset expected; any other answer (a partial
//! acceptance, another client having moved the upload on, a 409, a retry) discards it,
//! and the upload goes on from the server's `Upload-Offset`. So at most two chunks of a
//! file are in memory: the one in flight and the one read ahead.
//!
//! No network and no runtime here: `upload` runs [`ChunkReader::read`] on
//! `tokio::task::spawn_blocking`.

use std::io;

use base64::Engine as _;
use bytes::Bytes;
use sha2::{Digest, Sha256};

/// How much is read and hashed at a time: small enough to stay in cache between the read
/// and the two hashers.
const PIECE: usize = 256 << 10;

/// One PATCH body.
#[derive(Clone)]
pub struct Chunk {
    /// Where the bytes start in the file.
    pub offset: u64,
    /// The bytes (shared, never copied on the way to the HTTP body).
    pub bytes: Bytes,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
}

impl std::fmt::Debug for Chunk {
    // The bytes are the file's content (possibly PHI): never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("offset", &self.offset)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

impl Chunk {
    /// The number of bytes.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether the chunk holds no byte.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The offset just past the chunk: the server's `Upload-Offset` once it has it all.
    pub fn end(&self) -> u64 {
        self.offset + self.len()
    }

    /// The `Upload-Checksum` value: `sha256 <base64>`.
    pub fn upload_checksum(&self) -> String {
        format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(self.sha256)
        )
    }
}

/// Whether the chunk read ahead is the one to send next: only if the server took all of
/// `sent` (its new offset is exactly `sent`'s end) and `ahead` starts there.
pub fn keep_read_ahead(sent: &Chunk, server_offset: u64, ahead: &Chunk) -> bool {
    server_offset == sent.end() && ahead.offset == server_offset
}

/// Bytes that can be read at any offset (`pread`).
pub trait Source {
    /// Fills `buf` from `at`; an error if the source ends first.
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()>;
}

impl Source for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, at)
    }
}

/// Reads chunks of a source of `size` bytes and keeps the whole-file SHA-256.
pub struct ChunkReader<S> {
    source: S,
    size: u64,
    /// The whole-file hasher; it has seen exactly `[0, hashed)`.
    file: Sha256,
    hashed: u64,
}

impl<S> std::fmt::Debug for ChunkReader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("size", &self.size)
            .field("hashed", &self.hashed)
            .finish_non_exhaustive()
    }
}

impl<S: Source> ChunkReader<S> {
    /// A reader of `source`, whose size is `size`.
    pub fn new(source: S, size: u64) -> Self {
        Self {
            source,
            size,
            file: Sha256::new(),
            hashed: 0,
        }
    }

    /// The chunk `[at, at + len)`, hashed; the whole-file hasher moves on to its end.
    pub fn read(&mut self, at: u64, len: u64) -> io::Result<Chunk> {
        let end = at
            .checked_add(len)
            .filter(|&e| e <= self.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a chunk past the end"))?;
        let n = usize::try_from(len).map_err(io::Error::other)?;
        self.hash_to(at)?;
        let mut buf = vec![0u8; n];
        let mut sha = Sha256::new();
        let mut start = 0;
        while start < n {
            let stop = n.min(start + PIECE);
            let piece = &mut buf[start..stop];
            let pos = at + start as u64;
            self.source.read_exact_at(piece, pos)?;
            sha.update(&*piece);
            // The whole-file hasher has seen [0, hashed) with hashed >= pos (the gap was
            // filled above, and pieces are contiguous): feed it what lies past that.
            let piece_end = pos + piece.len() as u64;
            if piece_end > self.hashed {
                let skip = usize::try_from(self.hashed.saturating_sub(pos)).unwrap_or(0);
                self.file.update(&piece[skip..]);
                self.hashed = piece_end;
            }
            start = stop;
        }
        debug_assert!(self.hashed >= end);
        Ok(Chunk {
            offset: at,
            bytes: Bytes::from(buf),
            sha256: sha.finalize().into(),
        })
    }

    /// The whole file's SHA-256 (hashing whatever no chunk covered).
    pub fn finish(mut self) -> io::Result<[u8; 32]> {
        self.hash_to(self.size)?;
        Ok(self.file.finalize().into())
    }

    /// Makes the whole-file hasher cover `[0, to)` (nothing to do if it already does).
    fn hash_to(&mut self, to: u64) -> io::Result<()> {
        if self.hashed >= to {
            return Ok(());
        }
        let mut buf = vec![0u8; PIECE];
        while self.hashed < to {
            let n = usize::try_from(to - self.hashed).map_or(PIECE, |left| left.min(PIECE));
            self.source.read_exact_at(&mut buf[..n], self.hashed)?;
            self.file.update(&buf[..n]);
            self.hashed += n as u64;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes in memory as a source.
    struct Mem(Vec<u8>);

    impl Source for Mem {
        fn read_exact_at(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
            let at = usize::try_from(at).unwrap();
            let src = self
                .0
                .get(at..at + buf.len())
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 + i / 997) as u8).collect()
    }

    #[test]
    fn a_chunk_holds_its_bytes_and_their_digest() {
        let d = data(3 * PIECE + 17);
        let mut r = ChunkReader::new(Mem(d.clone()), d.len() as u64);
        let c = r.read(5, (2 * PIECE + 3) as u64).unwrap();
        assert_eq!(c.offset, 5);
        assert_eq!(&c.bytes[..], &d[5..5 + 2 * PIECE + 3]);
        assert_eq!(c.sha256.to_vec(), Sha256::digest(&c.bytes).to_vec());
        assert_eq!(c.end(), (5 + 2 * PIECE + 3) as u64);
        assert!(c.upload_checksum().starts_with("sha256 "));
        assert_eq!(
            format!("{c:?}"),
            format!("Chunk {{ offset: 5, len: {}, .. }}", 2 * PIECE + 3)
        );
        assert_eq!(r.finish().unwrap().to_vec(), Sha256::digest(&d).to_vec());
    }

    #[test]
    fn reads_past_the_end_are_refused() {
        let mut r = ChunkReader::new(Mem(data(100)), 100);
        assert_eq!(
            r.read(90, 11).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            r.read(u64::MAX, 2).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        // A source shorter than the size it was given (the file shrank): an error.
        let mut r = ChunkReader::new(Mem(data(100)), 200);
        assert!(r.read(50, 100).is_err());
        assert!(ChunkReader::new(Mem(data(100)), 200).finish().is_err());
    }

    #[test]
    fn the_read_ahead_is_kept_only_after_an_exact_acceptance() {
        let d = data(300);
        let mut r = ChunkReader::new(Mem(d), 300);
        let sent = r.read(0, 100).unwrap();
        let ahead = r.read(100, 100).unwrap();
        assert!(keep_read_ahead(&sent, 100, &ahead));
        // The server kept part of the chunk, or moved on past it (another client).
        assert!(!keep_read_ahead(&sent, 60, &ahead));
        assert!(!keep_read_ahead(&sent, 0, &ahead));
        assert!(!keep_read_ahead(&sent, 150, &ahead));
        assert!(!keep_read_ahead(&sent, 200, &ahead));
        // A read-ahead that does not start where the sent chunk ends is never kept.
        let elsewhere = r.read(120, 10).unwrap();
        assert!(!keep_read_ahead(&sent, 100, &elsewhere));
    }

    proptest! {
        /// Whatever offsets the chunks are read at — in order, overlapping, skipping,
        /// going back, as a server's answers may dictate — every chunk holds the source's
        /// bytes with their digest, and the whole-file digest is the file's.
        #[test]
        fn the_whole_file_digest_does_not_depend_on_the_reads(
            len in 0usize..(3 * PIECE),
            reads in proptest::collection::vec((0f64..1.0, 0usize..(PIECE + 999)), 0..8),
        ) {
            let d = data(len);
            let mut r = ChunkReader::new(Mem(d.clone()), len as u64);
            for (frac, n) in reads {
                let at = (frac * len as f64) as usize;
                let n = n.min(len - at);
                let c = r.read(at as u64, n as u64).unwrap();
                prop_assert_eq!(&c.bytes[..], &d[at..at + n]);
                prop_assert_eq!(c.sha256.to_vec(), Sha256::digest(&d[at..at + n]).to_vec());
            }
            prop_assert_eq!(r.finish().unwrap().to_vec(), Sha256::digest(&d).to_vec());
        }
    }
}
