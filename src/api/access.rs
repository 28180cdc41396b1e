//! Who may use gemgate: the client keys (from config, the generated one, those
//! made in the admin), the `/metrics` token, and the failed-auth limiter in
//! front of every way in. Swapped whole when config or the admin changes them.

use super::auth::{AuthError, ClientAuth, ClientId};
use super::auth_limit::AuthLimiter;
use crate::accounting::Accounting;
use crate::config::Config;
use crate::store::StoredClientKey;
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Client keys, the metrics token and the failed-auth limiter.
pub struct Access {
    clients: ArcSwap<ClientAuth>,
    stored: ArcSwap<Vec<StoredClientKey>>,
    generated: Option<String>,
    metrics: ArcSwap<ClientAuth>,
    /// Failed authentications per client address, for every way in.
    pub limiter: AuthLimiter,
    /// Clients' counters, prices and usage.
    pub accounting: Arc<Accounting>,
}

impl Access {
    /// Access as `config` sets it, with the generated client key (used when
    /// config names none), the admin's stored keys and the metrics token.
    pub fn new(
        config: &Config,
        generated: Option<String>,
        stored: Vec<StoredClientKey>,
        metrics_token: &str,
        limiter: AuthLimiter,
        accounting: Arc<Accounting>,
    ) -> Self {
        let access = Self {
            clients: ArcSwap::from_pointee(ClientAuth::new(&[], false)),
            stored: ArcSwap::from_pointee(stored),
            generated,
            metrics: ArcSwap::from_pointee(ClientAuth::new(&[metrics_token.to_string()], false)),
            limiter,
            accounting,
        };
        access.apply_config(config);
        access
    }

    /// Checks a client request's key, through the limiter.
    pub fn authenticate(&self, request: &poem::Request) -> Result<ClientId, AuthError> {
        self.limiter.guard(request, || self.clients.load().check(request))
    }

    /// Checks the `/metrics` token (a header only: a URL's query ends up in
    /// access logs), through the limiter.
    pub fn authenticate_metrics(&self, request: &poem::Request) -> Result<(), AuthError> {
        let token = super::auth::bearer_token(request).map(String::from);
        self.limiter.guard(request, || self.metrics.load().check_presented(token)).map(|_| ())
    }

    /// Applies config's client keys (the generated one when it names none).
    pub fn apply_config(&self, config: &Config) {
        let mut keys = config.auth.client_keys.clone();
        if keys.is_empty()
            && let Some(generated) = &self.generated
        {
            keys.push(generated.clone());
        }
        let counters = &self.accounting.counters;
        let auth = ClientAuth::new(&keys, config.auth.open)
            .with_stored(&self.stored.load(), counters)
            .with_declared(&config.clients.keys, counters);
        self.clients.store(Arc::new(auth));
        self.accounting.apply_config(config);
    }

    /// Every client with a budget, and its period.
    pub fn budgeted(&self) -> Vec<(Arc<str>, crate::config::BudgetPeriod)> {
        self.clients.load().budgeted()
    }

    /// Replaces the keys made in the admin (and applies them with `config`'s).
    pub fn set_stored(&self, stored: Vec<StoredClientKey>, config: &Config) {
        let declared = &config.clients.keys;
        let live = |name: &str| {
            stored.iter().any(|c| c.revoked_ms.is_none() && c.name == name) || declared.iter().any(|c| c.name == name)
        };
        self.accounting.counters.retain(live);
        self.stored.store(Arc::new(stored));
        self.apply_config(config);
    }

    /// Replaces the `/metrics` token.
    pub fn set_metrics_token(&self, token: &str) {
        self.metrics.store(Arc::new(ClientAuth::new(&[token.to_string()], false)));
    }
}
