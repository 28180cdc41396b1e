//! Statistics and the request and error logs.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::security::AdminAuth;
use crate::admin::stats::{Counts, Figures, Split, series, summarize};
use crate::key_state::StatusCounts;
use crate::store::{ErrorRecord, LogFilter, RequestRecord};
use poem_openapi::param::Query;
use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, ResponseContent};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

pub struct InsightApi {
    pub ctx: Arc<AdminContext>,
}

/// Rows read for statistics at most; a busier range is summarised from its
/// newest rows (`sampled` says so).
const STATS_ROW_CAP: i64 = 200_000;

/// The time range of statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum Range {
    /// Last hour, one-minute buckets.
    Hour,
    /// Last 24 hours, 30-minute buckets.
    Day,
    /// Last 7 days, 4-hour buckets.
    Week,
}

/// What the chart series split by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum SplitBy {
    /// One series.
    None,
    /// By model.
    Model,
    /// By key group.
    Group,
    /// By client.
    Client,
}

/// Counts of one time bucket.
#[derive(Object)]
struct CountsView {
    requests: u64,
    /// Requests answered with a status of 400 or more.
    errors: u64,
    /// Requests answered 429.
    rate_limited: u64,
    /// Attempts Google answered 429 (most are absorbed by failover).
    google_429: u64,
}

/// One chart series: a name and its counts per bucket (as `buckets`).
#[derive(Object)]
struct SeriesView {
    /// A model, key group or client; `(other)` sums the rest; `all` unsplit.
    name: String,
    points: Vec<CountsView>,
}

impl From<Counts> for CountsView {
    fn from(c: Counts) -> Self {
        Self { requests: c.requests, errors: c.errors, rate_limited: c.rate_limited, google_429: c.google_429 }
    }
}

/// Figures for a set of requests.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct FiguresView {
    requests: u64,
    /// Requests answered with a status of 400 or more.
    errors: u64,
    /// 0 to 1.
    success_rate: f64,
    p50_ms: i64,
    p95_ms: i64,
    p99_ms: i64,
    tokens: i64,
}

impl From<Figures> for FiguresView {
    fn from(f: Figures) -> Self {
        Self {
            requests: f.requests,
            errors: f.errors,
            success_rate: f.success_rate,
            p50_ms: f.p50_ms,
            p95_ms: f.p95_ms,
            p99_ms: f.p99_ms,
            tokens: f.tokens,
        }
    }
}

/// Figures of one time bucket.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct BucketView {
    /// Unix milliseconds of the bucket's start.
    start_ms: i64,
    #[oai(flatten)]
    figures: FiguresView,
}

/// Figures of one model, key group or client.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct NamedFigures {
    name: String,
    #[oai(flatten)]
    figures: FiguresView,
}

/// The pool right now.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct PoolHealth {
    keys: u64,
    active: u64,
    /// Resting on some models, serving the others.
    partial: u64,
    cooling: u64,
    disabled: u64,
    /// Attempts in flight now.
    in_flight: u64,
    /// Whether a health scan is running.
    scan_running: bool,
    /// Policy script faults since start.
    policy_faults: u64,
    /// Request rows dropped because the store fell behind.
    store_dropped: u64,
    /// `up` or `down`: the Redis link to the other replicas (absent: one process).
    cluster: Option<String>,
    /// Why the link is down.
    cluster_error: Option<String>,
}

/// Statistics of a range.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StatsView {
    from_ms: i64,
    to_ms: i64,
    bucket_ms: i64,
    /// True when the range held more rows than were read.
    sampled: bool,
    totals: FiguresView,
    buckets: Vec<BucketView>,
    by_model: Vec<NamedFigures>,
    by_group: Vec<NamedFigures>,
    by_client: Vec<NamedFigures>,
    /// Requests, errors, 429s and Google's 429s per bucket, split as asked
    /// (the five busiest names, then `(other)`).
    series: Vec<SeriesView>,
    pool: PoolHealth,
}

/// A logged request.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RequestLogView {
    at_ms: i64,
    client: String,
    route: String,
    model: String,
    key_fingerprint: Option<String>,
    attempts: i64,
    /// Status returned to the client.
    status: i64,
    latency_ms: i64,
    prompt_tokens: i64,
    completion_tokens: i64,
    total_tokens: i64,
    error: Option<String>,
    /// The `x-request-id` the client got: its failed attempts carry it too.
    request_id: Option<String>,
}

