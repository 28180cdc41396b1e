//! Google's daily quotas reset at midnight Pacific time (PST or PDT).

use chrono::{DateTime, Days, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;
use std::time::{Duration, SystemTime};

/// The next midnight in America/Los_Angeles after `now`.
pub fn next_pacific_midnight(now: SystemTime) -> SystemTime {
    let now_utc: DateTime<Utc> = now.into();
    let local_date = now_utc.with_timezone(&Los_Angeles).date_naive();
    let next_date = local_date.checked_add_days(Days::new(1)).unwrap_or(local_date);
    let midnight = next_date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match Los_Angeles.from_local_datetime(&midnight).earliest() {
        Some(moment) => moment.with_timezone(&Utc).into(),
        // Midnight never skipped in this zone; keep a safe answer regardless.
        None => now + Duration::from_secs(24 * 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().with_timezone(&Utc).into()
    }

    #[test]
    fn winter_and_summer_offsets() {
        // 2026-01-15 10:00 PST = 18:00Z; next midnight PST = 2026-01-16 08:00Z.
        assert_eq!(next_pacific_midnight(at("2026-01-15T18:00:00Z")), at("2026-01-16T08:00:00Z"));
        // 2026-07-15 23:59 PDT = 2026-07-16 06:59Z; next midnight PDT = 07:00Z.
        assert_eq!(next_pacific_midnight(at("2026-07-16T06:59:00Z")), at("2026-07-16T07:00:00Z"));
    }

    #[test]
    fn across_the_dst_change() {
        // 2026-03-07 12:00 PST; the next midnight (Mar 8) is still PST: 08:00Z.
        assert_eq!(next_pacific_midnight(at("2026-03-07T20:00:00Z")), at("2026-03-08T08:00:00Z"));
        // 2026-03-08 12:00 PDT; Mar 9 midnight PDT = 07:00Z.
        assert_eq!(next_pacific_midnight(at("2026-03-08T19:00:00Z")), at("2026-03-09T07:00:00Z"));
    }
}
