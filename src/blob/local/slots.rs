//! Slot files: how the local store keeps a tail blob, so that replacing it costs one
//! positioned write and one `fdatasync`, not a temp file, its fsync, a rename and a
//! directory fsync (two syncs and a rename on every upload commit, issue 14).
//!
//! # Layout
//!
//! All integers big-endian.
//!
//! ```text
//! file   = header (32) ‖ slot 0 (at 32) ‖ slot 1 (at 32 + capacity)
//! header = MAGIC "sallyport/slots1" (16) ‖ version u32 = 1 ‖ capacity u32 ‖ zero (8)
//! slot   = seq u64 ‖ len u32 ‖ SHA-256(seq ‖ len ‖ content) (32) ‖ content (len)
//! ```
//!
//! A slot is *valid* when `44 + len <= capacity`, it lies inside the file and its checksum
//! matches. The blob's content is the content of the valid slot with the higher `seq`.
//!
//! **Replace** writes the new content into the slot that is *not* the current one, with
//! `seq + 1`, and syncs: the current content is never touched, so a crash in the middle of
//! the write leaves a slot that fails its checksum (or still holds the version before the
//! current one, with a lower `seq`) and the current content stands; once the sync returns,
//! the new slot is the current one. A reader racing a replace reads either version whole.
//! The header is written once, when the file is created (through a temp file and a rename,
//! like every whole-file write of this store), and never again: when new content does not
//! fit the capacity, the whole file is written anew with a larger one.
//!
//! A file that does not begin with the header is a plain blob: a tail written before this
//! format (its content is the whole file; the next replace turns it into a slot file) or
//! one made by `create` and `append`, which the blob-store contract allows on any kind.
//! The store refuses an append that would make a plain tail blob begin with the magic, so
//! the two cannot be confused.
//!
//! Not here: which files are slot files (tail blobs, `super`), opening and renaming.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

/// The first 16 bytes of a slot file.
pub(super) const MAGIC: &[u8; 16] = b"sallyport/slots1";
/// The slot-file version this code writes and reads.
const VERSION: u32 = 1;
/// Length of the file header.
pub(super) const HEADER_LEN: u64 = 32;
/// Length of a slot's header (seq, len, checksum).
const SLOT_HEADER_LEN: u64 = 8 + 4 + 32;
/// The smallest slot capacity: room for the tail record of an object with the default
/// 64 KiB segments (its partial segment, up to 64 KiB − 1, plus about 200 bytes), so the
/// tails of default objects are never rewritten whole after their creation.
const MIN_CAPACITY: u64 = 68 * 1024;

/// The current content of a slot file, and what a replace needs to write the next one.
#[derive(Debug)]
pub(super) struct Slotted {
    /// Bytes per slot.
    capacity: u64,
    /// The current slot (0 or 1) and its sequence number.
    current: usize,
    seq: u64,
    /// The current content.
    pub(super) content: Vec<u8>,
}

impl Slotted {
    /// Reads `file` as a slot file: `None` when it is a plain blob (no header), an
    /// `InvalidData` error when it has the header but no valid slot.
    pub(super) fn read(file: &File) -> io::Result<Option<Self>> {
        let file_len = file.metadata()?.len();
        if file_len < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0)?;
        let Some(capacity) = parse_header(&header)? else {
            return Ok(None);
        };
        let mut best: Option<Self> = None;
        for slot in 0..2 {
            let Some((seq, content)) = read_slot(file, file_len, capacity, slot)? else {
                continue;
            };
            if best.as_ref().is_none_or(|b| seq > b.seq) {
                best = Some(Self {
                    capacity,
                    current: slot,
                    seq,
                    content,
                });
            }
        }
        best.map(Some)
            .ok_or_else(|| invalid("a slot file with no valid slot"))
    }

    /// Whether `len` bytes of content fit a slot of this file.
    pub(super) fn fits(&self, len: usize) -> bool {
        SLOT_HEADER_LEN.saturating_add(len as u64) <= self.capacity
    }

    /// Writes `content` into the other slot with the next sequence number and syncs the
    /// file's data: the replace's commit point. The caller checked [`Slotted::fits`].
    pub(super) fn overwrite(&self, file: &File, content: &[u8]) -> io::Result<()> {
        if !self.fits(content.len()) {
            return Err(invalid("content larger than the slot"));
        }
        let seq = self
            .seq
            .checked_add(1)
            .ok_or_else(|| invalid("slot sequence exhausted"))?;
        let slot = 1 - self.current;
        file.write_all_at(
            &encode_slot(seq, content)?,
            slot_offset(self.capacity, slot),
        )?;
        file.sync_data()
    }
}