impl From<RequestRecord> for RequestLogView {
    fn from(r: RequestRecord) -> Self {
        Self {
            at_ms: r.at_ms,
            client: r.client.to_string(),
            route: r.route.into_owned(),
            model: r.model.to_string(),
            key_fingerprint: r.key_fingerprint.map(|f| f.to_string()),
            attempts: r.attempts,
            status: r.status,
            latency_ms: r.latency_ms,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            total_tokens: r.total_tokens,
            error: r.error,
            request_id: r.request_id.map(|id| id.to_string()),
        }
    }
}

/// A failed upstream attempt.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ErrorLogView {
    at_ms: i64,
    client: String,
    route: String,
    model: String,
    key_fingerprint: Option<String>,
    /// Which attempt of its request.
    attempt: i64,
    /// Google's HTTP status (0: no answer).
    http_status: i64,
    /// Google's status (`RESOURCE_EXHAUSTED`, …).
    google_status: String,
    /// Google's `ErrorInfo.reason`.
    reason: Option<String>,
    /// gemgate's class of the failure.
    kind: String,
    /// Google's message (keys redacted).
    message: String,
    /// The request's `x-request-id`.
    request_id: Option<String>,
    /// How long the attempt took.
    latency_ms: Option<i64>,
}

impl From<ErrorRecord> for ErrorLogView {
    fn from(r: ErrorRecord) -> Self {
        Self {
            at_ms: r.at_ms,
            client: r.client.to_string(),
            route: r.route.into_owned(),
            model: r.model.to_string(),
            key_fingerprint: r.key_fingerprint.map(|f| f.to_string()),
            attempt: r.attempt,
            http_status: r.http_status,
            google_status: r.google_status,
            reason: r.reason,
            kind: r.kind,
            message: r.message,
            request_id: r.request_id.map(|id| id.to_string()),
            latency_ms: r.latency_ms,
        }
    }
}

/// A page of request rows.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct RequestLogPage {
    total: i64,
    page: u32,
    per_page: u32,
    items: Vec<RequestLogView>,
}

/// A page of error rows.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ErrorLogPage {
    total: i64,
    page: u32,
    per_page: u32,
    items: Vec<ErrorLogView>,
}

/// A page of request rows, or every matching row (newest first, at most
/// [`EXPORT_ROWS`]) as CSV.
#[derive(ResponseContent)]
enum RequestLogBody {
    Json(Json<RequestLogPage>),
    #[oai(content_type = "text/csv; charset=utf-8")]
    Csv(PlainText<String>),
}

/// A page of error rows, or every matching row as CSV.
#[derive(ResponseContent)]
enum ErrorLogBody {
    Json(Json<ErrorLogPage>),
    #[oai(content_type = "text/csv; charset=utf-8")]
    Csv(PlainText<String>),
}

#[derive(ApiResponse)]
enum RequestLogAnswer {
    /// The rows (`content-disposition` names the file of a CSV export).
    #[oai(status = 200)]
    Ok(RequestLogBody, #[oai(header = "content-disposition")] Option<String>),
}

#[derive(ApiResponse)]
enum ErrorLogAnswer {
    /// The rows (`content-disposition` names the file of a CSV export).
    #[oai(status = 200)]
    Ok(ErrorLogBody, #[oai(header = "content-disposition")] Option<String>),
}

/// How a log is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum LogFormat {
    /// A page of JSON.
    Json,
    /// Every matching row (up to 10,000, newest first) as CSV.
    Csv,
}

/// Rows a CSV export holds at most.
const EXPORT_ROWS: i64 = 10_000;

/// A page of a log: 1-based page number and its size (default 50).
struct Paging {
    page: u32,
    per_page: u32,
}

impl Paging {
    fn of(page: Option<u32>, per_page: Option<u32>) -> Self {
        Self { page: page.unwrap_or(1), per_page: per_page.unwrap_or(50) }
    }

    fn limit(&self) -> i64 {
        i64::from(self.per_page)
    }

    fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.per_page)
    }
}

/// What the log endpoints filter by.
struct Asked {
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    status: Option<String>,
    model: Option<String>,
    client: Option<String>,
    key: Option<String>,
    q: Option<String>,
    request_id: Option<String>,
}

