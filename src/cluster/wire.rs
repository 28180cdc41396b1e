//! A key's shared state as it travels through Redis: JSON, named fields,
//! times in Unix milliseconds. Only the disable and the rests; never the key.

use crate::key_state::{CooldownEntry, DisableReason, Disabled, KeyState, RestSource};
use crate::keys::Fingerprint;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest message read (a key with every model resting stays far below).
const MAX_JSON: usize = 64 * 1024;

/// One replica's decision about one key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SharedState {
    /// The replica that decided it.
    pub replica: String,
    /// The key's fingerprint (12 hex digits).
    pub fingerprint: String,
    /// When it was decided (last writer wins).
    pub at_ms: u64,
    disabled: Option<SharedDisable>,
    cooldowns: Vec<SharedRest>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct SharedDisable {
    reason: String,
    since_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct SharedRest {
    model: Option<String>,
    until_ms: u64,
    reason: String,
    source: String,
}

fn ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    ms(SystemTime::now())
}

/// This process's name among replicas: random per start.
pub fn replica_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl SharedState {
    /// The shared part of `state`.
    pub fn new(replica: &str, fingerprint: Fingerprint, state: &KeyState, at: SystemTime) -> Self {
        Self {
            replica: replica.to_string(),
            fingerprint: fingerprint.to_string(),
            at_ms: ms(at),
            disabled: state
                .disabled
                .map(|d| SharedDisable { reason: d.reason.as_str().to_string(), since_ms: ms(d.since) }),
            cooldowns: state
                .cooldowns
                .iter()
                .map(|c| SharedRest {
                    model: c.model.as_deref().map(String::from),
                    until_ms: ms(c.until),
                    reason: c.reason.clone(),
                    source: c.source.as_str().to_string(),
                })
                .collect(),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// From JSON; `None` when it is not a shared state (or too large).
    pub fn from_json(json: &str) -> Option<Self> {
        if json.len() > MAX_JSON {
            return None;
        }
        serde_json::from_str(json).ok()
    }

    /// The key it is about.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        Fingerprint::parse(&self.fingerprint)
    }

    /// The disable and rests; `None` when a reason is unknown (a newer
    /// replica's): better to keep the local view than to guess.
    pub fn key_state(&self) -> Option<KeyState> {
        let disabled = match &self.disabled {
            Some(d) => Some(Disabled { reason: DisableReason::parse(&d.reason)?, since: time(d.since_ms) }),
            None => None,
        };
        let cooldowns = self
            .cooldowns
            .iter()
            .map(|c| CooldownEntry {
                model: c.model.as_deref().map(Arc::from),
                until: time(c.until_ms),
                reason: c.reason.clone(),
                source: RestSource::parse(&c.source),
            })
            .collect();
        Some(KeyState { disabled, cooldowns, last_error: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::ApiKey;

    #[test]
    fn a_state_survives_the_trip() {
        let fingerprint = ApiKey::new("AIza".to_string() + "x").fingerprint();
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let state = KeyState {
            disabled: Some(Disabled { reason: DisableReason::Manual, since: at }),
            cooldowns: vec![CooldownEntry {
                model: Some(Arc::from("gemini-2.5-pro")),
                until: at + Duration::from_secs(30),
                reason: "rate_limited".into(),
                source: RestSource::RetryDelay,
            }],
            last_error: Some("never shared".into()),
        };
        let shared = SharedState::new("r1", fingerprint, &state, at);
        let back = SharedState::from_json(&shared.to_json()).expect("parses");
        assert_eq!(back, shared);
        assert_eq!(back.fingerprint(), Some(fingerprint));
        let restored = back.key_state().expect("known reasons");
        assert_eq!(restored.disabled, state.disabled);
        assert_eq!(restored.cooldowns, state.cooldowns);
        assert!(!shared.to_json().contains("never shared"));
        assert!(SharedState::from_json("{\"nonsense\":1}").is_none());
        assert!(SharedState::from_json(&"x".repeat(MAX_JSON + 1)).is_none());
    }
}
