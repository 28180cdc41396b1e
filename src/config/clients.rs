//! `[clients]` and `[prices]`: client keys declared in config with their
//! limits and budgets, and the price table that turns tokens into cost.

use super::ConfigError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[clients]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientsConfig {
    /// The time zone whose midnight ends a client's day (`rpd`) and budget
    /// period, an IANA name such as `UTC`, `Asia/Shanghai` or `America/Los_Angeles`.
    pub day_zone: String,
    /// `[[clients.keys]]`: client keys with names and limits.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ClientKeyConfig>,
}

impl Default for ClientsConfig {
    fn default() -> Self {
        Self { day_zone: "UTC".into(), keys: Vec::new() }
    }
}

/// One `[[clients.keys]]` entry.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientKeyConfig {
    /// The client's name, in logs, usage and the admin.
    pub name: String,
    /// The key's SHA-256 in hex (`printf %s KEY | sha256sum`): config need
    /// not hold the key itself.
    pub key_sha256: String,
    /// Or the key itself (at least 16 characters).
    pub key: String,
    /// Requests per minute (0: no limit).
    pub rpm: i64,
    /// Requests per day (0: no limit).
    pub rpd: i64,
    /// Tokens per minute, input and output (0: no limit).
    pub tpm: i64,
    /// Models it may use, exact or with `*` (empty: all).
    pub models: Vec<String>,
    /// When it stops working (RFC 3339, e.g. `2027-01-01T00:00:00Z`).
    pub expires: String,
    /// Off: refused with 403 until turned on again.
    pub enabled: Option<bool>,
    /// Tokens per budget period (0: no budget).
    pub budget_tokens: i64,
    /// US dollars per budget period, priced by `[prices]` (0: no budget).
    pub budget_usd: f64,
    /// `day`, `week` (from Monday) or `month`, ending at midnight in `day_zone`.
    pub budget_period: BudgetPeriod,
}

/// How long a client's budget lasts before it starts again.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum BudgetPeriod {
    /// To midnight.
    Day,
    /// To midnight before Monday.
    Week,
    /// To midnight before the first of the month.
    #[default]
    Month,
}

impl BudgetPeriod {
    /// `day`, `week` or `month`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    /// Parses `day`, `week` or `month`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            "month" => Some(Self::Month),
            _ => None,
        }
    }
}

impl ClientKeyConfig {
    /// The key's SHA-256 as 32 bytes, from `key_sha256` or `key`.
    pub fn hash(&self) -> Option<[u8; 32]> {
        use sha2::Digest;
        if !self.key.is_empty() {
            return Some(sha2::Sha256::digest(self.key.as_bytes()).into());
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(self.key_sha256.trim(), &mut hash).ok().map(|()| hash)
    }

    /// `expires` as Unix milliseconds.
    pub fn expires_ms(&self) -> Option<i64> {
        let text = self.expires.trim();
        (!text.is_empty()).then(|| chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis()))?
    }
}

impl ClientsConfig {
    /// `day_zone` parsed.
    pub fn zone(&self) -> Result<chrono_tz::Tz, ConfigError> {
        self.day_zone.parse().map_err(|_| ConfigError::Invalid {
            field: "clients.day_zone",
            message: format!("`{}` is not a time zone name (like UTC or Asia/Shanghai)", self.day_zone),
            at: String::new(),
        })
    }

    /// Checks the zone and every declared key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.zone()?;
        let invalid = |message: String| Err(ConfigError::Invalid { field: "clients.keys", message, at: String::new() });
        let mut names = std::collections::HashSet::new();
        for (n, client) in self.keys.iter().enumerate() {
            let name = &client.name;
            let at = format!("entry {} ({name})", n + 1);
            let name_ok = (1..=64).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._@".contains(&b));
            if !name_ok {
                return invalid(format!("{at}: a name of 1 to 64 letters, digits, `-`, `.`, `_` or `@` is needed"));
            }
            if !names.insert(name) {
                return invalid(format!("{at}: the name is used twice"));
            }
            match (client.key.is_empty(), client.key_sha256.is_empty()) {
                (true, true) => return invalid(format!("{at}: set key_sha256 (or key)")),
                (false, false) => return invalid(format!("{at}: set key_sha256 or key, not both")),
                (false, true) if client.key.len() < 16 => {
                    return invalid(format!("{at}: the key needs at least 16 characters"));
                }
                _ => {}
            }
            if client.hash().is_none() {
                return invalid(format!("{at}: key_sha256 must be 64 hex digits"));
            }
            if !client.expires.trim().is_empty() && client.expires_ms().is_none() {
                return invalid(format!("{at}: expires must be RFC 3339, like 2027-01-01T00:00:00Z"));
            }
            if [client.rpm, client.rpd, client.tpm, client.budget_tokens].iter().any(|&n| n < 0)
                || !(client.budget_usd >= 0.0 && client.budget_usd.is_finite())
            {
                return invalid(format!("{at}: limits and budgets cannot be negative"));
            }
        }
        Ok(())
    }
}

/// `[prices."model"]`: US dollars per 1M tokens (Google's price list).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelPrice {
    /// Prompt tokens not served from a cache.
    pub input: f64,
    /// Output tokens, thinking included.
    pub output: f64,
    /// Prompt tokens served from the context cache.
    pub cached: f64,
    /// Higher prices for long prompts, by prompt size.
    pub tiers: Vec<PriceTier>,
}

/// A price that applies when a prompt has more than `above` tokens.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PriceTier {
    /// Prompt tokens above which this tier's prices apply.
    pub above: u64,
    /// As [`ModelPrice::input`].
    pub input: f64,
    /// As [`ModelPrice::output`].
    pub output: f64,
    /// As [`ModelPrice::cached`].
    pub cached: f64,
}

/// Checks that every price is a finite, non-negative number.
pub fn validate_prices(prices: &BTreeMap<String, ModelPrice>) -> Result<(), ConfigError> {
    let fine = |p: f64| p.is_finite() && p >= 0.0;
    for (model, price) in prices {
        let tiers = price.tiers.iter().map(|t| [t.input, t.output, t.cached]);
        if !std::iter::once([price.input, price.output, price.cached]).chain(tiers).flatten().all(fine) {
            return Err(ConfigError::Invalid {
                field: "prices",
                message: format!("`{model}`: prices are US dollars per 1M tokens, 0 or more"),
                at: String::new(),
            });
        }
    }
    Ok(())
}
