//! Capture timestamps: microseconds since the Unix epoch, RFC 3339 on the wire.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A point in capture time, in microseconds since the Unix epoch (UTC).
///
/// On the wire it is RFC 3339 with exactly six fractional digits and `Z`,
/// e.g. `2026-11-29T04:19:24.123456Z`. Parsing accepts any RFC 3339 offset
/// and any number of fractional digits (truncated to microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

/// A timestamp string that is not RFC 3339, or is out of range.
#[derive(Debug, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?}: {reason}")]
pub struct TimestampError {
    input: String,
    reason: String,
}

impl Timestamp {
    /// Builds a timestamp from seconds and microseconds since the epoch.
    pub fn from_parts(secs: i64, micros: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000)
                .saturating_add(i64::from(micros)),
        )
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (floor).
    pub fn secs(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// The microseconds within the second, `0..1_000_000`.
    pub fn subsec_micros(self) -> u32 {
        // rem_euclid of a positive modulus is always in 0..1_000_000.
        u32::try_from(self.0.rem_euclid(1_000_000)).unwrap_or(0)
    }

    /// Milliseconds since the epoch (floor).
    pub fn millis(self) -> i64 {
        self.0.div_euclid(1_000)
    }

    /// The current wall-clock time (for receive times, never for detection).
    pub fn now() -> Self {
        let now = OffsetDateTime::now_utc();
        let nanos = now.unix_timestamp_nanos();
        Timestamp(i64::try_from(nanos / 1_000).unwrap_or(i64::MAX))
    }

    /// Parses RFC 3339 (any offset, any number of fractional digits).
    ///
    /// A leap second (`:60`) is refused rather than silently moved: Unix
    /// time, and hence the store, has no such second, so the result could
    /// not be the time that was sent.
    pub fn parse(s: &str) -> Result<Self, TimestampError> {
        let err = |reason: String| TimestampError {
            input: shown(s),
            reason,
        };
        // RFC 3339: `YYYY-MM-DDTHH:MM:SS...`, seconds at bytes 17..19.
        if s.get(16..19) == Some(":60") {
            return Err(err(
                "leap seconds (:60) cannot be represented; send :59.999999 instead".to_string(),
            ));
        }
        let dt = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| err(e.to_string()))?;
        let micros = dt.unix_timestamp_nanos() / 1_000;
        i64::try_from(micros)
            .map(Timestamp)
            .map_err(|_| err("out of range".to_string()))
    }
}

/// Most characters of a rejected input repeated in an error message.
const SHOWN_CHARS: usize = 40;

/// `s`, cut to [`SHOWN_CHARS`] characters (with `...` when cut), for error
/// messages that must not echo megabytes back.
fn shown(s: &str) -> String {
    match s.char_indices().nth(SHOWN_CHARS) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match OffsetDateTime::from_unix_timestamp(self.secs()) {
            Ok(dt) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                self.subsec_micros()
            ),
            // Out of the representable calendar range: still print something
            // unambiguous rather than failing serialization.
            Err(_) => write!(f, "@{}us", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_fraction_digits_and_z() {
        let t = Timestamp::from_parts(1_700_000_000, 42);
        assert_eq!(t.to_string(), "2023-11-14T22:13:20.000042Z");
    }

    #[test]
    fn parses_offsets_and_round_trips() {
        let t = Timestamp::parse("2023-11-15T00:13:20.5+02:00").unwrap();
        assert_eq!(t, Timestamp::from_parts(1_700_000_000, 500_000));
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn rejects_garbage() {
        assert!(Timestamp::parse("yesterday").is_err());
        assert!(Timestamp::parse("2023-13-01T00:00:00Z").is_err());
    }

    #[test]
    fn leap_seconds_are_refused_not_moved() {
        let e = Timestamp::parse("2016-12-31T23:59:60Z").unwrap_err();
        assert!(e.to_string().contains("leap second"), "{e}");
        assert!(Timestamp::parse("2016-12-31T23:59:60.5+00:00").is_err());
        assert!(Timestamp::parse("2016-12-31T23:59:59.999999Z").is_ok());
    }

    #[test]
    fn errors_echo_at_most_a_short_prefix_of_the_input() {
        let long = "9".repeat(1_000_000);
        let e = Timestamp::parse(&long).unwrap_err().to_string();
        assert!(e.len() < 200, "{} bytes", e.len());
        assert!(e.contains(&"9".repeat(SHOWN_CHARS)));
    }

    #[test]
    fn negative_times_split_correctly() {
        let t = Timestamp(-1);
        assert_eq!(t.secs(), -1);
        assert_eq!(t.subsec_micros(), 999_999);
    }
}
