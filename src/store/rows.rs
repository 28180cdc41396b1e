//! Row shapes and the SQL that reads and writes them, in SQL that SQLite,
//! PostgreSQL and MySQL all accept (placeholders rewritten per dialect).

use super::{Store, StoreError};
use crate::key_state::{CooldownEntry, DisableReason, Disabled, KeySnapshot, RestSource};
use crate::keys::Fingerprint;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One served (or refused) client request, as logged. Shared strings keep
/// building one on the request path free of copies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Unix milliseconds when the request arrived.
    pub at_ms: i64,
    /// The client's name or key fingerprint.
    pub client: Arc<str>,
    /// Which API route (`generateContent`, `streamGenerateContent`, …).
    pub route: Cow<'static, str>,
    /// The model.
    pub model: Arc<str>,
    /// The fingerprint of the key of the last attempt, if any.
    pub key_fingerprint: Option<Fingerprint>,
    /// Upstream attempts made.
    pub attempts: i64,
    /// Status returned to the client.
    pub status: i64,
    /// Total time, milliseconds.
    pub latency_ms: i64,
    /// `usageMetadata.promptTokenCount`.
    pub prompt_tokens: i64,
    /// `usageMetadata.candidatesTokenCount`.
    pub completion_tokens: i64,
    /// `usageMetadata.totalTokenCount`.
    pub total_tokens: i64,
    /// The error, when it failed.
    pub error: Option<String>,
    /// Its `x-request-id`.
    pub request_id: Option<Arc<str>>,
}

/// Now in Unix milliseconds.
pub fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// A time in Unix milliseconds.
pub fn to_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

#[derive(Serialize, Deserialize)]
struct StoredCooldown {
    model: Option<String>,
    until_ms: i64,
    reason: String,
    /// Absent in rows written before sources were kept.
    #[serde(default)]
    source: String,
}

pub(super) async fn load_key_states(pool: &AnyPool) -> Result<HashMap<Fingerprint, KeySnapshot>, StoreError> {
    let rows = sqlx::query(
        "SELECT fingerprint, disabled_reason, disabled_at_ms, cooldowns, requests, successes, failures, \
         consecutive_failures, last_used_ms, last_error, latency_ms_total, tokens FROM key_state",
    )
    .fetch_all(pool)
    .await?;
    let mut states = HashMap::with_capacity(rows.len());
    for row in rows {
        let Some(fingerprint) = Fingerprint::parse(&row.try_get::<String, _>(0)?) else { continue };
        let reason: Option<String> = row.try_get(1)?;
        let disabled_at: Option<i64> = row.try_get(2)?;
        let cooldowns: Vec<StoredCooldown> = serde_json::from_str(&row.try_get::<String, _>(3)?).unwrap_or_default();
        let snapshot = KeySnapshot {
            disabled: reason
                .as_deref()
                .and_then(DisableReason::parse)
                .map(|reason| Disabled { reason, since: from_ms(disabled_at.unwrap_or(0)) }),
            cooldowns: cooldowns
                .into_iter()
                .map(|c| CooldownEntry {
                    model: c.model.map(Arc::from),
                    until: from_ms(c.until_ms),
                    reason: c.reason,
                    source: RestSource::parse(&c.source),
                })
                .collect(),
            requests: row.try_get::<i64, _>(4)? as u64,
            successes: row.try_get::<i64, _>(5)? as u64,
            failures: row.try_get::<i64, _>(6)? as u64,
            consecutive_failures: row.try_get::<i64, _>(7)? as u32,
            recent_failures: 0,
            last_used: row.try_get::<Option<i64>, _>(8)?.map(from_ms),
            last_failure: None,
            last_error: row.try_get(9)?,
            latency_ms_total: row.try_get::<i64, _>(10)? as u64,
            tokens: row.try_get::<i64, _>(11)? as u64,
            outcomes: Default::default(),
        };
        states.insert(fingerprint, snapshot);
    }
    Ok(states)
}

