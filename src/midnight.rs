//! When days end: the next midnight in a time zone, for daily quotas
//! (Google's reset at midnight Pacific) and clients' daily limits.

use chrono::{DateTime, Days, TimeZone, Utc};
use chrono_tz::Tz;
use std::time::{Duration, SystemTime};

/// The next midnight in `zone` after `now`.
pub fn next_midnight(zone: Tz, now: SystemTime) -> SystemTime {
    let now_utc: DateTime<Utc> = now.into();
    let local_date = now_utc.with_timezone(&zone).date_naive();
    let next_date = local_date.checked_add_days(Days::new(1)).unwrap_or(local_date);
    let midnight = next_date.and_hms_opt(0, 0, 0).unwrap_or_default();
    match zone.from_local_datetime(&midnight).earliest() {
        Some(moment) => moment.with_timezone(&Utc).into(),
        // A zone that skips midnight (a DST jump at 00:00): a day from now is safe.
        None => now + Duration::from_secs(24 * 3600),
    }
}
