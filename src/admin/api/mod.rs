//! The admin API (poem-openapi): every endpoint, grouped by what it is about.
//! The OpenAPI document is built from these types, so it cannot drift.

mod clients;
mod egress;
mod export;
mod insight;
mod keys;
mod session;
mod settings;
mod usage;

use super::AdminContext;
use poem_openapi::{OpenApiService, Tags};
use std::sync::Arc;

/// Groups of endpoints in the document.
#[derive(Tags)]
pub enum AdminTag {
    /// Signing in and out, and what is running.
    Session,
    /// Upstream Gemini keys: state, bulk actions, scans.
    Keys,
    /// Keys that clients use to call gemgate.
    Clients,
    /// Statistics and logs.
    Insight,
    /// config.toml, the policy script and reloads.
    Settings,
}

/// Every group of endpoints.
pub type Apis = (
    session::SessionApi,
    keys::KeysApi,
    clients::ClientsApi,
    insight::InsightApi,
    egress::EgressApi,
    usage::UsageApi,
    settings::SettingsApi,
);

/// The API as one service. `server` is relative, so the docs UI works under
/// any path prefix a reverse proxy adds.
pub fn service(ctx: Arc<AdminContext>) -> OpenApiService<Apis, ()> {
    let apis = (
        session::SessionApi { ctx: ctx.clone() },
        keys::KeysApi { ctx: ctx.clone() },
        clients::ClientsApi { ctx: ctx.clone() },
        insight::InsightApi { ctx: ctx.clone() },
        egress::EgressApi { ctx: ctx.clone() },
        usage::UsageApi { ctx: ctx.clone() },
        settings::SettingsApi { ctx },
    );
    OpenApiService::new(apis, "gemgate admin API", env!("CARGO_PKG_VERSION"))
        .description(
            "Manage a gemgate: its upstream keys, client keys, statistics, logs, config and policy. \
             Authenticate with the admin key as a bearer token, or sign in with POST /login for a \
             session cookie (then send the returned csrf_token as `x-csrf-token` on every change). \
             Every error is JSON: {\"error\": {\"code\", \"message\"}}.",
        )
        .server("api")
}
