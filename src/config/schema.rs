//! The typed schema of `config.toml`. Every field is documented in the shipped
//! `config.toml` itself; defaults here match it.

use super::ConfigError;
use serde::{Deserialize, Deserializer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole config.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Google upstream.
    pub upstream: UpstreamConfig,
    /// Attempts per request.
    pub retry: RetryConfig,
    /// How long keys rest after failures.
    pub cooldown: CooldownConfig,
    /// Key selection.
    pub pool: PoolConfig,
    /// Health scans.
    pub scan: ScanConfig,
    /// Persistence.
    pub store: StoreConfig,
    /// Client and admin access.
    pub auth: AuthConfig,
    /// Key files.
    pub keys: KeysConfig,
    /// The failover policy.
    pub policy: PolicyConfig,
    /// Live reload.
    pub reload: ReloadConfig,
    /// Logging.
    pub log: LogConfig,
    /// The OpenAI-compatible API.
    pub openai: OpenAiConfig,
    /// The Anthropic Messages API.
    pub anthropic: AnthropicConfig,
    /// Client keys' limits.
    pub clients: super::ClientsConfig,
    /// The models served and their names.
    pub catalog: CatalogConfig,
    /// Defaults and injections for every generate call.
    pub shaping: ShapingConfig,
    /// Per-model, per-key limits the pool paces itself to.
    pub models: HashMap<String, ModelLimits>,
    /// USD per 1M tokens, by model name or pattern (for usage cost and budgets).
    pub prices: std::collections::BTreeMap<String, super::ModelPrice>,
    /// Several replicas as one pool.
    pub cluster: ClusterConfig,
}

/// `[cluster]`: off unless `redis_url` is set.
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// Redis shared by the replicas (`redis://host:6379/0`); empty: one process.
    pub redis_url: String,
    /// Prefix of every Redis key and channel, so clusters can share a Redis.
    pub namespace: String,
    /// Seconds between full reads of the shared state (heals a missed message).
    pub reconcile_secs: u64,
    /// Milliseconds a Redis command may take before the link counts as down.
    pub timeout_ms: u64,
    /// Milliseconds a request waits for the shared client limits before its
    /// replica admits it on its own share.
    pub limits_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            redis_url: String::new(),
            namespace: "gemgate".into(),
            reconcile_secs: 2,
            timeout_ms: 200,
            limits_timeout_ms: 10,
        }
    }
}

/// `[shaping]`: applied to every generate call, filling only what the
/// client left unset (the system prompt is always injected).
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ShapingConfig {
    /// `thinkingBudget` for models that take one (Gemini 2.5).
    pub thinking_budget: Option<i64>,
    /// `thinkingLevel` for Gemini 3 models.
    pub thinking_level: Option<String>,
    /// `includeThoughts`.
    pub include_thoughts: Option<bool>,
    /// Text injected into every generate call (empty: none).
    pub system_prompt: String,
    /// Where: the system instruction, or before or after the last user turn.
    pub system_prompt_position: PromptPosition,
    /// `safetySettings` when the client sent none.
    pub safety_settings: Vec<serde_json::Value>,
    /// `[shaping.clients.NAME]`: a client's own shaping; the fields it sets
    /// replace the global ones (only at the top level).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub clients: std::collections::BTreeMap<String, ShapingConfig>,
}

/// Where `[shaping] system_prompt` goes.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PromptPosition {
    /// First part of the system instruction.
    #[default]
    System,
    /// First part of the last user turn.
    Prefix,
    /// Last part of the last user turn.
    Suffix,
}

/// `[catalog]`
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Models served (empty: all); `*` matches any part.
    pub allow: Vec<String>,
    /// Models never served; `*` matches any part.
    pub deny: Vec<String>,
    /// Other names for models, e.g. `"gpt-4o" = "gemini-2.5-flash"`.
    pub aliases: std::collections::BTreeMap<String, String>,
    /// Serve and list `-search`, `-nothinking` and `-thinking` variants
    /// (off: names and lists are Google's own).
    pub variants: bool,
}

