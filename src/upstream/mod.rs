//! The HTTP client to Google (reqwest over rustls) and the classification of
//! Google's answers.

pub mod egress;
mod google_error;

use egress::{DIRECT, ProxySpec, Relays, RouteHealth, by_health, rendezvous_order};
pub use google_error::{FailureKind, GoogleError, classify_google_error, is_daily_quota, parse_proto_duration};

use crate::config::UpstreamConfig;
use crate::key_state::{DisableReason, ScanVerdict};
use crate::keys::{ApiKey, Fingerprint, KeyRecord};
use arc_swap::ArcSwap;
use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// One call to make upstream, independent of the key it is made with.
#[derive(Clone, Debug)]
pub struct UpstreamRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query on Google's side, e.g. `/v1beta/models/m:streamGenerateContent?alt=sse`
    /// (never with a `key=` parameter: the key goes in a header).
    pub path_and_query: String,
    /// The client's body, untouched.
    pub body: Bytes,
    /// The client's content type, if any.
    pub content_type: Option<HeaderValue>,
    /// Send the key as `Authorization: Bearer` (Google's OpenAI-compatible
    /// endpoint) instead of `x-goog-api-key`.
    pub bearer: bool,
}

/// A shared, pooled client for Google's API: one reqwest client per egress
/// route (direct, and one per proxy), reused by every call.
#[derive(Clone)]
pub struct UpstreamClient {
    inner: Arc<Inner>,
}

struct Inner {
    direct: reqwest::Client,
    connect_timeout: Duration,
    response_timeout: Duration,
    /// Proxies from config.toml; the proxies file adds to them.
    configured: Vec<ProxySpec>,
    proxies: ArcSwap<Proxies>,
    relays: Relays,
}

/// A proxy with its client and health.
pub struct ProxyRoute {
    /// As configured.
    pub spec: ProxySpec,
    client: reqwest::Client,
    /// Its health.
    pub health: Arc<RouteHealth>,
}

/// The proxies in force (swapped whole when the proxies file changes).
#[derive(Default)]
pub struct Proxies {
    /// In configured order.
    pub routes: Vec<ProxyRoute>,
    names: Vec<Arc<str>>,
}

impl Proxies {
    /// The proxies `key` tries, best first: its pin when it names one (or
    /// none for `direct`), else its rendezvous order; healthy before resting.
    /// `None` in the list is the direct route.
    fn for_key(&self, key: &KeyRoute<'_>, limit: usize) -> Vec<Option<&ProxyRoute>> {
        let Some(preferred) = self.preference(key) else { return vec![None] };
        by_health(preferred.map(|i| (&*self.routes[i].health, &self.routes[i])), limit).into_iter().map(Some).collect()
    }

    /// The position of the proxy `key` is pinned to, healthy or not: the
    /// one its line names, else its first by hashing (None: direct).
    pub fn home(&self, key: &KeyRoute<'_>) -> Option<usize> {
        self.preference(key)?.next()
    }

    /// The proxies `key` prefers, by position, health aside: the one its line
    /// names, then its rendezvous order. `None`: it leaves directly.
    fn preference(&self, key: &KeyRoute<'_>) -> Option<impl Iterator<Item = usize>> {
        if self.routes.is_empty() || key.pinned == Some(DIRECT) {
            return None;
        }
        let named = key.pinned.and_then(|name| self.names.iter().position(|n| &**n == name));
        let order = rendezvous_order(key.fingerprint, &self.names);
        Some(named.into_iter().chain(order.into_iter().filter(move |&i| Some(i) != named)))
    }
}

/// Who a call is made for: the key, its fingerprint (for proxy pinning) and
/// the proxy its key line names, if any.
#[derive(Clone, Copy)]
pub struct KeyRoute<'a> {
    /// The key sent upstream.
    pub key: &'a ApiKey,
    /// Its fingerprint.
    pub fingerprint: &'a Fingerprint,
    /// `proxy=NAME` from its key line.
    pub pinned: Option<&'a str>,
}

impl<'a> From<&'a KeyRecord> for KeyRoute<'a> {
    fn from(record: &'a KeyRecord) -> Self {
        Self { key: &record.key, fingerprint: &record.fingerprint, pinned: record.proxy.as_deref() }
    }
}

/// Routes one call tries at most before it fails as an egress failure.
const ROUTES_PER_CALL: usize = 3;

fn client_builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        // Failover is ours: reqwest must neither follow redirects nor retry.
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .referer(false)
        .user_agent(concat!("gemgate/", env!("CARGO_PKG_VERSION")))
}

