//! Times as CloudTrail writes them and as this crate stores them: RFC 3339 text (records, digest
//! files, the timeline) and epoch seconds, integer or fractional (the JSON 1.1 API's
//! `EventTime`, `StartTime`, `EndTime`, `ValidityStartTime`).

use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// RFC 3339 in UTC (`2026-03-01T12:00:00Z`; a fraction only when the time has one).
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    // Formatting a UTC time with a four-digit year cannot fail; the fallback is never used for
    // the times CloudTrail can hold (years 1970..9999).
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Parse RFC 3339 text.
pub(crate) fn parse_rfc3339(text: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).ok()
}

/// Epoch seconds as the JSON 1.1 API writes them: an integer or a float (`1767225600`,
/// `1767225600.0`, `1.7672256E9`).
pub(crate) fn from_epoch(value: &Value) -> Option<OffsetDateTime> {
    if let Some(secs) = value.as_i64() {
        return OffsetDateTime::from_unix_timestamp(secs).ok();
    }
    let float = value.as_f64()?;
    if !float.is_finite() {
        return None;
    }
    // Whole seconds and the fraction apart: an f64 of ~1.7e9 cannot carry nanoseconds whole.
    let secs = float.floor();
    let nanos = ((float - secs) * 1e9).round() as i128;
    let whole = OffsetDateTime::from_unix_timestamp(secs as i64).ok()?;
    Some(whole + time::Duration::nanoseconds(nanos as i64))
}

/// Serde for an `OffsetDateTime` as RFC 3339 text.
pub(crate) mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(crate) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        super::parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// Serde for an `Option<OffsetDateTime>` as RFC 3339 text or null.
pub(crate) mod serde_rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(crate) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::rfc3339(*t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => super::parse_rfc3339(&text).map(Some).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time"))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn epoch_seconds_read_as_integer_or_float() {
        let whole = from_epoch(&json!(1767225600)).expect("int");
        assert_eq!(whole.unix_timestamp(), 1767225600);
        assert_eq!(from_epoch(&json!(1767225600.0)), Some(whole));
        assert_eq!(from_epoch(&json!(1.7672256e9)), Some(whole));
        let half = from_epoch(&json!(1767225600.5)).expect("float");
        assert_eq!(half - whole, time::Duration::milliseconds(500));
        assert_eq!(from_epoch(&json!("1767225600")), None);
    }

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let t = parse_rfc3339("2026-01-01T02:00:00+02:00").expect("parse");
        assert_eq!(rfc3339(t), "2026-01-01T00:00:00Z");
    }
}
