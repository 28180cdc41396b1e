//! When days end: the next midnight in a time zone, for daily quotas
//! (Google's reset at midnight Pacific), clients' daily limits and budget
//! periods.

use crate::config::BudgetPeriod;
use chrono::{DateTime, Datelike, Days, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::{Duration, SystemTime};

/// The next midnight in `zone` after `now`.
pub fn next_midnight(zone: Tz, now: SystemTime) -> SystemTime {
    let local_date = local_date(zone, now);
    let next_date = local_date.checked_add_days(Days::new(1)).unwrap_or(local_date);
    // A zone that skips midnight (a DST jump at 00:00): a day from now is safe.
    midnight_of(zone, next_date).unwrap_or(now + Duration::from_secs(24 * 3600))
}

/// The budget period holding `now` in `zone`: its first and its end
/// (midnight starting the day, the Monday, or the first of the month).
pub fn period(zone: Tz, now: SystemTime, period: BudgetPeriod) -> (SystemTime, SystemTime) {
    let today = local_date(zone, now);
    let first = match period {
        BudgetPeriod::Day => today,
        BudgetPeriod::Week => today - Days::new(u64::from(today.weekday().num_days_from_monday())),
        BudgetPeriod::Month => today.with_day(1).unwrap_or(today),
    };
    let next = match period {
        BudgetPeriod::Day => first.checked_add_days(Days::new(1)),
        BudgetPeriod::Week => first.checked_add_days(Days::new(7)),
        BudgetPeriod::Month => first.checked_add_months(Months::new(1)),
    };
    let start = midnight_of(zone, first).unwrap_or(now);
    let end = next.and_then(|next| midnight_of(zone, next)).unwrap_or_else(|| next_midnight(zone, now));
    (start.min(now), end.max(now))
}

fn local_date(zone: Tz, now: SystemTime) -> NaiveDate {
    let now_utc: DateTime<Utc> = now.into();
    now_utc.with_timezone(&zone).date_naive()
}

fn midnight_of(zone: Tz, date: NaiveDate) -> Option<SystemTime> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    Some(zone.from_local_datetime(&midnight).earliest()?.with_timezone(&Utc).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc).into()
    }

    #[test]
    fn periods_start_and_end_at_local_midnight() {
        let zone: Tz = "Asia/Shanghai".parse().unwrap();
        // Wednesday 2026-12-02 01:00 in Shanghai.
        let now = at("2026-12-01T17:00:00Z");
        assert_eq!(period(zone, now, BudgetPeriod::Day), (at("2026-12-01T16:00:00Z"), at("2026-12-02T16:00:00Z")));
        assert_eq!(period(zone, now, BudgetPeriod::Week), (at("2026-11-29T16:00:00Z"), at("2026-12-06T16:00:00Z")));
        assert_eq!(period(zone, now, BudgetPeriod::Month), (at("2026-11-30T16:00:00Z"), at("2026-12-31T16:00:00Z")));
        assert_eq!(next_midnight(zone, now), at("2026-12-02T16:00:00Z"));
    }
}