/// Replaces the stored state of each key (delete then insert: portable upsert).
pub(super) async fn save_key_states(
    store: &Store,
    states: &HashMap<Fingerprint, KeySnapshot>,
) -> Result<(), StoreError> {
    let dialect = store.dialect;
    let delete = dialect.sql("DELETE FROM key_state WHERE fingerprint = ?");
    let insert = dialect.sql(
        "INSERT INTO key_state (fingerprint, disabled_reason, disabled_at_ms, cooldowns, requests, successes, failures, \
         consecutive_failures, last_used_ms, last_error, latency_ms_total, tokens, updated_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let now = SystemTime::now();
    let mut tx = store.pool.begin().await?;
    for (fingerprint, snap) in states {
        let cooldowns: Vec<StoredCooldown> = snap
            .active_cooldowns(now)
            .map(|c| StoredCooldown {
                model: c.model.as_deref().map(String::from),
                until_ms: to_ms(c.until),
                reason: c.reason.clone(),
                source: c.source.as_str().to_string(),
            })
            .collect();
        let fp = fingerprint.to_string();
        sqlx::query(sqlx::AssertSqlSafe(delete.0.clone())).bind(fp.clone()).execute(&mut *tx).await?;
        sqlx::query(sqlx::AssertSqlSafe(insert.0.clone()))
            .bind(fp)
            .bind(snap.disabled.map(|d| d.reason.as_str().to_string()))
            .bind(snap.disabled.map(|d| to_ms(d.since)))
            .bind(serde_json::to_string(&cooldowns).unwrap_or_else(|_| "[]".into()))
            .bind(snap.requests as i64)
            .bind(snap.successes as i64)
            .bind(snap.failures as i64)
            .bind(snap.consecutive_failures as i64)
            .bind(snap.last_used.map(to_ms))
            .bind(snap.last_error.clone())
            .bind(snap.latency_ms_total as i64)
            .bind(snap.tokens as i64)
            .bind(to_ms(now))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) const LOG_COLUMNS: &str = "at_ms, client, route, model, key_fp, attempts, status, latency_ms, prompt_tokens, \
                           completion_tokens, total_tokens, error, request_id";

/// Appends request rows with multi-row inserts. Chunks are 100, 10 or 1 rows,
/// so at most three statement texts exist and each connection's prepared
/// statement cache keeps them.
pub(super) async fn insert_requests(store: &Store, records: &[RequestRecord]) -> Result<(), StoreError> {
    let mut rest = records;
    while !rest.is_empty() {
        let size = [100, 10, 1].into_iter().find(|&n| rest.len() >= n).unwrap_or(1);
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
        let values = vec![row; chunk.len()].join(", ");
        let sql = store.dialect.sql(&format!("INSERT INTO request_log ({LOG_COLUMNS}) VALUES {values}"));
        let mut query = sqlx::query(sql);
        for r in chunk {
            query = query
                .bind(r.at_ms)
                .bind(r.client.to_string())
                .bind(r.route.to_string())
                .bind(r.model.to_string())
                .bind(r.key_fingerprint.map(|f| f.to_string()))
                .bind(r.attempts)
                .bind(r.status)
                .bind(r.latency_ms)
                .bind(r.prompt_tokens)
                .bind(r.completion_tokens)
                .bind(r.total_tokens)
                .bind(r.error.clone())
                .bind(r.request_id.as_deref().map(String::from));
        }
        query.execute(&store.pool).await?;
    }
    Ok(())
}

pub(super) async fn delete_requests_before(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let sql = store.dialect.sql("DELETE FROM request_log WHERE at_ms < ?");
    Ok(sqlx::query(sql).bind(before_ms).execute(&store.pool).await?.rows_affected())
}

pub(super) async fn recent_requests(store: &Store, limit: i64) -> Result<Vec<RequestRecord>, StoreError> {
    let sql = store.dialect.sql(&format!("SELECT {LOG_COLUMNS} FROM request_log ORDER BY id DESC LIMIT ?"));
    let rows = sqlx::query(sql).bind(limit).fetch_all(&store.pool).await?;
    Ok(rows.iter().map(request_row).collect::<Result<_, _>>()?)
}

/// A request row read with [`LOG_COLUMNS`] in order.
pub(super) fn request_row(row: &sqlx::any::AnyRow) -> Result<RequestRecord, sqlx::Error> {
    Ok(RequestRecord {
        at_ms: row.try_get(0)?,
        client: Arc::from(row.try_get::<String, _>(1)?),
        route: Cow::Owned(row.try_get(2)?),
        model: Arc::from(row.try_get::<String, _>(3)?),
        key_fingerprint: row.try_get::<Option<String>, _>(4)?.as_deref().and_then(Fingerprint::parse),
        attempts: int(row, 5)?,
        status: int(row, 6)?,
        latency_ms: row.try_get(7)?,
        prompt_tokens: row.try_get(8)?,
        completion_tokens: row.try_get(9)?,
        total_tokens: row.try_get(10)?,
        error: row.try_get(11)?,
        request_id: row.try_get::<Option<String>, _>(12)?.map(Arc::from),
    })
}

/// INT columns come back as i32 on some drivers and i64 on others.
pub(super) fn int(row: &sqlx::any::AnyRow, index: usize) -> Result<i64, sqlx::Error> {
    row.try_get::<i64, _>(index).or_else(|_| row.try_get::<i32, _>(index).map(i64::from))
}
