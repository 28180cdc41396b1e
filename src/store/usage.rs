//! Usage rollups: requests, tokens and cost per hour, client, model and key
//! group. The request path adds one reply to an in-memory total (under the
//! writer's lock); the writer adds the totals to their rows at each flush, so
//! the table grows by rollups, not by requests.

use super::{Dialect, Store, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::Arc;

/// Where one reply's usage is added up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UsageKey {
    /// The hour it began (Unix milliseconds, a multiple of 3,600,000).
    pub hour_ms: i64,
    /// The client's name.
    pub client: Arc<str>,
    /// The model.
    pub model: Arc<str>,
    /// The key group that served it.
    pub group: Arc<str>,
}

/// Requests, tokens and cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    /// Requests served.
    pub requests: i64,
    /// Prompt tokens (cached ones included).
    pub input_tokens: i64,
    /// Output tokens (thinking included).
    pub output_tokens: i64,
    /// Thinking tokens (part of output).
    pub thinking_tokens: i64,
    /// Prompt tokens served from the context cache.
    pub cached_tokens: i64,
    /// Estimated cost, millionths of a US dollar.
    pub cost_micros: i64,
}

impl std::ops::AddAssign for UsageTotals {
    fn add_assign(&mut self, other: Self) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.thinking_tokens += other.thinking_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cost_micros += other.cost_micros;
    }
}

/// How usage is split when read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageBy {
    /// Per client.
    Client,
    /// Per model.
    Model,
    /// Per key group.
    Group,
}

impl UsageBy {
    fn column(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Model => "model",
            Self::Group => "key_group",
        }
    }
}

/// One hour of one client's, model's or group's usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The hour (Unix milliseconds).
    pub hour_ms: i64,
    /// The client, model or group.
    pub name: String,
    /// What was used.
    #[serde(flatten)]
    pub totals: UsageTotals,
}

const HOUR_MS: i64 = 3_600_000;

/// The hour holding `at_ms`.
pub fn hour_of(at_ms: i64) -> i64 {
    at_ms - at_ms.rem_euclid(HOUR_MS)
}

pub(super) async fn add_usage(store: &Store, usage: &HashMap<UsageKey, UsageTotals>) -> Result<(), StoreError> {
    let update = match store.dialect {
        Dialect::MySql => {
            "ON DUPLICATE KEY UPDATE requests = requests + VALUES(requests), \
             input_tokens = input_tokens + VALUES(input_tokens), output_tokens = output_tokens + VALUES(output_tokens), \
             thinking_tokens = thinking_tokens + VALUES(thinking_tokens), \
             cached_tokens = cached_tokens + VALUES(cached_tokens), cost_micros = cost_micros + VALUES(cost_micros)"
        }
        _ => {
            "ON CONFLICT (hour_ms, client, model, key_group) DO UPDATE SET \
             requests = usage_hourly.requests + excluded.requests, \
             input_tokens = usage_hourly.input_tokens + excluded.input_tokens, \
             output_tokens = usage_hourly.output_tokens + excluded.output_tokens, \
             thinking_tokens = usage_hourly.thinking_tokens + excluded.thinking_tokens, \
             cached_tokens = usage_hourly.cached_tokens + excluded.cached_tokens, \
             cost_micros = usage_hourly.cost_micros + excluded.cost_micros"
        }
    };
    let sql = store.dialect.placeholders(&format!(
        "INSERT INTO usage_hourly (hour_ms, client, model, key_group, requests, input_tokens, output_tokens, \
         thinking_tokens, cached_tokens, cost_micros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) {update}"
    ));
    let mut tx = store.pool.begin().await?;
    for (key, totals) in usage {
        sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .bind(key.hour_ms)
            .bind(key.client.to_string())
            .bind(key.model.to_string())
            .bind(key.group.to_string())
            .bind(totals.requests)
            .bind(totals.input_tokens)
            .bind(totals.output_tokens)
            .bind(totals.thinking_tokens)
            .bind(totals.cached_tokens)
            .bind(totals.cost_micros)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_usage_before(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let sql = store.dialect.sql("DELETE FROM usage_hourly WHERE hour_ms < ?");
    Ok(sqlx::query(sql).bind(before_ms).execute(&store.pool).await?.rows_affected())
}

impl Store {
    /// Usage per hour in `[from_ms, to_ms)`, split `by` client, model or
    /// group, oldest first.
    pub async fn usage(&self, from_ms: i64, to_ms: i64, by: UsageBy) -> Result<Vec<UsageRow>, StoreError> {
        let column = by.column();
        let sums = ["requests", "input_tokens", "output_tokens", "thinking_tokens", "cached_tokens", "cost_micros"]
            .map(|c| self.dialect.sum(c))
            .join(", ");
        let sql = self.dialect.sql(&format!(
            "SELECT hour_ms, {column}, {sums} FROM usage_hourly WHERE hour_ms >= ? AND hour_ms < ? \
             GROUP BY hour_ms, {column} ORDER BY hour_ms, {column}"
        ));
        let rows = sqlx::query(sql).bind(hour_of(from_ms)).bind(to_ms).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(UsageRow {
                    hour_ms: row.try_get(0)?,
                    name: row.try_get(1)?,
                    totals: UsageTotals {
                        requests: sum(row, 2)?,
                        input_tokens: sum(row, 3)?,
                        output_tokens: sum(row, 4)?,
                        thinking_tokens: sum(row, 5)?,
                        cached_tokens: sum(row, 6)?,
                        cost_micros: sum(row, 7)?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Tokens and micro-dollars each client spent since `since_ms` (from the
    /// start of the hour holding it), for budgets.
    pub async fn spent_since(&self, since_ms: i64) -> Result<HashMap<String, (i64, i64)>, StoreError> {
        let (tokens, cost) = (self.dialect.sum("input_tokens + output_tokens"), self.dialect.sum("cost_micros"));
        let sql = self
            .dialect
            .sql(&format!("SELECT client, {tokens}, {cost} FROM usage_hourly WHERE hour_ms >= ? GROUP BY client"));
        let rows = sqlx::query(sql).bind(hour_of(since_ms)).fetch_all(&self.pool).await?;
        let mut spent = HashMap::with_capacity(rows.len());
        for row in rows {
            spent.insert(row.try_get(0)?, (sum(&row, 1)?, sum(&row, 2)?));
        }
        Ok(spent)
    }
}

pub(super) fn sum(row: &sqlx::any::AnyRow, index: usize) -> Result<i64, sqlx::Error> {
    row.try_get::<Option<i64>, _>(index).map(Option::unwrap_or_default)
}

impl Dialect {
    /// `SUM(expr)` as a BIGINT in every dialect (PostgreSQL and MySQL sum
    /// BIGINTs as NUMERIC, which the Any driver does not read).
    pub(super) fn sum(self, expr: &str) -> String {
        match self {
            Self::MySql => format!("CAST(SUM({expr}) AS SIGNED)"),
            _ => format!("CAST(SUM({expr}) AS BIGINT)"),
        }
    }
}
