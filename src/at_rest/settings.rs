//! The at-rest settings from configuration: the plaintext segment size of new objects.
//!
//! The value is written in the `[keys]` table (`segment_size = 65536`, where it has always
//! been, so configuration files keep working) and read raw by `keys::config`; it is
//! validated here because it is a property of the at-rest format, not of the key
//! hierarchy. The configuration accepts a narrower range than the format
//! ([`SegmentSize::MIN`]): segments smaller than 4 KiB only waste space.
//!
//! Not here: the format's own limits ([`SegmentSize::new`]), objects already written (each
//! records its segment size in its header).

use super::format::SegmentSize;

/// Default plaintext segment size: 64 KiB.
pub const DEFAULT_SEGMENT_SIZE: u32 = 64 * 1024;
/// Smallest segment size the configuration accepts (the format allows smaller ones, which
/// only waste space).
pub const MIN_CONFIG_SEGMENT_SIZE: u32 = 4 * 1024;
/// Largest segment size the configuration accepts (the format's maximum).
pub const MAX_CONFIG_SEGMENT_SIZE: u32 = 16 * 1024 * 1024;

/// The validated at-rest settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtRestSettings {
    /// Segment size for new objects.
    pub segment_size: SegmentSize,
}

/// A configured `keys.segment_size` out of range or not a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("keys.segment_size must be a power of two from 4096 to 16777216, not {0}")]
pub struct SegmentSizeSettingError(pub u64);

impl AtRestSettings {
    /// Validates the configured segment size (`None`: the default, 64 KiB).
    pub fn from_raw(segment_size: Option<u64>) -> Result<Self, SegmentSizeSettingError> {
        let segment_size = match segment_size {
            None => SegmentSize::new(DEFAULT_SEGMENT_SIZE)
                .map_err(|_| SegmentSizeSettingError(DEFAULT_SEGMENT_SIZE.into()))?,
            Some(n) => u32::try_from(n)
                .ok()
                .filter(|n| (MIN_CONFIG_SEGMENT_SIZE..=MAX_CONFIG_SEGMENT_SIZE).contains(n))
                .and_then(|n| SegmentSize::new(n).ok())
                .ok_or(SegmentSizeSettingError(n))?,
        };
        Ok(Self { segment_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_64_kib() {
        let s = AtRestSettings::from_raw(None).unwrap();
        assert_eq!(s.segment_size.get(), 65536);
    }

    #[test]
    fn accepts_powers_of_two_in_the_configured_range() {
        for n in [4096u64, 65536, 1 << 20, 16 * 1024 * 1024] {
            let s = AtRestSettings::from_raw(Some(n)).unwrap();
            assert_eq!(u64::from(s.segment_size.get()), n);
        }
    }

    #[test]
    fn refuses_other_sizes_naming_the_key() {
        for n in [
            0u64,
            16,
            1000,
            2048,
            4097,
            33_554_432,
            u64::from(u32::MAX) + 1,
        ] {
            let e = AtRestSettings::from_raw(Some(n)).unwrap_err();
            assert_eq!(e, SegmentSizeSettingError(n));
            let text = e.to_string();
            assert!(text.contains("keys.segment_size"), "{text}");
            assert!(text.contains("power of two"), "{text}");
        }
    }
}