/// `[openai]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OpenAiConfig {
    /// Answer `stream: true` chat requests from one non-streamed upstream
    /// call, sending SSE comments every `keepalive_secs` until it arrives
    /// (for clients that time out on a silent connection).
    pub fake_stream: bool,
    /// Seconds between keep-alive comments of a fake stream, and of silence
    /// before an Anthropic or Responses stream gets a keep-alive.
    pub keepalive_secs: u64,
    /// Seconds a Responses API response made with `store` is kept for
    /// `previous_response_id` (0: none is kept).
    pub responses_keep_secs: u64,
    /// The Gemini image model `/v1/images/generations` uses when the
    /// request names an OpenAI model (`dall-e-3`, `gpt-image-1`).
    pub image_model: String,
    /// The Gemini TTS model `/v1/audio/speech` uses when the request names
    /// an OpenAI model (`tts-1`, `gpt-4o-mini-tts`).
    pub speech_model: String,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            fake_stream: false,
            keepalive_secs: 5,
            responses_keep_secs: 3600,
            image_model: "gemini-2.5-flash-image".into(),
            speech_model: "gemini-2.5-flash-preview-tts".into(),
        }
    }
}

/// `[anthropic]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AnthropicConfig {
    /// Claude model names (`*` matches any run of characters) → the Gemini
    /// model that answers them. An exact name wins, then the longest pattern;
    /// a name matching none (a Gemini id, an alias) is used as it is.
    pub models: std::collections::BTreeMap<String, String>,
}

impl Default for AnthropicConfig {
    fn default() -> Self {
        let models =
            [("*opus*", "gemini-2.5-pro"), ("*sonnet*", "gemini-2.5-flash"), ("*haiku*", "gemini-2.5-flash-lite")];
        Self { models: models.into_iter().map(|(from, to)| (from.to_string(), to.to_string())).collect() }
    }
}

/// `[server]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds in-flight requests and streams may take to finish after SIGTERM.
    pub shutdown_grace_secs: u64,
    /// Seconds from a request's first byte to the end of its headers.
    pub header_read_timeout_secs: u64,
    /// Seconds a connection with no open request may stay silent.
    pub idle_timeout_secs: u64,
    /// Seconds from a request's headers to the end of its body.
    pub body_read_timeout_secs: u64,
    /// Open connections at most.
    pub max_connections: usize,
    /// Open connections from one client address at most (trusted proxies are exempt).
    pub max_connections_per_ip: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the real client (addresses or CIDR networks).
    #[serde(deserialize_with = "string_or_list")]
    pub trusted_proxies: Vec<String>,
    /// Failed authentications (any way in) one client address may make per minute.
    pub auth_failures_per_minute: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 20 * 1024 * 1024,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 60,
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
            trusted_proxies: Vec::new(),
            auth_failures_per_minute: 30,
        }
    }
}

impl ServerConfig {
    /// `trusted_proxies` parsed: entries such as `127.0.0.1`, `10.0.0.0/8` or `::1`.
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                let entry = entry.trim();
                entry.parse::<ipnet::IpNet>().or_else(|_| entry.parse::<std::net::IpAddr>().map(Into::into)).map_err(
                    |_| ConfigError::Invalid {
                        field: "server.trusted_proxies",
                        message: format!("`{entry}` is not an IP address or network (like 10.0.0.0/8)"),
                        at: String::new(),
                    },
                )
            })
            .collect()
    }
}

/// `[upstream]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Google's API base URL (the fake upstream's in tests and demo).
    pub base_url: String,
    /// Seconds to open a connection.
    pub connect_timeout_secs: u64,
    /// Seconds to wait for the response head (status and headers).
    pub response_timeout_secs: u64,
    /// Seconds a streamed body may stay silent before it counts as cut.
    pub stream_idle_timeout_secs: u64,
    /// Optional proxy for upstream calls (`http://`, `https://` or `socks5://`):
    /// one entry of `proxies`, kept for configs written before it.
    pub proxy: String,
    /// Proxies keys are pinned to (`URL` or `NAME=URL`; credentials in the URL).
    pub proxies: Vec<String>,
    /// A file of more proxies, one per line, reloaded live (relative to the config's folder).
    pub proxies_file: String,
    /// Upstream base URLs used instead of `base_url` (regional relays in front of Google).
    pub relays: Vec<String>,
    /// `ordered` (the first healthy relay) or `rotate`.
    pub relay_order: super::RelayOrder,
    /// Seconds between probes of resting proxies and relays (0: none).
    pub probe_interval_secs: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            base_url: "https://generativelanguage.googleapis.com".into(),
            connect_timeout_secs: 10,
            response_timeout_secs: 120,
            stream_idle_timeout_secs: 120,
            proxy: String::new(),
            proxies: Vec::new(),
            proxies_file: String::new(),
            relays: Vec::new(),
            relay_order: super::RelayOrder::default(),
            probe_interval_secs: 10,
        }
    }
}