/// A whole new slot file holding `content` in slot 0 (sequence 1), with room for content
/// of at least twice its length.
pub(super) fn encode_new(content: &[u8]) -> io::Result<Vec<u8>> {
    let capacity = capacity_for(content.len());
    let capacity32 = u32::try_from(capacity).map_err(|_| invalid("content too large"))?;
    let mut out =
        Vec::with_capacity(HEADER_LEN as usize + SLOT_HEADER_LEN as usize + content.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&capacity32.to_be_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&encode_slot(1, content)?);
    Ok(out)
}

/// The capacity of a new file for `len` bytes of content: at least [`MIN_CAPACITY`], and
/// twice what it needs now (a tail grows with its partial segment), in 4 KiB steps.
fn capacity_for(len: usize) -> u64 {
    let need = SLOT_HEADER_LEN.saturating_add(len as u64).saturating_mul(2);
    need.div_ceil(4096).saturating_mul(4096).max(MIN_CAPACITY)
}

/// The header's capacity, `None` for a file that is not a slot file.
fn parse_header(header: &[u8; HEADER_LEN as usize]) -> io::Result<Option<u64>> {
    if header[..16] != MAGIC[..] {
        return Ok(None);
    }
    let version = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
    if version != VERSION {
        return Err(invalid("an unknown slot-file version"));
    }
    let capacity = u64::from(u32::from_be_bytes([
        header[20], header[21], header[22], header[23],
    ]));
    if capacity < SLOT_HEADER_LEN {
        return Err(invalid("a slot capacity smaller than a slot header"));
    }
    Ok(Some(capacity))
}

/// Slot `slot`'s sequence number and content when it is valid.
fn read_slot(
    file: &File,
    file_len: u64,
    capacity: u64,
    slot: usize,
) -> io::Result<Option<(u64, Vec<u8>)>> {
    let at = slot_offset(capacity, slot);
    if at.saturating_add(SLOT_HEADER_LEN) > file_len {
        return Ok(None);
    }
    let mut head = [0u8; SLOT_HEADER_LEN as usize];
    file.read_exact_at(&mut head, at)?;
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&head[..8]);
    let len = u64::from(u32::from_be_bytes([head[8], head[9], head[10], head[11]]));
    if SLOT_HEADER_LEN + len > capacity || at + SLOT_HEADER_LEN + len > file_len {
        return Ok(None);
    }
    // len <= capacity <= u32::MAX: fits a usize on the 64-bit targets this gateway runs on.
    let mut content = vec![0u8; usize::try_from(len).map_err(|_| invalid("slot length"))?];
    file.read_exact_at(&mut content, at + SLOT_HEADER_LEN)?;
    if checksum(&head[..12], &content) != head[12..] {
        return Ok(None);
    }
    Ok(Some((u64::from_be_bytes(seq), content)))
}

