//! Client authentication: the key a client presents (`Authorization: Bearer`,
//! `x-goog-api-key` or `?key=`) is hashed with SHA-256 and looked up by its
//! digest. Only digests are kept and compared, so the lookup's timing can
//! tell an attacker about the digest of a guess, never about a key (finding
//! a key from its digest is a preimage attack); the cost stays flat with
//! thousands of client keys. The client's key is never forwarded upstream.

use crate::keys::Fingerprint;
use poem::Request;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Who a request comes from: its name (for logs) and what it is allowed.
#[derive(Clone, Debug)]
pub struct ClientId {
    /// The client's name: `client-<fingerprint>` for keys in config, the
    /// admin's name for keys made there.
    pub name: Arc<str>,
    /// Its limits, when the operator set any.
    pub rules: Option<Arc<crate::tenancy::ClientRules>>,
    /// Its counters (with its rules).
    pub counter: Option<Arc<crate::tenancy::ClientCounter>>,
}

impl PartialEq for ClientId {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Why a request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No key at all.
    Missing,
    /// A key that is not one of ours.
    Invalid,
    /// Too many wrong keys from this address; it may try again after this long.
    TooMany(std::time::Duration),
}

impl AuthError {
    /// Words for the client.
    pub fn message(self) -> String {
        match self {
            Self::Missing => {
                "gemgate: no client key. Send your gemgate client key as `Authorization: Bearer KEY`, `x-goog-api-key: KEY`, `x-api-key: KEY` or `?key=KEY`.".into()
            }
            Self::Invalid => "gemgate: the client key is not valid for this gemgate.".into(),
            Self::TooMany(wait) => format!(
                "gemgate: too many wrong keys from this address; try again in {} s.",
                wait.as_secs().max(1)
            ),
        }
    }

    /// The HTTP status: 401, or 429 while the address is locked out.
    pub fn status(self) -> u16 {
        match self {
            Self::TooMany(_) => 429,
            _ => 401,
        }
    }

    /// Whole seconds to wait, for `Retry-After`, when locked out.
    pub fn retry_after_secs(self) -> Option<u64> {
        match self {
            Self::TooMany(wait) => Some(wait.as_secs().max(1)),
            _ => None,
        }
    }
}

/// The configured client keys (by SHA-256 digest) or open access.
pub struct ClientAuth {
    open: bool,
    keys: HashMap<[u8; 32], ClientId>,
}

impl ClientAuth {
    /// Access for `keys`; `open` serves anyone (only when config says so).
    pub fn new(keys: &[String], open: bool) -> Self {
        let keys = keys
            .iter()
            .map(|key| {
                let name = Arc::from(format!("client-{}", Fingerprint::of(key)));
                let id = ClientId { name, rules: None, counter: None };
                (Sha256::digest(key.as_bytes()).into(), id)
            })
            .collect();
        Self { open, keys }
    }

    /// Adds the client keys made in the admin (revoked ones are left out);
    /// each is known by its name.
    pub fn with_stored(
        mut self,
        stored: &[crate::store::StoredClientKey],
        counters: &crate::tenancy::ClientCounters,
    ) -> Self {
        for client in stored.iter().filter(|c| c.revoked_ms.is_none()) {
            let mut hash = [0u8; 32];
            if hex::decode_to_slice(&client.key_hash, &mut hash).is_ok() {
                let rules = crate::tenancy::ClientRules::new(&crate::tenancy::ClientTerms {
                    rpm: client.rpm_limit,
                    rpd: client.rpd_limit,
                    tpm: client.tpm_limit,
                    models: &client.allowed_models,
                    expires_ms: client.expires_ms,
                    disabled: client.disabled_ms.is_some(),
                    budget_tokens: client.budget_tokens,
                    budget_micros: client.budget_micros,
                    budget_period: client.period(),
                });
                self.add_named(hash, &client.name, rules, counters);
            }
        }
        self
    }

    /// Adds a client known by its name, with its counters when it has rules.
    fn add_named(
        &mut self,
        hash: [u8; 32],
        name: &str,
        rules: Option<crate::tenancy::ClientRules>,
        counters: &crate::tenancy::ClientCounters,
    ) {
        let name: Arc<str> = Arc::from(name);
        let counter = rules.as_ref().map(|_| counters.of(&name));
        self.keys.insert(hash, ClientId { name, rules: rules.map(Arc::new), counter });
    }

    /// Adds the client keys declared in config (`[[clients.keys]]`), each
    /// known by its name.
    pub fn with_declared(
        mut self,
        declared: &[crate::config::ClientKeyConfig],
        counters: &crate::tenancy::ClientCounters,
    ) -> Self {
        for client in declared {
            let Some(hash) = client.hash() else { continue };
            let rules = crate::tenancy::ClientRules::new(&crate::tenancy::ClientTerms {
                rpm: client.rpm,
                rpd: client.rpd,
                tpm: client.tpm,
                models: &client.models,
                expires_ms: client.expires_ms(),
                disabled: client.enabled == Some(false),
                budget_tokens: client.budget_tokens,
                budget_micros: (client.budget_usd * 1e6).round() as i64,
                budget_period: client.budget_period,
            });
            self.add_named(hash, &client.name, rules, counters);
        }
        self
    }

