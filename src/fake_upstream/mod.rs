//! A fake of Google's Gemini API that answers the way Google does (status
//! codes, error bodies, both streaming modes, cuts, delays), driven by the
//! key it is called with (see [`Behaviour`]). Used by the tests, by
//! `gemgate --demo`, and standalone via `cargo run --example fake_upstream`.

mod behaviour;
mod bodies;
mod handler;
mod reply;

pub use behaviour::{Behaviour, fake_key};
pub use bodies::MODELS;

use poem::listener::TcpAcceptor;
use poem::{EndpointExt, Route, Server};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// What the fake remembers: calls per key and per (key, model), and the
/// behaviours set at run time over the ones the keys carry.
#[derive(Default)]
pub struct FakeState {
    calls: Mutex<HashMap<String, u64>>,
    model_calls: Mutex<HashMap<(String, String), u64>>,
    overrides: Mutex<HashMap<String, Behaviour>>,
    seen: Mutex<std::collections::VecDeque<String>>,
    bodies: Mutex<std::collections::VecDeque<(String, bytes::Bytes)>>,
    /// Conversation starts each key has seen: Gemini's implicit context
    /// cache, which is per key.
    cached_prefixes: Mutex<std::collections::HashSet<(String, u64)>>,
}

/// The smallest prefix Gemini's implicit cache serves (tokens, as Gemini
/// 2.5 Flash documents it).
pub const IMPLICIT_CACHE_MIN_TOKENS: u64 = 1024;

/// Request bodies remembered, newest last.
const BODIES_KEPT: usize = 200;

/// Requests remembered as `METHOD /path?query`, newest last.
const SEEN_KEPT: usize = 10_000;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeState {
    fn record(&self, key: &str, model: &str) {
        *lock(&self.calls).entry(key.to_string()).or_default() += 1;
        *lock(&self.model_calls).entry((key.to_string(), model.to_string())).or_default() += 1;
    }

    fn saw_body(&self, path_and_query: &str, body: &bytes::Bytes) {
        let mut bodies = lock(&self.bodies);
        if bodies.len() >= BODIES_KEPT {
            bodies.pop_front();
        }
        bodies.push_back((path_and_query.to_string(), body.clone()));
    }

    fn saw(&self, method: &str, path_and_query: &str) {
        let mut seen = lock(&self.seen);
        if seen.len() >= SEEN_KEPT {
            seen.pop_front();
        }
        seen.push_back(format!("{method} {path_and_query}"));
    }

    /// Tokens of this request's start (system instruction and first turn)
    /// the key's implicit cache serves: all of them when this key saw the
    /// same start before and it is long enough to be cached, else none.
    fn cached_tokens(&self, key: &str, payload: &serde_json::Value) -> u64 {
        use std::hash::{Hash, Hasher};
        let Some(first) = payload.get("contents").and_then(|c| c.get(0)) else { return 0 };
        let system = payload.get("systemInstruction").cloned().unwrap_or_default();
        let start = serde_json::json!([system.clone(), first]);
        let tokens = bodies::count_tokens(&start);
        if tokens < IMPLICIT_CACHE_MIN_TOKENS {
            return 0;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        start.to_string().hash(&mut hasher);
        let mut seen = lock(&self.cached_prefixes);
        if seen.len() > 100_000 {
            seen.clear();
        }
        if seen.insert((key.to_string(), hasher.finish())) { 0 } else { tokens }
    }

    fn behaviour_of(&self, key: &str) -> Option<Behaviour> {
        lock(&self.overrides).get(key).copied().or_else(|| Behaviour::of_key(key))
    }
}

/// A running fake upstream.
pub struct FakeUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<FakeState>,
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl FakeUpstream {
    /// Starts on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0").await
    }

    /// Starts on `addr`.
    pub async fn start_on(addr: &str) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(FakeState::default());
        let app = Route::new().at("/*path", handler::serve).data(state.clone());
        let (shutdown, signal) = oneshot::channel::<()>();
        let acceptor = crate::server::NoDelayAcceptor(TcpAcceptor::from_tokio(listener)?);
        let server = tokio::spawn(async move {
            Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(
                    app,
                    async {
                        let _ = signal.await;
                    },
                    Some(std::time::Duration::from_secs(1)),
                )
                .await
        });
        Ok(Self { addr, state, shutdown: Some(shutdown), server })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Calls made with `key` (every endpoint).
    pub fn calls(&self, key: &str) -> u64 {
        lock(&self.state.calls).get(key).copied().unwrap_or(0)
    }

    /// Calls made with `key` for `model` (model-less calls count under "").
    pub fn calls_for(&self, key: &str, model: &str) -> u64 {
        lock(&self.state.model_calls).get(&(key.to_string(), model.to_string())).copied().unwrap_or(0)
    }

    /// Calls made with any key.
    pub fn total_calls(&self) -> u64 {
        lock(&self.state.calls).values().sum()
    }

    /// Every request the fake has seen (the newest 10,000), as
    /// `METHOD /path?query`, before it judged them.
    pub fn requests_seen(&self) -> Vec<String> {
        lock(&self.state.seen).iter().cloned().collect()
    }

    /// The newest request body sent to a path containing `path_part`, as JSON.
    pub fn last_body(&self, path_part: &str) -> Option<serde_json::Value> {
        let bodies = lock(&self.state.bodies);
        let (_, body) = bodies.iter().rev().find(|(path, _)| path.contains(path_part))?;
        serde_json::from_slice(body).ok()
    }

    /// Makes `key` behave as `behaviour` from now on.
    pub fn set_behaviour(&self, key: &str, behaviour: Behaviour) {
        lock(&self.state.overrides).insert(key.to_string(), behaviour);
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let _ = (&mut self.server).await;
    }
}