fn encode_slot(seq: u64, content: &[u8]) -> io::Result<Vec<u8>> {
    let len = u32::try_from(content.len()).map_err(|_| invalid("content too large"))?;
    let mut out = Vec::with_capacity(SLOT_HEADER_LEN as usize + content.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    let sum = checksum(&out, content);
    out.extend_from_slice(&sum);
    out.extend_from_slice(content);
    Ok(out)
}

fn checksum(seq_and_len: &[u8], content: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(seq_and_len);
    h.update(content);
    h.finalize().into()
}

fn slot_offset(capacity: u64, slot: usize) -> u64 {
    HEADER_LEN + capacity * slot as u64
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::fs::OpenOptions;

    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        std::fs::write(&path, bytes).unwrap();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        (dir, file)
    }

    #[test]
    fn a_new_file_is_the_documented_bytes() {
        let bytes = encode_new(b"abc").unwrap();
        let mut want = Vec::new();
        want.extend_from_slice(b"sallyport/slots1");
        want.extend_from_slice(&[0, 0, 0, 1]);
        want.extend_from_slice(&(68u32 * 1024).to_be_bytes());
        want.extend_from_slice(&[0; 8]);
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 3]);
        want.extend_from_slice(&Sha256::digest(b"\0\0\0\0\0\0\0\x01\0\0\0\x03abc"));
        want.extend_from_slice(b"abc");
        assert_eq!(bytes, want);
    }

    #[test]
    fn replaces_alternate_slots_and_the_newest_valid_one_is_read() {
        let (_dir, file) = file_with(&encode_new(b"one").unwrap());
        for (i, next) in [&b"two"[..], b"three, longer", b"", b"five"]
            .iter()
            .enumerate()
        {
            let s = Slotted::read(&file).unwrap().unwrap();
            assert_eq!(s.current, i % 2);
            s.overwrite(&file, next).unwrap();
            let after = Slotted::read(&file).unwrap().unwrap();
            assert_eq!(after.content, *next);
            assert_eq!(after.seq, i as u64 + 2);
        }
    }

    #[test]
    fn a_torn_write_leaves_the_current_content() {
        let (_dir, file) = file_with(&encode_new(b"committed").unwrap());
        let s = Slotted::read(&file).unwrap().unwrap();
        // A crash part-way through writing slot 1: its header and half its content.
        let slot = encode_slot(2, b"never synced").unwrap();
        let torn = &slot[..slot.len() - 6];
        file.write_all_at(torn, slot_offset(s.capacity, 1)).unwrap();
        let again = Slotted::read(&file).unwrap().unwrap();
        assert_eq!(again.content, b"committed");
        // Every single-bit flip in the newer slot falls back to the older one, never to
        // a mix.
        s.overwrite(&file, b"newer").unwrap();
        let at = slot_offset(s.capacity, 1);
        for i in 0..(SLOT_HEADER_LEN + 5) {
            let mut b = [0u8; 1];
            file.read_exact_at(&mut b, at + i).unwrap();
            file.write_all_at(&[b[0] ^ 0x10], at + i).unwrap();
            let seen = Slotted::read(&file).unwrap().unwrap().content;
            assert_eq!(seen, b"committed", "flip at byte {i}");
            file.write_all_at(&b, at + i).unwrap();
        }
        assert_eq!(Slotted::read(&file).unwrap().unwrap().content, b"newer");
        // The next replace goes into the slot that is not current: the older one.
        let s = Slotted::read(&file).unwrap().unwrap();
        assert_eq!(s.current, 1);
        s.overwrite(&file, b"third").unwrap();
        assert_eq!(Slotted::read(&file).unwrap().unwrap().current, 0);
    }

    #[test]
    fn plain_files_are_not_slot_files_and_damage_is_an_error() {
        let (_dir, file) = file_with(b"SPAT\x01 a tail record written before slot files");
        assert!(Slotted::read(&file).unwrap().is_none());
        let (_dir, file) = file_with(b"short");
        assert!(Slotted::read(&file).unwrap().is_none());
        let mut both_bad = encode_new(b"x").unwrap();
        let last = both_bad.len() - 1;
        both_bad[last] ^= 1;
        let (_dir, file) = file_with(&both_bad);
        assert_eq!(
            Slotted::read(&file).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let mut future = encode_new(b"x").unwrap();
        future[19] = 2;
        let (_dir, file) = file_with(&future);
        assert!(Slotted::read(&file).is_err());
    }

    #[test]
    fn capacity_has_room_for_a_default_tail_and_grows_with_content() {
        assert_eq!(capacity_for(0), MIN_CAPACITY);
        // A default object's largest tail record: 178 bytes of fields and tag plus a
        // partial segment of 64 KiB - 1.
        let s = Slotted {
            capacity: capacity_for(0),
            current: 0,
            seq: 1,
            content: Vec::new(),
        };
        assert!(s.fits(178 + 65_535));
        let big = capacity_for(1 << 20);
        assert!(big >= 2 << 20 && big.is_multiple_of(4096));
        assert!(!s.fits(MIN_CAPACITY as usize));
    }
}