impl UpstreamConfig {
    /// Connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }
    /// Response-head timeout.
    pub fn response_timeout(&self) -> Duration {
        Duration::from_secs(self.response_timeout_secs)
    }
    /// Stream idle timeout.
    pub fn stream_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.stream_idle_timeout_secs)
    }

    /// The proxies written in config (`proxy`, then `proxies`).
    pub fn proxy_specs(&self) -> Result<Vec<super::ProxySpec>, String> {
        let entries = std::iter::once(&self.proxy).filter(|p| !p.is_empty()).chain(&self.proxies);
        entries
            .enumerate()
            .map(|(i, entry)| super::ProxySpec::parse(entry).map_err(|e| format!("entry {}: {e}", i + 1)))
            .collect()
    }

    /// The base URLs calls go to: `relays`, or `base_url` alone.
    pub fn relay_bases(&self) -> Vec<String> {
        if self.relays.is_empty() { vec![self.base_url.clone()] } else { self.relays.clone() }
    }
}

/// `[retry]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Failures a request may spend that say nothing about the key (5xx,
    /// timeouts, cuts, overload), the first attempt's included.
    pub max_attempts: u32,
    /// Failures that belong to a key (dead, suspended, region, its quota) a
    /// request may meet; each moves on to another key without spending
    /// `max_attempts`.
    pub max_key_failures: u32,
    /// Seconds after which no new attempt starts.
    pub max_elapsed_secs: u64,
    /// Base backoff before retrying after a 503 "overloaded", in milliseconds.
    pub overload_backoff_ms: u64,
    /// Times an empty reply (candidates with nothing in them) is retried on
    /// another key by the built-in policy; 0 relays empty replies as they are.
    pub empty_reply_retries: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            max_key_failures: 32,
            max_elapsed_secs: 180,
            overload_backoff_ms: 200,
            empty_reply_retries: 1,
        }
    }
}

/// `[cooldown]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CooldownConfig {
    /// Seconds a (key, model) rests after a 429 that carries no retry delay.
    pub rate_limit_secs: u64,
    /// Consecutive failures (5xx, timeouts) after which a key rests.
    pub failure_threshold: u32,
    /// Seconds a key rests after `failure_threshold` consecutive failures.
    pub failure_secs: u64,
    /// Seconds a key rests after 400 FAILED_PRECONDITION (region, billing).
    pub precondition_secs: u64,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self { rate_limit_secs: 60, failure_threshold: 5, failure_secs: 60, precondition_secs: 3600 }
    }
}

/// How the pool picks a key among the usable ones.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Each usable key in turn.
    #[default]
    RoundRobin,
    /// A uniformly random usable key.
    Random,
    /// The key with fewer requests in flight (of two picked at random).
    LeastInFlight,
}

/// `[pool]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// Key selection strategy.
    pub strategy: Strategy,
    /// Send a conversation's requests to the key it last used while that key
    /// is usable (Gemini's implicit context cache is per key).
    pub affinity: bool,
    /// Seconds a conversation's key is remembered after its last request.
    pub affinity_ttl_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self { strategy: Strategy::default(), affinity: true, affinity_ttl_secs: 600 }
    }
}

impl PoolConfig {
    /// How long a conversation keeps its key (`None`: affinity off).
    pub fn affinity_ttl(&self) -> Option<Duration> {
        (self.affinity && self.affinity_ttl_secs > 0).then(|| Duration::from_secs(self.affinity_ttl_secs))
    }
}

/// `[scan]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Seconds between periodic health scans; 0 turns them off.
    pub interval_secs: u64,
    /// Keys checked at once.
    pub concurrency: usize,
    /// Scan once right after start.
    pub on_start: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self { interval_secs: 6 * 3600, concurrency: 16, on_start: false }
    }
}

