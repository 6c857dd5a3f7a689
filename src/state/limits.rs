//! Request checks shared by both [`StateStore`](super::StateStore) adapters.
//!
//! Both adapters refuse the same requests with the same [`StateError::Invalid`] message, so
//! a caller that works against the embedded store works against Redis too. The limits keep
//! every key short enough for a 16-bit length prefix (the embedded key encoding) and every
//! script call small.
//!
//! Not here: anything backend-specific (key layouts live in each adapter).

use std::time::Duration;

use super::{IndexEntry, StateError};

/// Longest record, counter or lease id / name, in bytes.
pub(crate) const MAX_ID_LEN: usize = 512;
/// Longest indexed value, in bytes (the trait documents 256).
pub(crate) const MAX_INDEX_VALUE_LEN: usize = 256;
/// Most index entries one record may carry.
pub(crate) const MAX_INDEX_ENTRIES: usize = 16;
/// Largest page a `list`, `list_index` or `log_read` may ask for.
pub(crate) const MAX_PAGE: usize = 10_000;
/// Most entries one `log_append` may carry.
pub(crate) const MAX_APPEND_BATCH: usize = 1_000;
/// Longest TTL: ten years. Keeps every expiry far inside `u64`/`i64` milliseconds.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// A record, counter or lease id: 1–[`MAX_ID_LEN`] bytes.
pub(crate) fn check_id(id: &str) -> Result<(), StateError> {
    if id.is_empty() {
        return Err(StateError::Invalid("an id must not be empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(StateError::Invalid("an id is longer than 512 bytes"));
    }
    Ok(())
}

/// A static name (index name, log name): 1–32 characters of `[a-z0-9_]`, like a
/// [`Namespace`](super::Namespace). The adapters rely on it holding no separator.
pub(crate) fn check_static_name(name: &str) -> Result<(), StateError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
    if ok {
        Ok(())
    } else {
        Err(StateError::Invalid(
            "index and log names are 1-32 characters of [a-z0-9_]",
        ))
    }
}

/// Checks one index entry used for a lookup.
pub(crate) fn check_index_entry(entry: &IndexEntry) -> Result<(), StateError> {
    check_static_name(entry.index)?;
    if entry.value.len() > MAX_INDEX_VALUE_LEN {
        return Err(StateError::Invalid(
            "an index value is longer than 256 bytes",
        ));
    }
    Ok(())
}

/// Checks a record's index entries and returns them sorted without duplicates.
pub(crate) fn check_index_entries(entries: &[IndexEntry]) -> Result<Vec<IndexEntry>, StateError> {
    for entry in entries {
        check_index_entry(entry)?;
    }
    let mut out = entries.to_vec();
    out.sort_by(|a, b| (a.index, &a.value).cmp(&(b.index, &b.value)));
    out.dedup();
    if out.len() > MAX_INDEX_ENTRIES {
        return Err(StateError::Invalid(
            "a record carries more than 16 index entries",
        ));
    }
    Ok(out)
}

/// A TTL in whole milliseconds, rounded up so a sub-millisecond TTL is not zero.
pub(crate) fn ttl_ms(ttl: Duration) -> Result<u64, StateError> {
    if ttl.is_zero() {
        return Err(StateError::Invalid("a ttl must be positive"));
    }
    if ttl > MAX_TTL {
        return Err(StateError::Invalid("a ttl is longer than ten years"));
    }
    let ms = ttl.as_millis() + u128::from(!ttl.subsec_nanos().is_multiple_of(1_000_000));
    // MAX_TTL is about 3.2e11 ms, far inside u64.
    u64::try_from(ms).map_err(|_| StateError::Invalid("a ttl is longer than ten years"))
}

/// A page size for listing and log reads.
pub(crate) fn check_page(limit: usize) -> Result<(), StateError> {
    if limit > MAX_PAGE {
        return Err(StateError::Invalid("a page is larger than 10000 items"));
    }
    Ok(())
}

/// A log append request.
pub(crate) fn check_append(expected_next: u64, entries: &[Vec<u8>]) -> Result<(), StateError> {
    if expected_next == 0 {
        return Err(StateError::Invalid("log sequence numbers start at 1"));
    }
    if entries.is_empty() {
        return Err(StateError::Invalid("a log append needs at least one entry"));
    }
    if entries.len() > MAX_APPEND_BATCH {
        return Err(StateError::Invalid(
            "a log append carries more than 1000 entries",
        ));
    }
    // Sequence numbers of the batch must fit; also keeps Redis's Lua doubles exact.
    let last = expected_next.checked_add(entries.len() as u64);
    if last.is_none_or(|last| last > (1u64 << 53)) {
        return Err(StateError::Invalid("log sequence number out of range"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(check_id("").is_err());
        assert!(check_id("a").is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_LEN)).is_ok());
        assert!(check_id(&"x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn static_names() {
        assert!(check_static_name("owner_2").is_ok());
        for bad in ["", "Owner", "a:b", "a b", &"a".repeat(33)] {
            assert!(check_static_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn index_entries_are_sorted_and_deduplicated() {
        let entries = [
            IndexEntry::new("owner", "b"),
            IndexEntry::new("batch", "z"),
            IndexEntry::new("owner", "b"),
        ];
        let out = check_index_entries(&entries).unwrap();
        assert_eq!(
            out,
            vec![IndexEntry::new("batch", "z"), IndexEntry::new("owner", "b")]
        );
        let many: Vec<_> = (0..17)
            .map(|i| IndexEntry::new("owner", format!("{i}")))
            .collect();
        assert!(check_index_entries(&many).is_err());
        assert!(check_index_entries(&[IndexEntry::new("owner", "v".repeat(257))]).is_err());
        assert!(check_index_entries(&[IndexEntry::new("Owner", "v")]).is_err());
    }

    #[test]
    fn ttls_round_up() {
        assert!(ttl_ms(Duration::ZERO).is_err());
        assert_eq!(ttl_ms(Duration::from_nanos(1)).unwrap(), 1);
        assert_eq!(ttl_ms(Duration::from_millis(300)).unwrap(), 300);
        assert_eq!(ttl_ms(Duration::from_micros(300_001)).unwrap(), 301);
        assert!(ttl_ms(MAX_TTL + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn appends() {
        assert!(check_append(0, &[vec![1]]).is_err());
        assert!(check_append(1, &[]).is_err());
        assert!(check_append(1, &vec![vec![]; MAX_APPEND_BATCH + 1]).is_err());
        assert!(check_append(u64::MAX, &[vec![1]]).is_err());
        assert!(check_append(1, &[vec![1]]).is_ok());
    }
}
