//! How calls leave: each proxy with its state, its keys, latency and
//! errors; each relay the same. Credentials never appear: proxies show their
//! name and `scheme://host:port`, relays their URL without user info.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::error::ApiResult;
use crate::admin::security::AdminAuth;
use crate::config::RelayOrder;
use crate::upstream::KeyRoute;
use crate::upstream::egress::HealthView;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

pub struct EgressApi {
    pub ctx: Arc<AdminContext>,
}

/// Fingerprints listed per proxy at most (the count is always whole).
const KEYS_LISTED: usize = 1000;

/// A proxy or relay's health.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct HealthFigures {
    /// `ok` or `resting` (it failed to carry calls; its keys use the next proxy).
    state: String,
    /// When the rest ends (ms since the epoch).
    resting_until_ms: Option<u64>,
    /// Failures in a row.
    failures_in_row: u32,
    /// Calls it was asked to carry.
    calls: u64,
    /// Calls it failed to carry.
    failures: u64,
    /// Mean time to the response head, in ms.
    mean_latency_ms: Option<u64>,
    /// Its last failure, in gemgate's words.
    last_error: Option<String>,
    /// When (ms since the epoch).
    last_error_ms: Option<u64>,
}

impl From<HealthView> for HealthFigures {
    fn from(view: HealthView) -> Self {
        Self {
            state: view.state,
            resting_until_ms: view.resting_until_ms,
            failures_in_row: view.failures_in_row,
            calls: view.calls,
            failures: view.failures,
            mean_latency_ms: view.mean_latency_ms,
            last_error: view.last_error,
            last_error_ms: view.last_error_ms,
        }
    }
}

/// One proxy.
#[derive(Object)]
struct ProxyView {
    /// Its name (`NAME=` in its entry, else host:port): what `proxy=NAME` in a key file names.
    name: String,
    /// `scheme://host:port`, without credentials.
    label: String,
    /// Health.
    health: HealthFigures,
    /// Keys pinned to it (while it rests, their calls leave through the next proxy).
    key_count: u64,
    /// Their fingerprints (the first 1,000).
    keys: Vec<String>,
}

/// One relay.
#[derive(Object)]
struct RelayView {
    /// Its base URL (without user info).
    base: String,
    /// Health.
    health: HealthFigures,
}

/// Egress as a whole.
#[derive(Object)]
struct EgressView {
    /// Proxies, in configured order (config.toml, then the proxies file).
    proxies: Vec<ProxyView>,
    /// Keys that leave directly (no proxy configured, or `proxy=direct`).
    direct_keys: u64,
    /// Relays (one: `upstream.base_url`).
    relays: Vec<RelayView>,
    /// `ordered` or `rotate`.
    relay_order: String,
}

/// A URL without user info, for display.
fn without_userinfo(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.as_str().trim_end_matches('/').to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

#[OpenApi(tag = "AdminTag::Insight")]
impl EgressApi {
    /// Proxies and relays: state, keys, latency and errors.
    #[oai(path = "/egress", method = "get")]
    async fn egress(&self, _auth: AdminAuth) -> ApiResult<Json<EgressView>> {
        let upstream = &self.ctx.state.dispatcher.upstream;
        let proxies = upstream.proxies();
        let mut keys: Vec<Vec<String>> = vec![Vec::new(); proxies.routes.len()];
        let mut counts = vec![0u64; proxies.routes.len()];
        let mut direct_keys = 0;
        for slot in self.ctx.pool().slots() {
            let route = KeyRoute::from(&slot.record);
            match proxies.home(&route) {
                Some(index) => {
                    counts[index] += 1;
                    if keys[index].len() < KEYS_LISTED {
                        keys[index].push(slot.record.fingerprint.to_string());
                    }
                }
                None => direct_keys += 1,
            }
        }
        let proxies = proxies
            .routes
            .iter()
            .zip(keys.into_iter().zip(counts))
            .map(|(route, (keys, key_count))| ProxyView {
                name: route.spec.name.to_string(),
                label: route.spec.label.clone(),
                health: route.health.view().into(),
                key_count,
                keys,
            })
            .collect();
        let relays = upstream.relays();
        Ok(Json(EgressView {
            proxies,
            direct_keys,
            relays: relays
                .list
                .iter()
                .map(|relay| RelayView { base: without_userinfo(&relay.base), health: relay.health.view().into() })
                .collect(),
            relay_order: match relays.order {
                RelayOrder::Ordered => "ordered",
                RelayOrder::Rotate => "rotate",
            }
            .into(),
        }))
    }
}