/// `[store]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Folder for the SQLite file and generated secrets.
    pub data_dir: PathBuf,
    /// A `postgres://` or `mysql://` URL to use instead of SQLite.
    pub database_url: String,
    /// Milliseconds between flushes of buffered log rows and key state.
    pub flush_interval_ms: u64,
    /// Rows written per batch at most.
    pub batch_size: usize,
    /// Days the request log is kept.
    pub log_retention_days: u32,
    /// Days hourly usage (requests, tokens, cost per client, model and key
    /// group) is kept.
    pub usage_retention_days: u32,
    /// Days the per-minute request rollups (the stats and charts) are kept.
    pub rollup_retention_days: u32,
    /// Share of successful requests whose row goes to the request log (0 to
    /// 1); failed ones are always kept, and the rollups count every request.
    pub log_sample_successes: f64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: String::new(),
            flush_interval_ms: 1000,
            batch_size: 500,
            log_retention_days: 30,
            usage_retention_days: 400,
            rollup_retention_days: 90,
            log_sample_successes: 1.0,
        }
    }
}

/// `[auth]`
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Keys clients present to gemgate.
    #[serde(deserialize_with = "string_or_list")]
    pub client_keys: Vec<String>,
    /// Serve clients without any key. Off unless said.
    pub open: bool,
    /// The admin key.
    pub admin_key: String,
    /// A separate bearer token for `/metrics`; empty means the admin key.
    pub metrics_token: String,
}

/// `[keys]`
#[derive(Clone, Debug, Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// Folder of key files.
    pub dir: PathBuf,
    /// Accept keys that do not look like `AIza…` keys.
    pub allow_nonstandard: bool,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("keys"), allow_nonstandard: false }
    }
}

/// `[policy]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// The rhai script deciding failover; empty means the built-in policy.
    pub file: PathBuf,
    /// Milliseconds one script call may run before it is stopped (the
    /// built-in decision is used instead).
    pub time_limit_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self { file: PathBuf::new(), time_limit_ms: 10 }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// For people.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// `[log]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// Level filter (`info`, `debug`, `gemgate=debug,info`); RUST_LOG wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info,sqlx=warn,ractor=warn".into() }
    }
}

/// `[reload]`
#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadConfig {
    /// Watch config.toml, the keys folder and the policy script.
    pub watch: bool,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self { watch: true }
    }
}

/// `[models."name"]`: one key's limits for one model.
#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelLimits {
    /// Requests per minute per key; 0 means no limit.
    pub rpm: u32,
    /// Requests per day (Pacific) per key; 0 means no limit.
    pub rpd: u32,
}

