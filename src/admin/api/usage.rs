//! Usage and cost: hourly rollups per client, model and key group.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::error::ApiResult;
use crate::admin::security::AdminAuth;
use crate::store::{UsageBy, UsageRow, UsageTotals};
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct UsageApi {
    pub ctx: Arc<AdminContext>,
}

/// How usage is split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
enum By {
    /// Per client.
    Client,
    /// Per model.
    Model,
    /// Per key group.
    Group,
}

/// Requests, tokens and cost.
#[derive(Object)]
struct TotalsView {
    /// Requests Google answered.
    requests: i64,
    /// Prompt tokens, cached ones included.
    input_tokens: i64,
    /// Output tokens, thinking included.
    output_tokens: i64,
    /// Thinking tokens (part of output).
    thinking_tokens: i64,
    /// Prompt tokens served from Gemini's context cache.
    cached_tokens: i64,
    /// Estimated cost in US dollars, from `[prices]` (0 for unpriced models).
    cost_usd: f64,
}

impl From<UsageTotals> for TotalsView {
    fn from(t: UsageTotals) -> Self {
        Self {
            requests: t.requests,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            thinking_tokens: t.thinking_tokens,
            cached_tokens: t.cached_tokens,
            cost_usd: t.cost_micros as f64 / 1e6,
        }
    }
}

/// One client's, model's or group's usage over the range.
#[derive(Object)]
struct NamedTotals {
    name: String,
    #[oai(flatten)]
    totals: TotalsView,
}

/// One hour of one client's, model's or group's usage.
#[derive(Object)]
struct HourView {
    /// The hour's start (Unix milliseconds).
    hour_ms: i64,
    name: String,
    #[oai(flatten)]
    totals: TotalsView,
}

/// Usage over a range.
#[derive(Object)]
struct UsageView {
    from_ms: i64,
    to_ms: i64,
    /// `client`, `model` or `group`.
    by: String,
    /// Everything in the range.
    totals: TotalsView,
    /// Per name, most expensive (then most requests) first.
    items: Vec<NamedTotals>,
    /// Per hour and name, oldest first (for charts).
    hours: Vec<HourView>,
    /// Whether config declares any price (`[prices]`); without, costs are 0.
    priced: bool,
}

#[OpenApi(tag = "AdminTag::Insight")]
impl UsageApi {
    /// Requests, tokens (input, output, thinking, cached) and estimated cost
    /// per client, model or key group, per hour, over the last `days` days
    /// (1 to 400; kept for `store.usage_retention_days`).
    #[oai(path = "/usage", method = "get")]
    async fn usage(
        &self,
        _auth: AdminAuth,
        by: Query<Option<By>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "400")))] days: Query<Option<i64>>,
    ) -> ApiResult<Json<UsageView>> {
        let by = by.0.unwrap_or(By::Client);
        let to_ms = crate::store::now_ms();
        let from_ms = to_ms - days.0.unwrap_or(7) * 86_400_000;
        let split = match by {
            By::Client => UsageBy::Client,
            By::Model => UsageBy::Model,
            By::Group => UsageBy::Group,
        };
        let rows = self.ctx.store().usage(from_ms, to_ms + 1, split).await?;
        let mut totals = UsageTotals::default();
        let mut per_name: BTreeMap<&str, UsageTotals> = BTreeMap::new();
        for row in &rows {
            totals += row.totals;
            *per_name.entry(&row.name).or_default() += row.totals;
        }
        let mut items: Vec<(&str, UsageTotals)> = per_name.into_iter().collect();
        items.sort_by_key(|(_, t)| std::cmp::Reverse((t.cost_micros, t.requests)));
        let items =
            items.into_iter().map(|(name, t)| NamedTotals { name: name.to_string(), totals: t.into() }).collect();
        let priced = !self.ctx.reloader.current().config.prices.is_empty();
        let hours = rows
            .into_iter()
            .map(|UsageRow { hour_ms, name, totals }| HourView { hour_ms, name, totals: totals.into() })
            .collect();
        let by = match by {
            By::Client => "client",
            By::Model => "model",
            By::Group => "group",
        };
        Ok(Json(UsageView { from_ms, to_ms, by: by.into(), totals: totals.into(), items, hours, priced }))
    }
}
