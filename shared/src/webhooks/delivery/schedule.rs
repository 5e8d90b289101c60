//! When a failed delivery is tried again: the Standard Webhooks schedule (immediately, then
//! 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), spread by jitter so that an endpoint coming
//! back is not hit by every queued event in the same second, and overridden by the
//! receiver's own `Retry-After` on 429, 502 and 504.

use std::time::Duration;

use time::OffsetDateTime;
use time::macros::format_description;

/// The longest `Retry-After` obeyed; a receiver asking for more gets the day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Delays before each attempt; the first is the initial one, so the length is the number
/// of attempts in all.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    delays: Vec<Duration>,
    /// Each retry delay is moved by up to this fraction either way.
    jitter: f64,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule::standard()
    }
}

impl Schedule {
    pub fn standard() -> Schedule {
        const MIN: u64 = 60;
        const HOUR: u64 = 3600;
        Schedule::new(
            [
                0,
                5,
                5 * MIN,
                30 * MIN,
                2 * HOUR,
                5 * HOUR,
                10 * HOUR,
                10 * HOUR,
            ]
            .map(Duration::from_secs)
            .to_vec(),
            0.1,
        )
    }

    /// Any schedule (tests use short ones). `delays` must not be empty.
    pub fn new(delays: Vec<Duration>, jitter: f64) -> Schedule {
        assert!(!delays.is_empty(), "a schedule has at least one attempt");
        Schedule {
            delays,
            jitter: jitter.clamp(0.0, 1.0),
        }
    }

    /// Attempts in all before a delivery is given up.
    pub fn attempts(&self) -> u32 {
        self.delays.len() as u32
    }

    /// How long after the failure of attempt `made` (1-based) the next one is due; `None`
    /// when none is left. A `Retry-After` the receiver sent replaces the schedule's delay.
    pub fn after_failure(&self, made: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let planned = *self.delays.get(made as usize)?;
        Some(match retry_after {
            Some(asked) => asked.min(MAX_RETRY_AFTER),
            None => self.jittered(planned),
        })
    }

    fn jittered(&self, delay: Duration) -> Duration {
        if self.jitter == 0.0 || delay.is_zero() {
            return delay;
        }
        let unit = f64::from(getrandom::u32().unwrap_or(u32::MAX / 2)) / f64::from(u32::MAX);
        delay.mul_f64(1.0 + self.jitter * (2.0 * unit - 1.0))
    }
}

/// A `Retry-After` value: delay seconds, or an HTTP date (past dates mean now).
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let format = format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let at = time::PrimitiveDateTime::parse(value, format)
        .ok()?
        .assume_utc();
    Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_standard_schedule_has_eight_attempts_then_stops() {
        let s = Schedule::new(Schedule::standard().delays, 0.0);
        assert_eq!(s.attempts(), 8);
        assert_eq!(s.after_failure(1, None), Some(Duration::from_secs(5)));
        assert_eq!(s.after_failure(2, None), Some(Duration::from_secs(300)));
        assert_eq!(s.after_failure(7, None), Some(Duration::from_secs(36000)));
        assert_eq!(s.after_failure(8, None), None);
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let s = Schedule::standard();
        for _ in 0..200 {
            let d = s.after_failure(2, None).unwrap().as_secs_f64();
            assert!((270.0..=330.0).contains(&d), "{d}");
        }
    }

    #[test]
    fn retry_after_replaces_the_delay_but_not_the_attempt_count() {
        let s = Schedule::standard();
        assert_eq!(
            s.after_failure(3, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            s.after_failure(1, Some(Duration::from_secs(999_999))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(s.after_failure(8, Some(Duration::from_secs(1))), None);
    }

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = datetime!(2015-10-21 07:27:00 UTC);
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
