//! Reading the logs back for the admin: filtered, paged request and error
//! rows, and the raw rows that statistics are computed from. Filters become
//! `?` placeholders in SQL built from constants; every value is bound.

use super::rows::{LOG_COLUMNS, RequestRecord, int};
use super::{Store, StoreError};
use crate::keys::Fingerprint;
use serde::Serialize;
use sqlx::Row;
use std::borrow::Cow;
use std::sync::Arc;

/// One failed upstream attempt, as logged (a request that failed over and then
/// succeeded still leaves its failed attempts here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrorRecord {
    /// Unix milliseconds of the attempt's end.
    pub at_ms: i64,
    /// The client.
    pub client: Arc<str>,
    /// The API route.
    pub route: Cow<'static, str>,
    /// The model.
    pub model: Arc<str>,
    /// The key tried.
    pub key_fingerprint: Option<Fingerprint>,
    /// Which attempt of the request (1-based).
    pub attempt: i64,
    /// Google's HTTP status (0: no answer).
    pub http_status: i64,
    /// Google's canonical status (`RESOURCE_EXHAUSTED`, …), empty when none.
    pub google_status: String,
    /// `ErrorInfo.reason`, when given.
    pub reason: Option<String>,
    /// gemgate's class of the failure (`rate_limited`, `invalid_key`, …).
    pub kind: String,
    /// Google's message (keys redacted).
    pub message: String,
    /// The request's `x-request-id`.
    pub request_id: Option<Arc<str>>,
    /// How long the attempt took, milliseconds.
    pub latency_ms: Option<i64>,
}

/// Which log rows to read.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    /// From this Unix millisecond (inclusive).
    pub from_ms: Option<i64>,
    /// Until this Unix millisecond (exclusive).
    pub to_ms: Option<i64>,
    /// Exact status (HTTP status to the client, or Google's for errors).
    pub status: Option<i64>,
    /// A class of statuses: 2 for 2xx, 4 for 4xx, 5 for 5xx.
    pub status_class: Option<i64>,
    /// Exact request id.
    pub request_id: Option<String>,
    /// Exact model.
    pub model: Option<String>,
    /// Exact client.
    pub client: Option<String>,
    /// Exact key fingerprint.
    pub key_fingerprint: Option<String>,
    /// Text inside the error or message (case-insensitive).
    pub text: Option<String>,
}

/// A page of rows and how many match in all.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The rows, newest first.
    pub rows: Vec<T>,
    /// Rows matching the filter.
    pub total: i64,
}

/// The columns of a request row that statistics need.
#[derive(Clone, Debug)]
pub struct StatRow {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The client.
    pub client: String,
    /// The model.
    pub model: String,
    /// The key of the last attempt.
    pub key_fingerprint: Option<String>,
    /// Status to the client.
    pub status: i64,
    /// Milliseconds.
    pub latency_ms: i64,
    /// Tokens.
    pub total_tokens: i64,
}

const ERROR_COLUMNS: &str = "at_ms, client, route, model, key_fp, attempt, http_status, google_status, reason, kind, \
                             message, request_id, latency_ms";

enum Bound {
    Int(i64),
    Text(String),
}

/// `WHERE …` for `filter`, with its values in order. `status` and `text`
/// name the table's own columns.
fn where_clause(filter: &LogFilter, status: &str, text: &str) -> (String, Vec<Bound>) {
    let mut parts: Vec<String> = Vec::new();
    let mut values = Vec::new();
    let mut add = |sql: String, value: Bound| {
        parts.push(sql);
        values.push(value);
    };
    if let Some(from) = filter.from_ms {
        add("at_ms >= ?".into(), Bound::Int(from));
    }
    if let Some(to) = filter.to_ms {
        add("at_ms < ?".into(), Bound::Int(to));
    }
    if let Some(code) = filter.status {
        add(format!("{status} = ?"), Bound::Int(code));
    }
    if let Some(class) = filter.status_class {
        add(format!("{status} >= ?"), Bound::Int(class * 100));
        add(format!("{status} < ?"), Bound::Int(class * 100 + 100));
    }
    if let Some(id) = &filter.request_id {
        // gemgate's ids carry their time: the at_ms index narrows the search.
        if let Some(at_ms) = request_id_time(id) {
            add("at_ms >= ?".into(), Bound::Int(at_ms - REQUEST_ID_SLACK_MS));
            add("at_ms <= ?".into(), Bound::Int(at_ms + REQUEST_ID_SLACK_MS));
        }
        add("request_id = ?".into(), Bound::Text(id.clone()));
    }
    if let Some(model) = &filter.model {
        add("model = ?".into(), Bound::Text(model.clone()));
    }
    if let Some(client) = &filter.client {
        add("client = ?".into(), Bound::Text(client.clone()));
    }
    if let Some(fp) = &filter.key_fingerprint {
        add("key_fp = ?".into(), Bound::Text(fp.clone()));
    }
    if let Some(needle) = &filter.text {
        add(format!("LOWER({text}) LIKE ? ESCAPE '!'"), Bound::Text(like_pattern(needle)));
    }
    if parts.is_empty() { (String::new(), values) } else { (format!(" WHERE {}", parts.join(" AND ")), values) }
}

