//! Client keys: made here (shown once, stored hashed), listed, limited, revoked.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::security::AdminAuth;
use crate::store::{ClientLimits, StoredClientKey};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub struct ClientsApi {
    pub ctx: Arc<AdminContext>,
}

/// A client key as listed (never the key).
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ClientView {
    id: i64,
    /// The name, which is also the client's name in logs and statistics.
    name: String,
    /// `gg-…wxyz`.
    key_hint: String,
    created_ms: i64,
    revoked_ms: Option<i64>,
    /// Requests per minute (0: no limit). Enforced before anything goes upstream.
    rpm_limit: i64,
    /// Requests per day (0: no limit). Enforced before anything goes upstream.
    rpd_limit: i64,
    /// Models the client may use (empty: all). Enforced before anything goes upstream.
    allowed_models: Vec<String>,
    /// Unix milliseconds after which the key stops working.
    expires_ms: Option<i64>,
    /// Unix milliseconds since it was disabled (absent: enabled).
    disabled_ms: Option<i64>,
    /// Tokens per minute (0: no limit), estimated before a reply, settled from its usage.
    tpm_limit: i64,
    /// Tokens per budget period (0: no budget).
    budget_tokens: i64,
    /// US dollars per budget period, as `[prices]` prices its usage (0: no budget).
    budget_usd: f64,
    /// `day`, `week` or `month`, ending at midnight in `clients.day_zone`.
    budget_period: String,
    /// What it spent in the current budget period (when it has a budget).
    spent: Option<SpentView>,
}

/// A client's spending in its current budget period.
#[derive(Object)]
struct SpentView {
    /// Tokens settled from usage.
    tokens: u64,
    /// US dollars settled from usage.
    usd: f64,
    /// Estimates of requests still running (tokens).
    held_tokens: u64,
    /// When the period ends (Unix milliseconds).
    period_ends_ms: i64,
}

impl ClientView {
    fn of(c: StoredClientKey, ctx: &AdminContext) -> Self {
        let spent = ctx.state.access.accounting.counters.spent(&c.name).map(|(settled, held, ends)| SpentView {
            tokens: settled.tokens,
            usd: settled.micros as f64 / 1e6,
            held_tokens: held.tokens,
            period_ends_ms: crate::store::to_ms(ends),
        });
        let has_budget = c.budget_tokens > 0 || c.budget_micros > 0;
        let mut view = Self::from(c);
        view.spent = spent.filter(|_| has_budget);
        view
    }
}

impl From<StoredClientKey> for ClientView {
    fn from(c: StoredClientKey) -> Self {
        Self {
            budget_tokens: c.budget_tokens,
            budget_usd: c.budget_micros as f64 / 1e6,
            budget_period: c.budget_period.clone(),
            spent: None,
            id: c.id,
            name: c.name,
            key_hint: c.key_hint,
            created_ms: c.created_ms,
            revoked_ms: c.revoked_ms,
            rpm_limit: c.rpm_limit,
            rpd_limit: c.rpd_limit,
            allowed_models: c.allowed_models,
            expires_ms: c.expires_ms,
            disabled_ms: c.disabled_ms,
            tpm_limit: c.tpm_limit,
        }
    }
}

/// Client keys.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct ClientList {
    items: Vec<ClientView>,
    /// Client keys set in config.toml (`auth.client_keys`, `[[clients.keys]]`), not listed here.
    config_keys: u64,
}

/// Limits of a client.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct LimitsInput {
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000")))]
    rpm_limit: i64,
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000")))]
    rpd_limit: i64,
    /// Tokens per minute (0: no limit).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000000")))]
    tpm_limit: i64,
    #[oai(default, validator(max_items = 200))]
    allowed_models: Vec<String>,
    /// Unix milliseconds after which the key stops working (absent: never).
    #[oai(validator(minimum(value = "0"), maximum(value = "32503680000000")))]
    expires_ms: Option<i64>,
    /// False disables the key (reversibly; revoking is for good).
    #[oai(default = "enabled_by_default")]
    enabled: bool,
    /// Tokens per budget period (0: no budget).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000000000")))]
    budget_tokens: i64,
    /// US dollars per budget period (0: no budget).
    #[oai(default, validator(minimum(value = "0"), maximum(value = "1000000000")))]
    budget_usd: f64,
    /// `day`, `week` or `month` (default).
    #[oai(default = "month", validator(pattern = "^(day|week|month)$"))]
    budget_period: String,
}

impl LimitsInput {
    fn limits(&self) -> ApiResult<ClientLimits> {
        Ok(ClientLimits {
            rpm_limit: self.rpm_limit,
            rpd_limit: self.rpd_limit,
            allowed_models: check_models(&self.allowed_models)?,
            expires_ms: self.expires_ms,
            enabled: self.enabled,
            tpm_limit: self.tpm_limit,
            budget_tokens: self.budget_tokens,
            budget_micros: (self.budget_usd * 1e6).round() as i64,
            budget_period: crate::config::BudgetPeriod::parse(&self.budget_period).unwrap_or_default(),
        })
    }
}

