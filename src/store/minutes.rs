//! Request rollups per minute: requests, tokens and a latency histogram per
//! minute, client, model, key group and status. The ledger adds every
//! request here (sampled or not); the writer adds the totals to their rows
//! at each flush, so the stats and charts stay whole while request rows are
//! sampled and kept for a shorter time, and the table grows by rollups.

use super::{Dialect, Store, StoreError};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

/// Upper bounds (ms, inclusive) of the latency histogram's buckets; the
/// last takes the rest.
pub const LATENCY_BOUNDS_MS: [i64; 14] =
    [5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, i64::MAX];

const MINUTE_MS: i64 = 60_000;

/// The minute holding `at_ms`.
pub fn minute_of(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(MINUTE_MS)
}

/// Where one request is counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MinuteKey {
    /// The minute it was received in (Unix ms, a multiple of 60,000).
    pub minute_ms: i64,
    /// The client's name.
    pub client: Arc<str>,
    /// The model.
    pub model: Arc<str>,
    /// The group of the key that answered; empty when none did.
    pub group: Arc<str>,
    /// The status sent to the client.
    pub status: i64,
}

/// Requests, tokens and latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinuteTotals {
    /// Requests.
    pub requests: i64,
    /// Tokens (prompt and completion).
    pub tokens: i64,
    /// The slowest request, milliseconds.
    pub latency_max_ms: i64,
    /// Requests per latency bucket ([`LATENCY_BOUNDS_MS`]).
    pub latency: [i64; 14],
}

impl MinuteTotals {
    /// One request of `latency_ms` and `tokens`.
    pub fn one(latency_ms: i64, tokens: i64) -> Self {
        let mut latency = [0; 14];
        let bucket = LATENCY_BOUNDS_MS.iter().position(|&bound| latency_ms <= bound).unwrap_or(13);
        latency[bucket] = 1;
        Self { requests: 1, tokens: tokens.max(0), latency_max_ms: latency_ms.max(0), latency }
    }
}

impl std::ops::AddAssign for MinuteTotals {
    fn add_assign(&mut self, other: Self) {
        self.requests += other.requests;
        self.tokens += other.tokens;
        self.latency_max_ms = self.latency_max_ms.max(other.latency_max_ms);
        for (sum, n) in self.latency.iter_mut().zip(other.latency) {
            *sum += n;
        }
    }
}

/// One bucket's requests of one client, model, group and status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteRow {
    /// The bucket's start (Unix ms).
    pub at_ms: i64,
    /// The client.
    pub client: String,
    /// The model.
    pub model: String,
    /// The key group; empty when no key answered.
    pub group: String,
    /// The status sent to the client.
    pub status: i64,
    /// What they add up to.
    pub totals: MinuteTotals,
}

fn latency_columns() -> String {
    (0..14).map(|i| format!("lat_{i}")).collect::<Vec<_>>().join(", ")
}

pub(super) async fn add_minutes(store: &Store, minutes: &HashMap<MinuteKey, MinuteTotals>) -> Result<(), StoreError> {
    let lat = latency_columns();
    let sums: Vec<String> =
        ["requests", "tokens"].into_iter().map(String::from).chain((0..14).map(|i| format!("lat_{i}"))).collect();
    let update = match store.dialect {
        Dialect::MySql => {
            let mut set: Vec<String> = sums.iter().map(|c| format!("{c} = {c} + VALUES({c})")).collect();
            set.push("latency_max_ms = GREATEST(latency_max_ms, VALUES(latency_max_ms))".into());
            format!("ON DUPLICATE KEY UPDATE {}", set.join(", "))
        }
        dialect => {
            let mut set: Vec<String> =
                sums.iter().map(|c| format!("{c} = request_minutes.{c} + excluded.{c}")).collect();
            let greatest = if dialect == Dialect::Sqlite { "MAX" } else { "GREATEST" };
            set.push(format!("latency_max_ms = {greatest}(request_minutes.latency_max_ms, excluded.latency_max_ms)"));
            format!("ON CONFLICT (minute_ms, client, model, key_group, status) DO UPDATE SET {}", set.join(", "))
        }
    };
    let places = vec!["?"; 22].join(", ");
    let sql = store.dialect.placeholders(&format!(
        "INSERT INTO request_minutes (minute_ms, client, model, key_group, status, requests, tokens, \
         latency_max_ms, {lat}) VALUES ({places}) {update}"
    ));
    let mut tx = store.pool.begin().await?;
    for (key, totals) in minutes {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(key.minute_ms)
            .bind(bounded(&key.client, 64))
            .bind(bounded(&key.model, 128))
            .bind(bounded(&key.group, 128))
            .bind(key.status)
            .bind(totals.requests)
            .bind(totals.tokens)
            .bind(totals.latency_max_ms);
        for n in totals.latency {
            query = query.bind(n);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// At most `chars` characters of `text` (the columns' sizes).
fn bounded(text: &str, chars: usize) -> String {
    text.chars().take(chars).collect()
}

pub(super) async fn delete_minutes_before(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let sql = store.dialect.sql("DELETE FROM request_minutes WHERE minute_ms < ?");
    Ok(sqlx::query(sql).bind(before_ms).execute(&store.pool).await?.rows_affected())
}

impl Store {
    /// Requests from `from_ms` to `to_ms`, added up per bucket of
    /// `bucket_ms` (a multiple of a minute), client, model, group and status;
    /// at most `cap` rows, oldest first.
    pub async fn minute_rows(
        &self,
        from_ms: i64,
        to_ms: i64,
        bucket_ms: i64,
        cap: i64,
    ) -> Result<Vec<MinuteRow>, StoreError> {
        let bucket_ms = (bucket_ms.max(MINUTE_MS) / MINUTE_MS) * MINUTE_MS;
        let sums: Vec<String> = ["requests", "tokens"]
            .into_iter()
            .map(String::from)
            .chain((0..14).map(|i| format!("lat_{i}")))
            .map(|c| self.dialect.sum(&c))
            .collect();
        let bucket = format!("(minute_ms - minute_ms % {bucket_ms})");
        let sql = self.dialect.sql(&format!(
            "SELECT {bucket}, client, model, key_group, status, MAX(latency_max_ms), {} FROM request_minutes \
             WHERE minute_ms >= ? AND minute_ms <= ? GROUP BY {bucket}, client, model, key_group, status \
             ORDER BY 1 LIMIT ?",
            sums.join(", ")
        ));
        let rows = sqlx::query(sql).bind(minute_of(from_ms)).bind(to_ms).bind(cap).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let mut latency = [0; 14];
                for (i, n) in latency.iter_mut().enumerate() {
                    *n = super::usage::sum(row, 8 + i)?;
                }
                Ok(MinuteRow {
                    at_ms: row.try_get(0)?,
                    client: row.try_get(1)?,
                    model: row.try_get(2)?,
                    group: row.try_get(3)?,
                    status: super::rows::int(row, 4)?,
                    totals: MinuteTotals {
                        requests: super::usage::sum(row, 6)?,
                        tokens: super::usage::sum(row, 7)?,
                        latency_max_ms: super::usage::sum(row, 5)?,
                        latency,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}