impl Config {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |field, message: &str| Err(ConfigError::Invalid { field, message: message.to_string(), at: String::new() });
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return invalid("server.listen", "expected an address with port, like 127.0.0.1:8080 or 0.0.0.0:8080");
        }
        if self.server.max_body_bytes < 1024 {
            return invalid("server.max_body_bytes", "must be at least 1024");
        }
        if !(0.0..=1.0).contains(&self.store.log_sample_successes) {
            return invalid("store.log_sample_successes", "must be between 0 and 1");
        }
        let server = &self.server;
        if [server.header_read_timeout_secs, server.idle_timeout_secs, server.body_read_timeout_secs].contains(&0) {
            return invalid("server.header_read_timeout_secs", "server timeouts must be at least 1 second");
        }
        if server.max_connections == 0 || server.max_connections_per_ip == 0 {
            return invalid("server.max_connections", "connection caps must be at least 1");
        }
        if server.auth_failures_per_minute == 0 {
            return invalid("server.auth_failures_per_minute", "must be at least 1");
        }
        self.server.trusted_networks()?;
        self.clients.validate()?;
        super::clients::validate_prices(&self.prices)?;
        let name_like = |name: &str, wildcard: bool| {
            (1..=128).contains(&name.len())
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b) || (wildcard && b == b'*'))
        };
        for shaping in std::iter::once(&self.shaping).chain(self.shaping.clients.values()) {
            if let Some(level) = &shaping.thinking_level
                && !["minimal", "low", "medium", "high"].contains(&level.as_str())
            {
                return invalid("shaping.thinking_level", "must be minimal, low, medium or high");
            }
            if shaping.safety_settings.iter().any(|s| !s.get("category").is_some_and(|c| c.is_string())) {
                return invalid("shaping.safety_settings", "each entry needs a category and a threshold");
            }
        }
        if self.shaping.clients.values().any(|client| !client.clients.is_empty()) {
            return invalid("shaping.clients", "a client's shaping cannot hold other clients");
        }
        let catalog = &self.catalog;
        if let Some(bad) = catalog.allow.iter().chain(&catalog.deny).find(|p| !name_like(p, true)) {
            return Err(ConfigError::Invalid {
                field: "catalog.allow",
                message: format!("`{bad}` is not a model name or pattern"),
                at: String::new(),
            });
        }
        if let Some((alias, target)) =
            catalog.aliases.iter().find(|(a, t)| !name_like(a, false) || !name_like(t, false))
        {
            return Err(ConfigError::Invalid {
                field: "catalog.aliases",
                message: format!("`{alias}` = `{target}`: both must be model names"),
                at: String::new(),
            });
        }
        if self.openai.keepalive_secs == 0 {
            return invalid("openai.keepalive_secs", "must be at least 1");
        }
        if self.policy.time_limit_ms == 0 || self.policy.time_limit_ms > 10_000 {
            return invalid("policy.time_limit_ms", "must be between 1 and 10000");
        }
        let base = &self.upstream.base_url;
        if !(base.starts_with("http://") || base.starts_with("https://")) || reqwest::Url::parse(base).is_err() {
            return invalid(
                "upstream.base_url",
                "expected an http(s) URL such as https://generativelanguage.googleapis.com",
            );
        }
        if !self.upstream.proxy.is_empty() && super::ProxySpec::parse(&self.upstream.proxy).is_err() {
            return invalid("upstream.proxy", "expected a proxy URL such as socks5://127.0.0.1:1080");
        }
        if let Err(message) = self.upstream.proxy_specs() {
            return Err(ConfigError::Invalid { field: "upstream.proxies", message, at: String::new() });
        }
        let mut names = std::collections::HashSet::new();
        if let Some(twice) =
            self.upstream.proxy_specs().unwrap_or_default().into_iter().find(|s| !names.insert(s.name.clone()))
        {
            return Err(ConfigError::Invalid {
                field: "upstream.proxies",
                message: format!("two proxies are named `{}`; name them apart with NAME=URL", twice.name),
                at: String::new(),
            });
        }
        if let Some(bad) = self
            .upstream
            .relays
            .iter()
            .find(|r| !(r.starts_with("http://") || r.starts_with("https://")) || reqwest::Url::parse(r).is_err())
        {
            let shown: String = bad.chars().take(80).collect();
            let message = format!("`{shown}` is not an http(s) base URL");
            return Err(ConfigError::Invalid { field: "upstream.relays", message, at: String::new() });
        }
        if self.upstream.response_timeout_secs == 0 || self.upstream.stream_idle_timeout_secs == 0 {
            return invalid("upstream.response_timeout_secs", "timeouts must be at least 1 second");
        }
        if self.retry.max_attempts == 0 || self.retry.max_attempts > 100 {
            return invalid("retry.max_attempts", "must be between 1 and 100");
        }
        if self.retry.max_key_failures == 0 || self.retry.max_key_failures > 10_000 {
            return invalid("retry.max_key_failures", "must be between 1 and 10000");
        }
        if self.scan.concurrency == 0 || self.scan.concurrency > 1024 {
            return invalid("scan.concurrency", "must be between 1 and 1024");
        }
        if self.store.batch_size == 0 {
            return invalid("store.batch_size", "must be at least 1");
        }
        let url = self.store.database_url.trim();
        if !url.is_empty()
            && !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"].iter().any(|p| url.starts_with(p))
        {
            return invalid(
                "store.database_url",
                "expected a sqlite:, postgres: or mysql: URL, or empty for the SQLite default",
            );
        }
        for key in &self.auth.client_keys {
            if key.len() < 16 {
                return invalid("auth.client_keys", "each client key needs at least 16 characters");
            }
        }
        if !self.auth.admin_key.is_empty() && self.auth.admin_key.len() < 16 {
            return invalid("auth.admin_key", "the admin key needs at least 16 characters");
        }
        Ok(())
    }
}

/// Accepts a TOML list or one comma-separated string (the environment's form).
fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize, serde::Serialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(text) => text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
        OneOrMany::Many(list) => list,
    })
}