fn month() -> String {
    "month".into()
}

/// A client to create.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct NewClient {
    /// 1 to 64 letters, digits, spaces, `.`, `_` or `-`; unique.
    #[oai(validator(pattern = "^[A-Za-z0-9 ._-]{1,64}$"))]
    name: String,
    #[oai(flatten)]
    limits: LimitsInput,
}

/// A client just made, with its key: shown this once, never again.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct CreatedClient {
    client: ClientView,
    key: String,
}

#[derive(ApiResponse)]
enum Created {
    /// Made.
    #[oai(status = 201)]
    Created(Json<CreatedClient>),
}

fn enabled_by_default() -> bool {
    true
}

fn check_models(models: &[String]) -> ApiResult<Vec<String>> {
    models
        .iter()
        .map(|m| {
            let m = m.trim().trim_start_matches("models/");
            let plain = (1..=128).contains(&m.len())
                && m.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*'));
            if plain {
                Ok(m.to_string())
            } else {
                Err(ApiError::bad_request(format!("`{m}` is not a model name or pattern (`*` matches any part)"))
                    .with_id("not_model_pattern", &[("text", m)]))
            }
        })
        .collect()
}

impl ClientsApi {
    /// Reloads client keys from the store into the auth in force, here and
    /// on the other replicas.
    async fn refresh(&self) -> ApiResult<()> {
        self.ctx.state.reload_clients(&self.ctx.reloader.current().config).await?;
        if let Some(link) = &self.ctx.state.cluster {
            link.announce(crate::cluster::Notice::Clients);
        }
        Ok(())
    }

    async fn find(&self, id: i64) -> ApiResult<StoredClientKey> {
        self.ctx.store().client_key(id).await?.ok_or_else(|| {
            ApiError::not_found(format!("no client key with id {id}")).with_id("no_client", &[("id", &id.to_string())])
        })
    }
}

#[OpenApi(tag = "AdminTag::Clients")]
impl ClientsApi {
    /// Every client key made here, newest first.
    #[oai(path = "/clients", method = "get")]
    async fn list(&self, _auth: AdminAuth) -> ApiResult<Json<ClientList>> {
        let items = self.ctx.store().client_keys().await?.into_iter().map(|c| ClientView::of(c, &self.ctx)).collect();
        let config = &self.ctx.reloader.current().config;
        let config_keys = (config.auth.client_keys.len() + config.clients.keys.len()) as u64;
        Ok(Json(ClientList { items, config_keys }))
    }

    /// Makes a client key. The key is in this answer only; gemgate keeps its hash.
    #[oai(path = "/clients", method = "post")]
    async fn create(&self, _auth: AdminAuth, body: Json<NewClient>) -> ApiResult<Created> {
        let name = body.name.trim().to_string();
        if name.is_empty() {
            return Err(ApiError::bad_request("name: give the client a name").with_id("client_name_missing", &[]));
        }
        let existing = self.ctx.store().client_keys().await?;
        if existing.iter().any(|c| c.name == name && c.revoked_ms.is_none()) {
            return Err(ApiError::conflict(format!("a client named `{name}` exists; pick another name"))
                .with_id("client_exists", &[("name", &name)]));
        }
        let limits = body.limits.limits()?;
        let key = crate::secrets::generate_secret();
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        let stored = self.ctx.store().insert_client_key(&name, &hash, &crate::keys::mask_secret(&key), &limits).await?;
        self.refresh().await?;
        tracing::info!(client = %name, "admin created a client key");
        Ok(Created::Created(Json(CreatedClient { client: ClientView::of(stored, &self.ctx), key })))
    }

    /// Sets a client's limits, allowed models, expiry and whether it works.
    #[oai(path = "/clients/:id", method = "put")]
    async fn update(&self, _auth: AdminAuth, id: Path<i64>, body: Json<LimitsInput>) -> ApiResult<Json<ClientView>> {
        let limits = body.limits()?;
        if !self.ctx.store().update_client_limits(id.0, &limits).await? {
            return Err(ApiError::not_found(format!("no client key with id {}", id.0))
                .with_id("no_client", &[("id", &id.0.to_string())]));
        }
        // The new limits hold from the answer on.
        self.refresh().await?;
        Ok(Json(ClientView::of(self.find(id.0).await?, &self.ctx)))
    }

    /// Revokes a client key: it stops working at once and stays listed.
    #[oai(path = "/clients/:id", method = "delete")]
    async fn revoke(&self, _auth: AdminAuth, id: Path<i64>) -> ApiResult<Json<ClientView>> {
        let client = self.find(id.0).await?;
        if client.revoked_ms.is_some() {
            return Err(ApiError::conflict(format!("client key {} is already revoked", id.0))
                .with_id("client_revoked", &[("id", &id.0.to_string())]));
        }
        self.ctx.store().revoke_client_key(id.0).await?;
        self.refresh().await?;
        tracing::info!(client = %client.name, "admin revoked a client key");
        Ok(Json(self.find(id.0).await?.into()))
    }
}