    /// Every client with a budget, and its period.
    pub fn budgeted(&self) -> Vec<(Arc<str>, crate::config::BudgetPeriod)> {
        let budget = |id: &ClientId| id.rules.as_ref().and_then(|r| r.budget).map(|b| (id.name.clone(), b.period));
        self.keys.values().filter_map(budget).collect()
    }

    /// Checks the request's key.
    pub fn check(&self, request: &Request) -> Result<ClientId, AuthError> {
        self.check_presented(presented_key(request))
    }

    /// Checks a key taken from the request by the caller.
    pub fn check_presented(&self, presented: Option<String>) -> Result<ClientId, AuthError> {
        if self.open {
            let name = match presented {
                Some(key) => format!("open-{}", Fingerprint::of(&key)),
                None => "open".to_string(),
            };
            return Ok(ClientId { name: Arc::from(name), rules: None, counter: None });
        }
        let presented = presented.ok_or(AuthError::Missing)?;
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.keys.get(&hash).cloned().ok_or(AuthError::Invalid)
    }
}

/// The key from the header or query, in that order of preference.
pub fn presented_key(request: &Request) -> Option<String> {
    let headers = request.headers();
    if let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
        if !token.is_empty() {
            return Some(token.to_string());
        }
    }
    for header in ["x-goog-api-key", "x-api-key"] {
        if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
            return Some(value.trim().to_string());
        }
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| pair.strip_prefix("key=")).map(percent_decode)
}

/// The bearer token of `Authorization`, and nothing else (no query key):
/// for secrets that must not travel in URLs, like the metrics token.
pub fn bearer_token(request: &Request) -> Option<&str> {
    let value = request.headers().get("authorization")?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer "))?.trim();
    (!token.is_empty()).then_some(token)
}

/// Minimal `%XX` decoding for a key in a query string.
fn percent_decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, header: Option<(&str, &str)>) -> Request {
        let mut builder = Request::builder().uri(uri.parse().unwrap());
        if let Some((name, value)) = header {
            builder = builder.header(name, value);
        }
        builder.finish()
    }

    const KEY: &str = "client-secret-0123456789";

    #[test]
    fn all_three_ways_of_presenting_a_key() {
        let auth = ClientAuth::new(&[KEY.to_string()], false);
        assert!(auth.check(&request("/x", Some(("authorization", &format!("Bearer {KEY}"))))).is_ok());
        assert!(auth.check(&request("/x", Some(("x-goog-api-key", KEY)))).is_ok());
        assert!(auth.check(&request(&format!("/x?alt=sse&key={KEY}"), None)).is_ok());
        assert_eq!(auth.check(&request("/x", None)), Err(AuthError::Missing));
        assert_eq!(auth.check(&request("/x?key=wrong-key-000000000", None)), Err(AuthError::Invalid));
    }

    #[test]
    fn stored_keys_are_known_by_name_until_revoked() {
        let stored = |revoked_ms| crate::store::StoredClientKey {
            id: 1,
            name: "alice".into(),
            key_hash: hex::encode(Sha256::digest(b"gg-alice-key-000000")),
            key_hint: "gg-…0000".into(),
            created_ms: 0,
            revoked_ms,
            rpm_limit: 0,
            rpd_limit: 0,
            allowed_models: vec![],
            expires_ms: None,
            disabled_ms: None,
            tpm_limit: 0,
            budget_tokens: 0,
            budget_micros: 0,
            budget_period: "month".into(),
        };
        let counters = crate::tenancy::ClientCounters::new(chrono_tz::UTC);
        let auth = ClientAuth::new(&[KEY.to_string()], false).with_stored(&[stored(None)], &counters);
        let id = auth.check(&request("/x", Some(("x-goog-api-key", "gg-alice-key-000000")))).unwrap();
        assert_eq!(&*id.name, "alice");
        assert!(auth.check(&request("/x", Some(("x-goog-api-key", KEY)))).is_ok());
        let revoked = ClientAuth::new(&[], false).with_stored(&[stored(Some(5))], &counters);
        let refused = revoked.check(&request("/x", Some(("x-goog-api-key", "gg-alice-key-000000"))));
        assert_eq!(refused, Err(AuthError::Invalid));
    }

    #[test]
    fn open_access_only_when_asked() {
        assert!(ClientAuth::new(&[], true).check(&request("/x", None)).is_ok());
        assert_eq!(ClientAuth::new(&[], false).check(&request("/x", None)), Err(AuthError::Missing));
    }

    #[test]
    fn client_ids_never_hold_the_key() {
        let auth = ClientAuth::new(&[KEY.to_string()], false);
        let id = auth.check(&request("/x", Some(("x-goog-api-key", KEY)))).unwrap();
        assert!(id.name.starts_with("client-") && !id.name.contains(KEY));
    }

    #[test]
    fn key_param_is_decoded() {
        assert_eq!(percent_decode("a%2Bb%zz+c%"), "a+b%zz c%");
    }
}
