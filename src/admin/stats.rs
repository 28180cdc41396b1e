//! Statistics from the per-minute request rollups (every request, however
//! the request log is sampled): totals, time buckets and breakdowns with
//! success rate, latency percentiles and tokens; Google's 429s from the
//! error log. Percentiles come from the rollups' latency histogram: each is
//! its bucket's upper bound, at most the slowest request seen. Pure, so it
//! is tested alone.

use crate::store::{LATENCY_BOUNDS_MS, MinuteRow, StatRow};
use std::collections::BTreeMap;

/// Figures for one set of requests.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Requests.
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    /// Share of requests that succeeded (1.0 with no requests).
    pub success_rate: f64,
    /// Latency percentiles, milliseconds.
    pub p50_ms: i64,
    /// 95th percentile.
    pub p95_ms: i64,
    /// 99th percentile.
    pub p99_ms: i64,
    /// Tokens.
    pub tokens: i64,
}

#[derive(Default)]
struct Accumulator {
    requests: u64,
    errors: u64,
    tokens: i64,
    latency: [i64; 14],
    latency_max: i64,
}

impl Accumulator {
    fn add(&mut self, row: &MinuteRow) {
        let requests = row.totals.requests.max(0) as u64;
        self.requests += requests;
        if row.status >= 400 {
            self.errors += requests;
        }
        self.tokens += row.totals.tokens.max(0);
        for (sum, n) in self.latency.iter_mut().zip(row.totals.latency) {
            *sum += n.max(0);
        }
        self.latency_max = self.latency_max.max(row.totals.latency_max_ms);
    }

    fn figures(self) -> Figures {
        let counted: i64 = self.latency.iter().sum();
        let pick = |p: f64| -> i64 {
            if counted == 0 {
                return 0;
            }
            // Nearest rank, read off the histogram.
            let rank = ((p * counted as f64).ceil() as i64).clamp(1, counted);
            let mut seen = 0;
            for (bound, n) in LATENCY_BOUNDS_MS.iter().zip(self.latency) {
                seen += n;
                if seen >= rank {
                    return (*bound).min(self.latency_max);
                }
            }
            self.latency_max
        };
        Figures {
            requests: self.requests,
            errors: self.errors,
            success_rate: if self.requests == 0 {
                1.0
            } else {
                (self.requests - self.errors) as f64 / self.requests as f64
            },
            p50_ms: pick(0.50),
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            tokens: self.tokens,
        }
    }
}

/// Statistics over a time range.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Everything in the range.
    pub totals: Figures,
    /// One entry per bucket, oldest first, empty buckets included: (start ms, figures).
    pub buckets: Vec<(i64, Figures)>,
    /// By model, busiest first.
    pub by_model: Vec<(String, Figures)>,
    /// By key group, busiest first.
    pub by_group: Vec<(String, Figures)>,
    /// By client, busiest first.
    pub by_client: Vec<(String, Figures)>,
}

/// What one time bucket counts for a chart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests.
    pub requests: u64,
    /// Requests answered with a status of 400 or more.
    pub errors: u64,
    /// Requests answered 429 (every key resting, or a client's limit).
    pub rate_limited: u64,
    /// Attempts Google answered 429 (failover absorbs most of them).
    pub google_429: u64,
}

/// What a chart splits its counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Nothing: one series.
    None,
    /// The model.
    Model,
    /// The key group (of the request's last key, or of the attempt's key).
    Group,
    /// The client.
    Client,
}

/// One line of a chart: a name and its counts per bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Series {
    /// A model, group or client; `(other)` for the rest; `all` unsplit.
    pub name: String,
    /// One per bucket, oldest first.
    pub points: Vec<Counts>,
}

/// Series kept by name; the rest are summed as `(other)`.
pub const TOP_SERIES: usize = 5;

