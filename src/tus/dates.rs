//! [`Timestamp`]: a UTC instant with one-second resolution, and its two text forms.
//!
//! * RFC 3339, exactly `YYYY-MM-DDTHH:MM:SSZ`, in stored records and JSON documents (the
//!   ledger). Serde uses this form.
//! * IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`, for
//!   `Upload-Expires`.
//!
//! Both parsers are strict: they accept exactly what the formatter writes (parse, then
//! re-format and compare), so every accepted text has one meaning and one spelling.
//! Timestamps lie between 1970-01-01 and 9999-12-31, which keeps every year four digits.
//!
//! Not here: reading the clock in the core. [`Timestamp::now`] exists for the upload engine;
//! every `plan_*` function takes `now` as an argument.

use std::fmt;
use std::time::{Duration, SystemTime};

use time::macros::format_description;
use time::{PlainDateTime, UtcDateTime};

/// Seconds since 1970-01-01T00:00:00Z, within [`Timestamp::MIN`]..=[`Timestamp::MAX`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a text is not a [`Timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DateError {
    /// Not the exact form the formatter writes.
    #[error("not a canonical date in the expected form")]
    Malformed,
    /// Before 1970 or after 9999.
    #[error("date out of the supported range")]
    OutOfRange,
}

const RFC3339: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
const IMF_FIXDATE: &[time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
const WEEKDAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const MIN: Timestamp = Timestamp(0);
    /// 9999-12-31T23:59:59Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799);

    /// From seconds since the epoch; `None` outside the supported range.
    pub fn from_unix(secs: i64) -> Option<Self> {
        (Self::MIN.0..=Self::MAX.0)
            .contains(&secs)
            .then_some(Self(secs))
    }

    /// Seconds since the epoch.
    pub fn unix(self) -> i64 {
        self.0
    }

    /// The current time, truncated to the second (a clock before 1970 reads as 1970).
    pub fn now() -> Self {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self(i64::try_from(secs).unwrap_or(i64::MAX).min(Self::MAX.0))
    }

    /// `self + d`, whole seconds; `None` past [`Timestamp::MAX`].
    pub fn checked_add(self, d: Duration) -> Option<Self> {
        let secs = i64::try_from(d.as_secs()).ok()?;
        Self::from_unix(self.0.checked_add(secs)?)
    }

    /// Seconds from `self` until `later` (0 when `later` is not after `self`).
    pub fn seconds_until(self, later: Timestamp) -> u64 {
        u64::try_from(later.0 - self.0).unwrap_or(0)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn to_rfc3339(self) -> String {
        let t = self.utc();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// Parses exactly the form [`Timestamp::to_rfc3339`] writes.
    pub fn parse_rfc3339(text: &str) -> Result<Self, DateError> {
        let parsed = PlainDateTime::parse(text, RFC3339).map_err(|_| DateError::Malformed)?;
        Self::canonical(parsed, text, Self::to_rfc3339)
    }

    /// IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT` (for `Upload-Expires`).
    pub fn to_http_date(self) -> String {
        let t = self.utc();
        format!(
            "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
            WEEKDAYS[usize::from(t.weekday().number_days_from_monday())],
            t.day(),
            MONTHS[usize::from(u8::from(t.month())) - 1],
            t.year(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }

    /// Parses exactly the form [`Timestamp::to_http_date`] writes (IMF-fixdate only; the
    /// obsolete RFC 850 and asctime forms are refused).
    pub fn parse_http_date(text: &str) -> Result<Self, DateError> {
        let parsed = PlainDateTime::parse(text, IMF_FIXDATE).map_err(|_| DateError::Malformed)?;
        Self::canonical(parsed, text, Self::to_http_date)
    }

    fn canonical(
        parsed: PlainDateTime,
        text: &str,
        format: fn(Self) -> String,
    ) -> Result<Self, DateError> {
        let secs = parsed.as_utc().unix_timestamp();
        let ts = Self::from_unix(secs).ok_or(DateError::OutOfRange)?;
        if format(ts) == text {
            Ok(ts)
        } else {
            Err(DateError::Malformed)
        }
    }

    fn utc(self) -> UtcDateTime {
        // The constructor keeps `self.0` within 1970..=9999, which `UtcDateTime` covers.
        UtcDateTime::from_unix_timestamp(self.0).unwrap_or(UtcDateTime::UNIX_EPOCH)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({})", self.to_rfc3339())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> serde::Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        let t = Timestamp::from_unix(784_111_777).unwrap();
        assert_eq!(t.to_http_date(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t.to_rfc3339(), "1994-11-06T08:49:37Z");
        assert_eq!(
            Timestamp::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Ok(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("1994-11-06T08:49:37Z"), Ok(t));
        assert_eq!(Timestamp::MAX.to_rfc3339(), "9999-12-31T23:59:59Z");
        assert_eq!(
            Timestamp::MIN.to_http_date(),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn non_canonical_texts_are_refused() {
        for bad in [
            "Mon, 06 Nov 1994 08:49:37 GMT", // wrong weekday
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Wed, 31 Dec 1969 23:59:59 GMT",
        ] {
            assert!(Timestamp::parse_http_date(bad).is_err(), "{bad}");
        }
        for bad in [
            "1994-11-06T08:49:37+00:00",
            "1994-11-06T08:49:37.5Z",
            "1994-11-06 08:49:37Z",
            "1994-11-06T08:49:37z",
            "1969-12-31T23:59:59Z",
        ] {
            assert!(Timestamp::parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_prefix_never_panics() {
        let http = "Sun, 06 Nov 1994 08:49:37 GMT";
        let rfc = "1994-11-06T08:49:37Z";
        for end in 0..http.len() {
            assert!(Timestamp::parse_http_date(&http[..end]).is_err());
        }
        for end in 0..rfc.len() {
            assert!(Timestamp::parse_rfc3339(&rfc[..end]).is_err());
        }
    }

    #[test]
    fn range_and_arithmetic() {
        assert_eq!(Timestamp::from_unix(-1), None);
        assert_eq!(Timestamp::from_unix(Timestamp::MAX.unix() + 1), None);
        assert_eq!(Timestamp::MAX.checked_add(Duration::from_secs(1)), None);
        let t = Timestamp::from_unix(100).unwrap();
        assert_eq!(
            t.checked_add(Duration::from_millis(2500)).unwrap().unix(),
            102
        );
        assert_eq!(t.seconds_until(Timestamp::from_unix(160).unwrap()), 60);
        assert_eq!(t.seconds_until(Timestamp::MIN), 0);
        assert!(Timestamp::now() > t);
    }

    #[test]
    fn serde_uses_rfc3339() {
        let t = Timestamp::from_unix(784_111_777).unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"1994-11-06T08:49:37Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"1994-11-06\"").is_err());
    }

    proptest! {
        #[test]
        fn round_trips(secs in 0i64..=253_402_300_799) {
            let t = Timestamp::from_unix(secs).unwrap();
            prop_assert_eq!(Timestamp::parse_http_date(&t.to_http_date()), Ok(t));
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Ok(t));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = Timestamp::parse_http_date(&s);
            let _ = Timestamp::parse_rfc3339(&s);
        }
    }
}