/// What stopped a call before Google answered.
enum CallError {
    /// The proxy or relay could not carry it (connect refused, proxy auth, TLS to it).
    Egress(&'static str),
    /// Any other failure.
    Failed(FailureKind),
}

impl UpstreamClient {
    /// Builds the client from `[upstream]` (proxies from config only; see
    /// [`UpstreamClient::set_file_proxies`]).
    pub fn new(config: &UpstreamConfig) -> Result<Self, reqwest::Error> {
        install_crypto_provider();
        let configured = config.proxy_specs().unwrap_or_default();
        let connect_timeout = config.connect_timeout();
        let inner = Inner {
            direct: client_builder(connect_timeout).no_proxy().build()?,
            connect_timeout,
            response_timeout: config.response_timeout(),
            proxies: ArcSwap::from_pointee(Proxies::default()),
            configured: configured.clone(),
            relays: Relays::new(&config.relay_bases(), config.relay_order),
        };
        let client = Self { inner: Arc::new(inner) };
        client.install_proxies(configured)?;
        Ok(client)
    }

    /// Makes the proxies those of config.toml plus `from_file` (the proxies
    /// file changed). Proxies that stay keep their client and health.
    pub fn set_file_proxies(&self, from_file: Vec<ProxySpec>) -> Result<(), String> {
        let mut specs = self.inner.configured.clone();
        for spec in from_file {
            if specs.iter().any(|s| s.name == spec.name) {
                return Err(format!("two proxies are named `{}`; name them apart with NAME=URL", spec.name));
            }
            specs.push(spec);
        }
        self.install_proxies(specs).map_err(|_| "a proxy URL was refused".to_string())
    }

    fn install_proxies(&self, specs: Vec<ProxySpec>) -> Result<(), reqwest::Error> {
        let current = self.inner.proxies.load();
        let mut routes = Vec::with_capacity(specs.len());
        for spec in specs {
            let kept = current.routes.iter().find(|r| r.spec == spec);
            let route = match kept {
                Some(kept) => ProxyRoute { spec, client: kept.client.clone(), health: kept.health.clone() },
                None => {
                    let client = client_builder(self.inner.connect_timeout).proxy(spec.reqwest_proxy()?).build()?;
                    ProxyRoute { spec, client, health: Arc::default() }
                }
            };
            routes.push(route);
        }
        let names = routes.iter().map(|r| r.spec.name.clone()).collect();
        self.inner.proxies.store(Arc::new(Proxies { routes, names }));
        Ok(())
    }

    /// The proxies in force.
    pub fn proxies(&self) -> Arc<Proxies> {
        self.inner.proxies.load_full()
    }

    /// The relays.
    pub fn relays(&self) -> &Relays {
        &self.inner.relays
    }

    /// Sends `request` for `key`, waiting at most the response timeout for
    /// the response head; the body is left to stream. The call leaves through
    /// the key's proxy and the best relay; a proxy or relay that cannot carry
    /// it is rested and the next one tried, and only when none can is the
    /// failure [`FailureKind::Egress`] (never the key's).
    pub async fn send<'a>(
        &self,
        request: &UpstreamRequest,
        key: impl Into<KeyRoute<'a>>,
    ) -> Result<reqwest::Response, FailureKind> {
        let key = key.into();
        let proxies = self.inner.proxies.load();
        if let ([], [relay]) = (&proxies.routes[..], &self.inner.relays.list[..]) {
            // The common case, one way out: no route lists to build.
            let started = std::time::Instant::now();
            return match self.call(request, key.key, &self.inner.direct, &relay.base, false).await {
                Ok(response) => {
                    relay.health.carried(started.elapsed());
                    Ok(response)
                }
                Err(CallError::Egress(why)) => {
                    relay.health.failed(why);
                    Err(FailureKind::Egress)
                }
                Err(CallError::Failed(kind)) => Err(kind),
            };
        }
        let routes = proxies.for_key(&key, ROUTES_PER_CALL);
        let relays = self.inner.relays.for_call(ROUTES_PER_CALL);
        let mut tries = 0;
        for proxy in &routes {
            for relay in &relays {
                if tries == ROUTES_PER_CALL {
                    break;
                }
                tries += 1;
                let started = std::time::Instant::now();
                let http = proxy.map_or(&self.inner.direct, |p| &p.client);
                match self.call(request, key.key, http, &relay.base, proxy.is_some()).await {
                    Ok(response) => {
                        if let Some(proxy) = proxy {
                            proxy.health.carried(started.elapsed());
                        }
                        relay.health.carried(started.elapsed());
                        return Ok(response);
                    }
                    // Without a proxy, a refused connection is the relay's; with one, the proxy's.
                    Err(CallError::Egress(why)) => match proxy {
                        Some(proxy) => {
                            tracing::warn!(proxy = %proxy.spec.label, "proxy could not carry a call ({why}); resting it");
                            proxy.health.failed(why);
                            break;
                        }
                        None => {
                            tracing::warn!(relay = %relay.base, "relay could not be reached ({why}); resting it");
                            relay.health.failed(why);
                        }
                    },
                    Err(CallError::Failed(kind)) => return Err(kind),
                }
            }
        }
        Err(FailureKind::Egress)
    }