/// A request id gemgate makes: its arrival in Unix milliseconds (12 hex
/// digits), then 8 random hex digits, so ids sort by time and say when
/// their request came.
pub fn new_request_id(random: u32) -> String {
    format!("{:012x}{random:08x}", super::rows::now_ms().max(0))
}

/// The time a request id of gemgate's names (`None` for a client's own id).
fn request_id_time(id: &str) -> Option<i64> {
    let hex = id.len() == 20 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    hex.then(|| i64::from_str_radix(&id[..12], 16).ok())?
}

/// How far a request's row may lie from its id's time: the row keeps the
/// arrival time, which the id took a moment before.
const REQUEST_ID_SLACK_MS: i64 = 60_000;

/// `%needle%` with LIKE's wildcards escaped by `!`, lower-cased.
fn like_pattern(needle: &str) -> String {
    let mut out = String::from("%");
    for ch in needle.to_lowercase().chars() {
        if matches!(ch, '!' | '%' | '_') {
            out.push('!');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

fn bind_all<'q>(mut query: AnyQuery<'q>, values: &[Bound]) -> AnyQuery<'q> {
    for value in values {
        query = match value {
            Bound::Int(v) => query.bind(*v),
            Bound::Text(v) => query.bind(v.clone()),
        };
    }
    query
}

impl Store {
    async fn count(&self, table: &str, clause: &str, values: &[Bound]) -> Result<i64, StoreError> {
        let sql = self.dialect.sql(&format!("SELECT COUNT(*) FROM {table}{clause}"));
        let row = bind_all(sqlx::query(sql), values).fetch_one(&self.pool).await?;
        Ok(int(&row, 0)?)
    }

    /// Request rows matching `filter`, newest first.
    pub async fn find_requests(
        &self,
        filter: &LogFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Page<RequestRecord>, StoreError> {
        let (clause, values) = where_clause(filter, "status", "COALESCE(error, '')");
        let total = self.count("request_log", &clause, &values).await?;
        let sql = self.dialect.sql(&format!(
            "SELECT {LOG_COLUMNS} FROM request_log{clause} ORDER BY id DESC LIMIT {} OFFSET {}",
            limit.max(0),
            offset.max(0)
        ));
        let rows = bind_all(sqlx::query(sql), &values).fetch_all(&self.pool).await?;
        let rows = rows.iter().map(super::rows::request_row).collect::<Result<_, _>>()?;
        Ok(Page { rows, total })
    }

    /// Error rows matching `filter` (status is Google's), newest first.
    pub async fn find_errors(
        &self,
        filter: &LogFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Page<ErrorRecord>, StoreError> {
        let (clause, values) = where_clause(filter, "http_status", "message");
        let total = self.count("error_log", &clause, &values).await?;
        let sql = self.dialect.sql(&format!(
            "SELECT {ERROR_COLUMNS} FROM error_log{clause} ORDER BY id DESC LIMIT {} OFFSET {}",
            limit.max(0),
            offset.max(0)
        ));
        let rows = bind_all(sqlx::query(sql), &values).fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok(ErrorRecord {
                    at_ms: row.try_get(0)?,
                    client: Arc::from(row.try_get::<String, _>(1)?),
                    route: Cow::Owned(row.try_get(2)?),
                    model: Arc::from(row.try_get::<String, _>(3)?),
                    key_fingerprint: row.try_get::<Option<String>, _>(4)?.as_deref().and_then(Fingerprint::parse),
                    attempt: int(row, 5)?,
                    http_status: int(row, 6)?,
                    google_status: row.try_get(7)?,
                    reason: row.try_get(8)?,
                    kind: row.try_get(9)?,
                    message: row.try_get(10)?,
                    request_id: row.try_get::<Option<String>, _>(11)?.map(Arc::from),
                    latency_ms: row.try_get(12)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(Page { rows, total })
    }

    /// The newest `cap` attempts since `from_ms` that Google answered 429
    /// (most were absorbed by failover), for statistics: `status` is
    /// Google's, no tokens.
    pub async fn google_429_rows(&self, from_ms: i64, cap: i64) -> Result<Vec<StatRow>, StoreError> {
        self.stat_query(
            "SELECT at_ms, client, model, key_fp, http_status, latency_ms, 0 FROM error_log \
             WHERE at_ms >= ? AND http_status = 429",
            from_ms,
            cap,
        )
        .await
    }

    /// The newest `cap` rows of `select` (a `StatRow`'s columns in order,
    /// with one `at_ms >= ?`), newest first.
    async fn stat_query(&self, select: &str, from_ms: i64, cap: i64) -> Result<Vec<StatRow>, StoreError> {
        let sql = self.dialect.sql(&format!("{select} ORDER BY id DESC LIMIT {}", cap.max(0)));
        let rows = sqlx::query(sql).bind(from_ms).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(StatRow {
                    at_ms: row.try_get(0)?,
                    client: row.try_get(1)?,
                    model: row.try_get(2)?,
                    key_fingerprint: row.try_get(3)?,
                    status: int(row, 4)?,
                    // Attempts logged before latencies were kept have none.
                    latency_ms: row.try_get::<Option<i64>, _>(5)?.unwrap_or(0),
                    total_tokens: int(row, 6)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }
}

/// Appends error rows (one statement per row: errors are far fewer than requests).
pub(super) async fn insert_errors(store: &Store, records: &[ErrorRecord]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let sql = store
        .dialect
        .sql(&format!("INSERT INTO error_log ({ERROR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"));
    let mut tx = store.pool.begin().await?;
    for r in records {
        sqlx::query(sqlx::AssertSqlSafe(sql.0.clone()))
            .bind(r.at_ms)
            .bind(r.client.to_string())
            .bind(r.route.to_string())
            .bind(r.model.to_string())
            .bind(r.key_fingerprint.map(|f| f.to_string()))
            .bind(r.attempt)
            .bind(r.http_status)
            .bind(r.google_status.clone())
            .bind(r.reason.clone())
            .bind(r.kind.clone())
            .bind(r.message.clone())
            .bind(r.request_id.as_deref().map(String::from))
            .bind(r.latency_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn delete_errors_before(store: &Store, before_ms: i64) -> Result<u64, StoreError> {
    let sql = store.dialect.sql("DELETE FROM error_log WHERE at_ms < ?");
    Ok(sqlx::query(sql).bind(before_ms).execute(&store.pool).await?.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gemgates_request_ids_say_when() {
        let id = new_request_id(0xdeadbeef);
        let at = request_id_time(&id).unwrap();
        assert!((super::super::rows::now_ms() - at).abs() < 1000);
        assert!(id.ends_with("deadbeef"));
        assert_eq!(request_id_time("trace-me-0001"), None, "a client's own id");
        let filter = LogFilter { request_id: Some(id.clone()), ..LogFilter::default() };
        let (clause, _) = where_clause(&filter, "status", "error");
        assert_eq!(clause, " WHERE at_ms >= ? AND at_ms <= ? AND request_id = ?");
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_Off!"), "%50!%!_off!!%");
    }

    #[test]
    fn filters_bind_in_order() {
        let filter = LogFilter { status: Some(429), text: Some("Quota".into()), ..LogFilter::default() };
        let (clause, values) = where_clause(&filter, "status", "error");
        assert_eq!(clause, " WHERE status = ? AND LOWER(error) LIKE ? ESCAPE '!'");
        assert!(matches!(values.as_slice(), [Bound::Int(429), Bound::Text(t)] if t == "%quota%"));
        assert_eq!(where_clause(&LogFilter::default(), "status", "error").0, "");
    }
}
