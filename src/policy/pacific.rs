//! Google's daily quotas reset at midnight Pacific time (PST or PDT).

use chrono_tz::America::Los_Angeles;
use std::time::SystemTime;

/// The next midnight in America/Los_Angeles after `now`.
pub fn next_pacific_midnight(now: SystemTime) -> SystemTime {
    crate::midnight::next_midnight(Los_Angeles, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

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