    async fn call(
        &self,
        request: &UpstreamRequest,
        key: &ApiKey,
        http: &reqwest::Client,
        base: &str,
        through_proxy: bool,
    ) -> Result<reqwest::Response, CallError> {
        let url = format!("{base}{}", request.path_and_query);
        let mut builder = http.request(request.method.clone(), url);
        builder = if request.bearer {
            builder.bearer_auth(key.expose())
        } else {
            builder.header("x-goog-api-key", key.expose())
        };
        if let Some(content_type) = &request.content_type {
            builder = builder.header(CONTENT_TYPE, content_type.clone());
        }
        if request.method != Method::GET {
            builder = builder.body(request.body.clone());
        }
        match tokio::time::timeout(self.inner.response_timeout, builder.send()).await {
            // An HTTP proxy refusing its credentials answers for Google.
            Ok(Ok(response)) if response.status() == reqwest::StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                Err(CallError::Egress("the proxy refused its credentials (407)"))
            }
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) if err.is_connect() => Err(CallError::Egress(if err.is_timeout() {
                "connecting timed out"
            } else {
                "the connection was refused or failed"
            })),
            Ok(Err(err)) if err.is_timeout() => Err(CallError::Failed(FailureKind::Timeout)),
            // Through a proxy, a connection that breaks before any answer is the proxy's
            // (a proxy that died leaves its pooled connections broken).
            Ok(Err(_)) if through_proxy => Err(CallError::Egress("the connection through the proxy broke")),
            Ok(Err(_)) => Err(CallError::Failed(FailureKind::Network)),
            Err(_) => Err(CallError::Failed(FailureKind::Timeout)),
        }
    }

    /// Ends the rest of every resting proxy and relay that answers a TCP
    /// connect now (a real call then proves it).
    pub async fn probe(&self) {
        let proxies = self.proxies();
        let now = egress::now_ms();
        let resting =
            proxies.routes.iter().filter(|r| r.health.resting(now)).map(|r| (r.spec.address.clone(), r.health.clone()));
        let relays = self.inner.relays.list.iter().filter(|r| r.health.resting(now)).filter_map(|r| {
            let url = reqwest::Url::parse(&r.base).ok()?;
            Some((format!("{}:{}", url.host_str()?, url.port_or_known_default()?), r.health.clone()))
        });
        for (address, health) in resting.chain(relays).collect::<Vec<_>>() {
            let connect = tokio::net::TcpStream::connect(address);
            if let Ok(Ok(_)) = tokio::time::timeout(self.inner.connect_timeout, connect).await {
                health.probe_succeeded();
            }
        }
    }

    /// Checks a key with the cheapest real call Google offers.
    pub async fn check_key(&self, key: &KeyRecord) -> ScanVerdict {
        let request = UpstreamRequest {
            method: Method::GET,
            path_and_query: "/v1beta/models?pageSize=1".into(),
            body: Bytes::new(),
            content_type: None,
            bearer: false,
        };
        let Ok(response) = self.send(&request, key).await else { return ScanVerdict::Unknown };
        let status = response.status().as_u16();
        if response.status().is_success() {
            return ScanVerdict::Alive;
        }
        let body = read_limited(response, 64 * 1024).await;
        match classify_google_error(&GoogleError::parse(status, &body)) {
            FailureKind::KeyInvalid => ScanVerdict::Dead(DisableReason::Invalid),
            FailureKind::KeyDenied => ScanVerdict::Dead(DisableReason::PermissionDenied),
            // A quota answer proves the key exists and is accepted.
            FailureKind::RateLimited { .. } => ScanVerdict::Alive,
            _ => ScanVerdict::Unknown,
        }
    }
}

/// Installs ring as the process's TLS crypto provider (reqwest is built
/// without a bundled one). Call before building any reqwest client; repeated
/// calls are harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads at most `limit` bytes of a (small, error) body; the rest is dropped.
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Bytes {
    let mut buffer = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = limit.saturating_sub(buffer.len());
            buffer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buffer.len() >= limit {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    Bytes::from(buffer)
}