fn filter(asked: Asked) -> ApiResult<LogFilter> {
    let Asked { from_ms, to_ms, status, model, client, key, q, request_id } = asked;
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from > to
    {
        return Err(ApiError::bad_request("from_ms is after to_ms").with_id("range_backwards", &[]));
    }
    let key_fingerprint = match key.map(|k| k.trim().to_lowercase()).filter(|k| !k.is_empty()) {
        Some(k) if crate::keys::Fingerprint::parse(&k).is_none() => {
            return Err(ApiError::bad_request("key: give a key fingerprint (12 hex digits)")
                .with_id("not_fingerprint", &[("text", "")]));
        }
        other => other,
    };
    let nonempty = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    // `429` is one status, `4xx` a class.
    let (status, status_class) = match nonempty(status) {
        None => (None, None),
        Some(text) => match text.strip_suffix("xx") {
            Some(class) => (None, class.parse::<i64>().ok()),
            None => (text.parse::<i64>().ok(), None),
        },
    };
    Ok(LogFilter {
        from_ms,
        to_ms,
        status,
        status_class,
        request_id: nonempty(request_id),
        model: nonempty(model),
        client: nonempty(client),
        key_fingerprint,
        text: nonempty(q),
    })
}

#[OpenApi(tag = "AdminTag::Insight")]
impl InsightApi {
    /// Requests, success rate, latency percentiles and tokens over time, by
    /// model, key group and client; chart series of requests, errors and
    /// 429s split by `split`; the pool's health now.
    #[oai(path = "/stats", method = "get")]
    async fn stats(
        &self,
        _auth: AdminAuth,
        range: Query<Option<Range>>,
        split: Query<Option<SplitBy>>,
    ) -> ApiResult<Json<StatsView>> {
        let (span_ms, bucket_ms) = match range.0.unwrap_or(Range::Hour) {
            Range::Hour => (3_600_000, 60_000),
            Range::Day => (86_400_000, 1_800_000),
            Range::Week => (7 * 86_400_000, 4 * 3_600_000),
        };
        let to_ms = crate::store::now_ms();
        let from_ms = to_ms - span_ms;
        let rows = self.ctx.store().minute_rows(from_ms, to_ms, bucket_ms, STATS_ROW_CAP).await?;
        let slots = self.ctx.pool().slots();
        let groups: HashMap<String, String> =
            slots.iter().map(|s| (s.record.fingerprint.to_string(), s.record.group.to_string())).collect();
        let summary = summarize(&rows, from_ms, to_ms, bucket_ms);
        let attempts = self.ctx.store().google_429_rows(from_ms, STATS_ROW_CAP).await?;
        let split = match split.0.unwrap_or(SplitBy::None) {
            SplitBy::None => Split::None,
            SplitBy::Model => Split::Model,
            SplitBy::Group => Split::Group,
            SplitBy::Client => Split::Client,
        };
        let series = series(&rows, &attempts, (from_ms, to_ms, bucket_ms), split, |fp| groups.get(fp).cloned())
            .into_iter()
            .map(|s| SeriesView { name: s.name, points: s.points.into_iter().map(CountsView::from).collect() })
            .collect();
        let counts = StatusCounts::of(slots.iter().map(|slot| slot.snapshot()), SystemTime::now());
        let named = |list: Vec<(String, Figures)>| {
            list.into_iter().map(|(name, f)| NamedFigures { name, figures: f.into() }).collect()
        };
        Ok(Json(StatsView {
            from_ms,
            to_ms,
            bucket_ms,
            sampled: rows.len() as i64 >= STATS_ROW_CAP || attempts.len() as i64 >= STATS_ROW_CAP,
            totals: summary.totals.into(),
            buckets: summary
                .buckets
                .into_iter()
                .map(|(start_ms, f)| BucketView { start_ms, figures: f.into() })
                .collect(),
            by_model: named(summary.by_model),
            by_group: named(summary.by_group),
            by_client: named(summary.by_client),
            series,
            pool: PoolHealth {
                keys: slots.len() as u64,
                active: counts.active,
                partial: counts.partial,
                cooling: counts.cooling,
                disabled: counts.disabled,
                in_flight: self.ctx.pool().in_flight(),
                scan_running: self.ctx.pool().scan_report().running,
                policy_faults: self.ctx.state.dispatcher.policy.faults(),
                store_dropped: self.ctx.state.dispatcher.store.dropped(),
                cluster: self.ctx.state.cluster.as_ref().map(|l| if l.up() { "up" } else { "down" }.to_string()),
                cluster_error: self.ctx.state.cluster.as_ref().filter(|l| !l.up()).and_then(|l| l.last_error()),
            },
        }))
    }