/// Counts per bucket split by `split`, from request rollups (`rows`) and
/// failed attempts (`attempts`, where `status` is Google's; `group_of` names
/// the group of an attempt's key): the busiest [`TOP_SERIES`] names, then
/// `(other)`.
pub fn series(
    rows: &[MinuteRow],
    attempts: &[StatRow],
    window: (i64, i64, i64),
    split: Split,
    group_of: impl Fn(&str) -> Option<String>,
) -> Vec<Series> {
    let (from_ms, to_ms, bucket_ms) = (window.0, window.1, window.2.max(1));
    let first = from_ms - from_ms.rem_euclid(bucket_ms);
    let count = ((to_ms - first) / bucket_ms + 1).clamp(1, 10_000) as usize;
    let name_of = |model: &str, group: Option<String>, client: &str| match split {
        Split::None => "all".to_string(),
        Split::Model if model.is_empty() => "(none)".to_string(),
        Split::Model => model.to_string(),
        Split::Group => group.unwrap_or_else(|| "(no key)".to_string()),
        Split::Client => client.to_string(),
    };
    let mut by_name: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut count_in = |at_ms: i64, name: String, add: &dyn Fn(&mut Counts)| {
        // Rollups start at their minute, which may begin before the window.
        if at_ms < first || at_ms > to_ms {
            return;
        }
        let points = by_name.entry(name).or_insert_with(|| vec![Counts::default(); count]);
        if let Some(point) = points.get_mut(((at_ms - first) / bucket_ms) as usize) {
            add(point);
        }
    };
    for row in rows {
        let group = (!row.group.is_empty()).then(|| row.group.clone());
        let requests = row.totals.requests.max(0) as u64;
        count_in(row.at_ms, name_of(&row.model, group, &row.client), &|c| {
            c.requests += requests;
            c.errors += if row.status >= 400 { requests } else { 0 };
            c.rate_limited += if row.status == 429 { requests } else { 0 };
        });
    }
    for attempt in attempts.iter().filter(|a| a.status == 429 && a.at_ms >= from_ms) {
        let group = attempt.key_fingerprint.as_deref().and_then(&group_of);
        count_in(attempt.at_ms, name_of(&attempt.model, group, &attempt.client), &|c| c.google_429 += 1);
    }
    let weight = |points: &[Counts]| points.iter().map(|c| c.requests + c.google_429).sum::<u64>();
    let mut ranked: Vec<Series> = by_name.into_iter().map(|(name, points)| Series { name, points }).collect();
    ranked.sort_by(|a, b| weight(&b.points).cmp(&weight(&a.points)).then_with(|| a.name.cmp(&b.name)));
    if ranked.len() > TOP_SERIES + 1 {
        let rest = ranked.split_off(TOP_SERIES);
        let mut other = vec![Counts::default(); count];
        for series in rest {
            for (sum, c) in other.iter_mut().zip(series.points) {
                sum.requests += c.requests;
                sum.errors += c.errors;
                sum.rate_limited += c.rate_limited;
                sum.google_429 += c.google_429;
            }
        }
        ranked.push(Series { name: "(other)".to_string(), points: other });
    }
    if ranked.is_empty() {
        ranked.push(Series { name: "all".to_string(), points: vec![Counts::default(); count] });
    }
    ranked
}

