//! What clients spend: each finished request's tokens are priced
//! (`[prices]`), settled against its client's token limit and budget, and
//! added to the hourly usage rollups. Budgets survive restarts: at start, and
//! when a client's budget changes, what it spent in the current period is
//! read back from the rollups.

use crate::config::{BudgetPeriod, Config};
use crate::prices::{PriceTable, Usage};
use crate::store::{Store, StoreError, StoreHandle, UsageKey, UsageTotals};
use crate::tenancy::{
    Charge, ClientCounter, ClientCounters, ClientRules, Count, Refusal, SharedLimits, SharedVerdict, Spent,
};
use arc_swap::ArcSwap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Prices, the clients' counters and the usage rollups.
pub struct Accounting {
    prices: ArcSwap<PriceTable>,
    /// Requests counted against clients' limits and budgets.
    pub counters: ClientCounters,
    /// The replicas' shared counters (`[cluster]`): limits hold across them.
    shared: OnceLock<Arc<dyn SharedLimits>>,
    store: StoreHandle,
}

/// A finished request, as usage sees it.
pub struct Finished<'a> {
    /// The client's name.
    pub client: &'a Arc<str>,
    /// The model served.
    pub model: &'a Arc<str>,
    /// The group of the key that served it; `None` when no key answered.
    pub group: Option<&'a Arc<str>>,
    /// Its tokens.
    pub usage: Usage,
    /// Whether Google answered with content (a 200, even if cut later).
    pub answered: bool,
}

impl Accounting {
    /// Accounting as `config` prices it, writing usage through `store`.
    pub fn new(config: &Config, store: StoreHandle) -> Self {
        let zone = config.clients.zone().unwrap_or(chrono_tz::UTC);
        Self {
            prices: ArcSwap::from_pointee(PriceTable::new(&config.prices)),
            counters: ClientCounters::new(zone),
            shared: OnceLock::new(),
            store,
        }
    }

    /// Holds clients' limits in `shared` from now on (once, when the
    /// cluster starts).
    pub fn share_limits(&self, shared: Arc<dyn SharedLimits>) {
        let _ = self.shared.set(shared);
    }

    /// Admits one request of the client `name` for `model` and counts it, or
    /// refuses it. In a cluster the shared counters decide and count (this
    /// replica counts too, unchecked, to keep its own view); when they
    /// cannot be asked in time, this replica admits its share alone.
    pub async fn admit(
        &self,
        name: &Arc<str>,
        counter: &Arc<ClientCounter>,
        rules: &ClientRules,
        model: &str,
        estimate: Spent,
    ) -> Result<Charge, Refusal> {
        let now = SystemTime::now();
        let Some(shared) = self.shared.get() else {
            return self.counters.admit(counter, rules, model, estimate, now);
        };
        let Some(ask) = self.counters.ask(name, counter, rules, model, estimate, now)? else {
            return Ok(Charge::default());
        };
        match shared.admit(ask.clone()).await {
            Some(SharedVerdict::Admitted { reserved }) => {
                let mut charge = self.counters.admit_as(counter, rules, model, estimate, now, Count::Only)?;
                ClientCounters::mark_shared(&mut charge, &ask, reserved);
                Ok(charge)
            }
            Some(SharedVerdict::Refused { limit, until_ms }) => {
                Err(ClientCounters::shared_refusal(&ask, limit, until_ms))
            }
            None => {
                let share = shared.replicas();
                self.counters.admit_as(counter, rules, model, estimate, now, Count::Checked { share })
            }
        }
    }

    /// Applies a config's prices and day zone.
    pub fn apply_config(&self, config: &Config) {
        self.prices.store(Arc::new(PriceTable::new(&config.prices)));
        if let Ok(zone) = config.clients.zone() {
            self.counters.set_zone(zone);
        }
    }

    /// What a request of `prompt_estimate` tokens for `model` holds against
    /// a budget while it runs.
    pub fn estimate(&self, model: &str, prompt_estimate: u64) -> Spent {
        Spent { tokens: prompt_estimate, micros: self.prices.load().estimate_micros(model, prompt_estimate) }
    }

    /// Settles a finished request: its charge with what it spent, and its
    /// usage into the rollups.
    pub fn settle(&self, charge: &Charge, finished: Finished<'_>) {
        let usage = finished.usage;
        let cost = self.prices.load().cost_micros(finished.model, usage.billable());
        let tokens = (usage.prompt_tokens.max(0) + usage.completion_tokens.max(0)) as u64;
        let now = SystemTime::now();
        if !charge.is_empty() {
            let spent = Spent { tokens, micros: cost };
            self.counters.settle(charge, spent, now);
            if let (Some(shared), Some(settle)) = (self.shared.get(), charge.shared_settle(spent, now)) {
                shared.settle(settle);
            }
        }
        let Some(group) = finished.group else { return };
        if !finished.answered && tokens == 0 {
            return;
        }
        let key = UsageKey {
            hour_ms: crate::store::hour_of(crate::store::to_ms(now)),
            client: finished.client.clone(),
            model: finished.model.clone(),
            group: group.clone(),
        };
        self.store.add_usage(
            key,
            UsageTotals {
                requests: 1,
                input_tokens: usage.prompt_tokens.max(0),
                output_tokens: usage.completion_tokens.max(0),
                thinking_tokens: usage.thinking_tokens.max(0),
                cached_tokens: usage.cached_tokens.max(0),
                cost_micros: cost as i64,
            },
        );
    }

    /// Reads what each client with a budget spent in its current period
    /// from the rollups (after writing what is buffered).
    pub async fn seed_budgets(&self, store: &Store, clients: &[(Arc<str>, BudgetPeriod)]) -> Result<(), StoreError> {
        if clients.is_empty() {
            return Ok(());
        }
        self.store.flush().await;
        let (zone, now) = (self.counters.zone(), SystemTime::now());
        for period in [BudgetPeriod::Day, BudgetPeriod::Week, BudgetPeriod::Month] {
            let these: Vec<Arc<str>> =
                clients.iter().filter(|(_, p)| *p == period).map(|(client, _)| client.clone()).collect();
            if these.is_empty() {
                continue;
            }
            let (start, ends) = crate::midnight::period(zone, now, period);
            let spent = store.spent_since(crate::store::to_ms(start)).await?;
            for client in &these {
                let (tokens, micros) = spent.get(&**client).copied().unwrap_or_default();
                let settled = Spent { tokens: tokens.max(0) as u64, micros: micros.max(0) as u64 };
                self.counters.seed(client, ends, settled);
            }
        }
        Ok(())
    }
}
