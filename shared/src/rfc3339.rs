//! RFC 3339 timestamps in responses, written without `time`'s general formatter: every
//! listed row has three, and the general path showed in list profiles.
//!
//! The text is what `time::serde::rfc3339` writes: UTC as `Z`, a fraction only when there is
//! one, with its trailing zeros trimmed (`…:09.937Z`, `…:09Z`). Whatever the short path does
//! not cover (an offset other than UTC, a year outside 0000–9999) goes to `time` itself.

use serde::Serializer;
use time::{OffsetDateTime, UtcOffset};

/// `2026-11-26T07:37:09.123456789Z`, the longest text the short path writes.
const MAX_LEN: usize = 30;

/// For `#[serde(serialize_with = "crate::rfc3339::serialize")]`.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write_utc(at, &mut buf) {
        Some(len) => serializer.serialize_str(
            std::str::from_utf8(&buf[..len]).expect("the timestamp is ASCII digits and signs"),
        ),
        None => time::serde::rfc3339::serialize(at, serializer),
    }
}

/// Appends `at` to `out` as a JSON string, exactly as [`serialize`] with serde_json would.
pub fn write_json(at: &OffsetDateTime, out: &mut Vec<u8>) {
    let mut buf = [0u8; MAX_LEN];
    match write_utc(at, &mut buf) {
        Some(len) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..len]);
            out.push(b'"');
        }
        None => serialize(at, &mut serde_json::Serializer::new(out))
            .expect("serde_json writes a timestamp into a Vec without failing"),
    }
}

/// [`serialize`] for optional timestamps (`None` is `null`).
pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// Writes `at` into `buf` and returns its length; `None` when the short path does not apply.
fn write_utc(at: &OffsetDateTime, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    if at.offset() != UtcOffset::UTC || !(0..=9999).contains(&at.year()) {
        return None;
    }
    let mut digits = |from: usize, value: u32, width: usize| {
        let mut v = value;
        for i in (from..from + width).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(0, at.year() as u32, 4);
    digits(5, u8::from(at.month()).into(), 2);
    digits(8, at.day().into(), 2);
    digits(11, at.hour().into(), 2);
    digits(14, at.minute().into(), 2);
    digits(17, at.second().into(), 2);
    let nanos = at.nanosecond();
    let mut len = 19;
    if nanos != 0 {
        digits(20, nanos, 9);
        buf[19] = b'.';
        len = 29;
        while buf[len - 1] == b'0' {
            len -= 1;
        }
    }
    for (i, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        buf[i] = sep;
    }
    buf[len] = b'Z';
    Some(len + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::format_description::well_known::Rfc3339;

    fn short(at: OffsetDateTime) -> Option<String> {
        let mut buf = [0u8; MAX_LEN];
        write_utc(&at, &mut buf).map(|n| String::from_utf8(buf[..n].to_vec()).unwrap())
    }

    #[test]
    fn writes_what_time_writes() {
        let base = time::macros::datetime!(2026-11-26 07:37:09 UTC);
        let nanos = [
            0,
            1,
            10,
            937_000_000,
            123_456_000,
            123_456_789,
            100_000_000,
            999_999_999,
            500,
        ];
        let offsets = [
            time::Duration::ZERO,
            time::Duration::days(-739_000),
            time::Duration::days(2_900_000),
            time::Duration::seconds(86_399),
            time::Duration::days(-31) + time::Duration::hours(5),
        ];
        for n in nanos {
            for d in offsets {
                let at = (base + d).replace_nanosecond(n).unwrap();
                assert_eq!(short(at).unwrap(), at.format(&Rfc3339).unwrap(), "{at:?}");
            }
        }
    }

    #[test]
    fn leaves_other_offsets_and_years_to_time() {
        let at = time::macros::datetime!(2026-11-26 07:37:09.5 +02:00);
        assert_eq!(short(at), None);
        let json = serde_json::to_value(Wrapper(at)).unwrap();
        assert_eq!(json, "2026-11-26T07:37:09.5+02:00");
        let far = time::macros::datetime!(2026-01-01 0:00 UTC)
            .replace_year(-5)
            .unwrap();
        assert_eq!(short(far), None);
    }

    #[derive(serde::Serialize)]
    struct Wrapper(#[serde(serialize_with = "serialize")] OffsetDateTime);

    #[test]
    fn writes_json_as_serde_does() {
        for at in [
            time::macros::datetime!(2026-11-26 07:37:09.937 UTC),
            time::macros::datetime!(2026-11-26 07:37:09 UTC),
            time::macros::datetime!(2026-11-26 07:37:09.5 +02:00),
        ] {
            let mut out = Vec::new();
            write_json(&at, &mut out);
            assert_eq!(out, serde_json::to_vec(&Wrapper(at)).unwrap(), "{at:?}");
        }
    }

    #[test]
    fn serializes_through_serde() {
        let at = time::macros::datetime!(2026-11-26 07:37:09.937 UTC);
        assert_eq!(
            serde_json::to_string(&Wrapper(at)).unwrap(),
            "\"2026-11-26T07:37:09.937Z\""
        );
    }
}