    /// The request log, newest first. `status` is the status sent to the
    /// client (`429`) or a class (`4xx`); `q` searches the error text;
    /// `request_id` finds one request (its failed attempts are in the error
    /// log under the same id); `format=csv` exports every matching row.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/logs/requests", method = "get")]
    async fn requests(
        &self,
        _auth: AdminAuth,
        from_ms: Query<Option<i64>>,
        to_ms: Query<Option<i64>>,
        #[oai(validator(pattern = "^([1-5][0-9][0-9]|[1-5]xx)$"))] status: Query<Option<String>>,
        #[oai(validator(max_length = 128))] model: Query<Option<String>>,
        #[oai(validator(max_length = 64))] client: Query<Option<String>>,
        #[oai(validator(max_length = 32))] key: Query<Option<String>>,
        #[oai(validator(max_length = 200))] q: Query<Option<String>>,
        #[oai(validator(max_length = 64))] request_id: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100000")))] page: Query<Option<u32>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] per_page: Query<Option<u32>>,
        format: Query<Option<LogFormat>>,
    ) -> ApiResult<RequestLogAnswer> {
        let asked = Asked {
            from_ms: from_ms.0,
            to_ms: to_ms.0,
            status: status.0,
            model: model.0,
            client: client.0,
            key: key.0,
            q: q.0,
            request_id: request_id.0,
        };
        let filter = filter(asked)?;
        if format.0 == Some(LogFormat::Csv) {
            let found = self.ctx.store().find_requests(&filter, EXPORT_ROWS, 0).await?;
            tracing::info!(rows = found.rows.len(), "admin exported the request log");
            let csv = super::export::requests_csv(&found.rows)?;
            let name = Some("attachment; filename=\"gemgate-requests.csv\"".to_string());
            return Ok(RequestLogAnswer::Ok(RequestLogBody::Csv(PlainText(csv)), name));
        }
        let paging = Paging::of(page.0, per_page.0);
        let found = self.ctx.store().find_requests(&filter, paging.limit(), paging.offset()).await?;
        let page = RequestLogPage {
            total: found.total,
            page: paging.page,
            per_page: paging.per_page,
            items: found.rows.into_iter().map(Into::into).collect(),
        };
        Ok(RequestLogAnswer::Ok(RequestLogBody::Json(Json(page)), None))
    }

    /// The error log: every failed upstream attempt (also those a failover
    /// recovered from), with Google's status, reason and message. `status` is
    /// Google's HTTP status (`429`) or a class (`5xx`); `q` searches the
    /// message; `request_id` lists one request's failed attempts;
    /// `format=csv` exports every matching row.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/logs/errors", method = "get")]
    async fn errors(
        &self,
        _auth: AdminAuth,
        from_ms: Query<Option<i64>>,
        to_ms: Query<Option<i64>>,
        #[oai(validator(pattern = "^([0-5][0-9][0-9]|[1-5]xx|0)$"))] status: Query<Option<String>>,
        #[oai(validator(max_length = 128))] model: Query<Option<String>>,
        #[oai(validator(max_length = 64))] client: Query<Option<String>>,
        #[oai(validator(max_length = 32))] key: Query<Option<String>>,
        #[oai(validator(max_length = 200))] q: Query<Option<String>>,
        #[oai(validator(max_length = 64))] request_id: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100000")))] page: Query<Option<u32>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] per_page: Query<Option<u32>>,
        format: Query<Option<LogFormat>>,
    ) -> ApiResult<ErrorLogAnswer> {
        let asked = Asked {
            from_ms: from_ms.0,
            to_ms: to_ms.0,
            status: status.0,
            model: model.0,
            client: client.0,
            key: key.0,
            q: q.0,
            request_id: request_id.0,
        };
        let filter = filter(asked)?;
        if format.0 == Some(LogFormat::Csv) {
            let found = self.ctx.store().find_errors(&filter, EXPORT_ROWS, 0).await?;
            tracing::info!(rows = found.rows.len(), "admin exported the error log");
            let csv = super::export::errors_csv(&found.rows)?;
            let name = Some("attachment; filename=\"gemgate-errors.csv\"".to_string());
            return Ok(ErrorLogAnswer::Ok(ErrorLogBody::Csv(PlainText(csv)), name));
        }
        let paging = Paging::of(page.0, per_page.0);
        let found = self.ctx.store().find_errors(&filter, paging.limit(), paging.offset()).await?;
        let page = ErrorLogPage {
            total: found.total,
            page: paging.page,
            per_page: paging.per_page,
            items: found.rows.into_iter().map(Into::into).collect(),
        };
        Ok(ErrorLogAnswer::Ok(ErrorLogBody::Json(Json(page)), None))
    }
}
