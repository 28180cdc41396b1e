//! Statistics from request-log rows: totals, time buckets and breakdowns with
//! success rate, latency percentiles and tokens. Pure, so it is tested alone.

use crate::store::StatRow;
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
    latencies: Vec<i64>,
}

impl Accumulator {
    fn add(&mut self, row: &StatRow) {
        self.requests += 1;
        if row.status >= 400 {
            self.errors += 1;
        }
        self.tokens += row.total_tokens.max(0);
        self.latencies.push(row.latency_ms);
    }

    fn figures(mut self) -> Figures {
        self.latencies.sort_unstable();
        let pick = |p: f64| -> i64 {
            if self.latencies.is_empty() {
                return 0;
            }
            // Nearest rank.
            let rank = ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
            self.latencies[rank - 1]
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

fn ranked(map: BTreeMap<String, Accumulator>) -> Vec<(String, Figures)> {
    let mut out: Vec<(String, Figures)> = map.into_iter().map(|(k, a)| (k, a.figures())).collect();
    out.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then_with(|| a.0.cmp(&b.0)));
    out
}

/// Summarises `rows` from `from_ms` to `to_ms` in buckets of `bucket_ms`;
/// `group_of` names the key group of a key fingerprint.
pub fn summarize(
    rows: &[StatRow],
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    group_of: impl Fn(&str) -> Option<String>,
) -> Summary {
    let bucket_ms = bucket_ms.max(1);
    let first = from_ms - from_ms.rem_euclid(bucket_ms);
    let count = ((to_ms - first) / bucket_ms + 1).clamp(1, 10_000) as usize;
    let mut buckets: Vec<Accumulator> = (0..count).map(|_| Accumulator::default()).collect();
    let mut totals = Accumulator::default();
    let (mut models, mut groups, mut clients) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for row in rows.iter().filter(|r| r.at_ms >= from_ms && r.at_ms <= to_ms) {
        totals.add(row);
        if let Some(bucket) = buckets.get_mut(((row.at_ms - first) / bucket_ms) as usize) {
            bucket.add(row);
        }
        let model = if row.model.is_empty() { "(none)".to_string() } else { row.model.clone() };
        models.entry(model).or_insert_with(Accumulator::default).add(row);
        let group = row.key_fingerprint.as_deref().and_then(&group_of).unwrap_or_else(|| "(no key)".to_string());
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

    fn row(at_ms: i64, status: i64, latency_ms: i64, model: &str) -> StatRow {
        StatRow {
            at_ms,
            client: "c".into(),
            model: model.into(),
            key_fingerprint: Some("aaaaaaaaaaaa".into()),
            status,
            latency_ms,
            total_tokens: 10,
        }
    }

    #[test]
    fn percentiles_rates_and_buckets() {
        let mut rows: Vec<StatRow> = (1..=100).map(|i| row(1000 + i, 200, i, "m1")).collect();
        rows.push(row(2500, 429, 5, "m2"));
        let s = summarize(&rows, 1000, 2999, 1000, |_| Some("paid".into()));
        assert_eq!(s.totals.requests, 101);
        assert_eq!(s.totals.errors, 1);
        assert_eq!((s.totals.p50_ms, s.totals.p99_ms), (50, 99));
        assert_eq!(s.buckets.len(), 2);
        assert_eq!((s.buckets[0].0, s.buckets[0].1.requests), (1000, 100));
        assert_eq!(s.buckets[1].1.errors, 1);
        assert_eq!(s.by_model[0].0, "m1");
        assert_eq!(s.by_group, vec![("paid".to_string(), s.totals.clone())]);
        assert_eq!(s.totals.tokens, 1010);
    }

    #[test]
    fn no_rows_is_all_zero_with_full_success() {
        let s = summarize(&[], 0, 59_999, 60_000, |_| None);
        assert_eq!(s.totals.requests, 0);
        assert_eq!(s.totals.success_rate, 1.0);
        assert_eq!(s.buckets.len(), 1);
    }
}