fn ranked(map: BTreeMap<String, Accumulator>) -> Vec<(String, Figures)> {
    let mut out: Vec<(String, Figures)> = map.into_iter().map(|(k, a)| (k, a.figures())).collect();
    out.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Summarises the rollups `rows` from `from_ms` to `to_ms` in buckets of
/// `bucket_ms` (a rollup counts in the bucket its minute starts in).
pub fn summarize(rows: &[MinuteRow], from_ms: i64, to_ms: i64, bucket_ms: i64) -> Summary {
    let bucket_ms = bucket_ms.max(1);
    let first = from_ms - from_ms.rem_euclid(bucket_ms);
    let count = ((to_ms - first) / bucket_ms + 1).clamp(1, 10_000) as usize;
    let mut buckets: Vec<Accumulator> = (0..count).map(|_| Accumulator::default()).collect();
    let mut totals = Accumulator::default();
    let (mut models, mut groups, mut clients) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for row in rows.iter().filter(|r| r.at_ms >= first && r.at_ms <= to_ms) {
        totals.add(row);
        if let Some(bucket) = buckets.get_mut(((row.at_ms - first) / bucket_ms) as usize) {
            bucket.add(row);
        }
        let model = if row.model.is_empty() { "(none)".to_string() } else { row.model.clone() };
        models.entry(model).or_insert_with(Accumulator::default).add(row);
        let group = if row.group.is_empty() { "(no key)".to_string() } else { row.group.clone() };
        groups.entry(group).or_insert_with(Accumulator::default).add(row);
        clients.entry(row.client.clone()).or_insert_with(Accumulator::default).add(row);
    }
    Summary {
        totals: totals.figures(),
        buckets: buckets.into_iter().enumerate().map(|(i, a)| (first + i as i64 * bucket_ms, a.figures())).collect(),
        by_model: ranked(models),
        by_group: ranked(groups),
        by_client: ranked(clients),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(at_ms: i64, status: i64, latency_ms: i64, model: &str) -> MinuteRow {
        MinuteRow {
            at_ms,
            client: "c".into(),
            model: model.into(),
            group: "paid".into(),
            status,
            totals: crate::store::MinuteTotals::one(latency_ms, 10),
        }
    }

    fn attempt(at_ms: i64, status: i64, model: &str) -> StatRow {
        StatRow {
            at_ms,
            client: "c".into(),
            model: model.into(),
            key_fingerprint: Some("aaaaaaaaaaaa".into()),
            status,
            latency_ms: 1,
            total_tokens: 0,
        }
    }

    #[test]
    fn percentiles_rates_and_buckets() {
        let mut rows: Vec<MinuteRow> = (1..=100).map(|i| row(1000 + i, 200, i, "m1")).collect();
        rows.push(row(2500, 429, 5, "m2"));
        let s = summarize(&rows, 1000, 2999, 1000);
        assert_eq!(s.totals.requests, 101);
        assert_eq!(s.totals.errors, 1);
        // From the histogram: 50 is a bucket bound; 99 falls in the bucket up
        // to 100, and the slowest request took 100.
        assert_eq!((s.totals.p50_ms, s.totals.p99_ms), (50, 100));
        let one = summarize(&[row(1000, 200, 7, "m")], 1000, 1999, 1000);
        assert_eq!(one.totals.p50_ms, 7, "never above the slowest request");
        assert_eq!(s.buckets.len(), 2);
        assert_eq!((s.buckets[0].0, s.buckets[0].1.requests), (1000, 100));
        assert_eq!(s.buckets[1].1.errors, 1);
        assert_eq!(s.by_model[0].0, "m1");
        assert_eq!(s.by_group, vec![("paid".to_string(), s.totals.clone())]);
        assert_eq!(s.totals.tokens, 1010);
    }

    #[test]
    fn series_split_by_model_keep_the_busiest_and_sum_the_rest() {
        let mut rows: Vec<MinuteRow> = Vec::new();
        for (n, model) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
            for i in 0..(10 - n as i64) {
                rows.push(row(1000 + i, if i == 0 { 429 } else { 200 }, 1, model));
            }
        }
        let attempts = vec![attempt(2100, 429, "a"), attempt(2200, 503, "a")];
        let split = series(&rows, &attempts, (1000, 2999, 1000), Split::Model, |_| None);
        let names: Vec<&str> = split.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e", "(other)"]);
        assert_eq!(split[0].points.len(), 2);
        assert_eq!(split[0].points[0], Counts { requests: 10, errors: 1, rate_limited: 1, google_429: 0 });
        assert_eq!(split[0].points[1], Counts { requests: 0, errors: 0, rate_limited: 0, google_429: 1 });
        // f (5 rows) and g (4 rows) together.
        assert_eq!(split[5].points[0], Counts { requests: 9, errors: 2, rate_limited: 2, google_429: 0 });
        let all = series(&rows, &attempts, (1000, 2999, 1000), Split::None, |_| None);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].points[0].requests, rows.len() as u64);
    }

    #[test]
    fn no_rows_is_all_zero_with_full_success() {
        let s = summarize(&[], 0, 59_999, 60_000);
        assert_eq!(s.totals.requests, 0);
        assert_eq!(s.totals.success_rate, 1.0);
        assert_eq!(s.buckets.len(), 1);
    }
}
