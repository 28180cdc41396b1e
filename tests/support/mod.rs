//! Shared support for end-to-end tests: a fake Google on a loopback port and
//! a real gemgate in front of it, configured in a temporary folder.
#![allow(dead_code, unused_imports)]

pub mod proxies;

use gemgate::app::{self, RunningApp};
use gemgate::config::{Config, LoadedConfig};
use gemgate::fake_upstream::FakeUpstream;
pub use gemgate::fake_upstream::{Behaviour, fake_key};
use gemgate::key_state::KeySnapshot;
use gemgate::keys::Fingerprint;
use std::time::{Duration, Instant};

/// The client key every test presents.
pub const CLIENT_KEY: &str = "test-client-key-0123456789";

/// The admin key of harnesses started from files.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789";

/// A fake upstream, a gemgate in front of it, and their folder.
pub struct Harness {
    pub fake: FakeUpstream,
    pub app: Option<RunningApp>,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    config: Config,
}

/// A config for tests: loopback, fast flushes, no periodic scans.
pub fn test_config(base_url: &str) -> Config {
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.upstream.base_url = base_url.into();
    config.upstream.response_timeout_secs = 5;
    config.upstream.stream_idle_timeout_secs = 5;
    config.auth.client_keys = vec![CLIENT_KEY.into()];
    config.scan.interval_secs = 0;
    config.store.flush_interval_ms = 20;
    config.retry.overload_backoff_ms = 10;
    config
}

impl Harness {
    /// Starts with `keys` in `keys/test.txt`.
    pub async fn start(keys: &[String]) -> Self {
        Self::start_with(keys, |_| {}).await
    }

    /// Starts with `keys` and a config adjusted by `tweak`.
    pub async fn start_with(keys: &[String], tweak: impl FnOnce(&mut Config)) -> Self {
        gemgate::upstream::install_crypto_provider();
        let fake = FakeUpstream::start().await.expect("fake upstream starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/test.txt"), keys.join("\n")).unwrap();
        let mut config = test_config(&fake.base_url());
        tweak(&mut config);
        let mut harness = Self { fake, app: None, dir, http: reqwest::Client::new(), config };
        harness.boot().await;
        harness
    }

    /// Starts from real files: `config.toml` (the test settings plus `extra`
    /// TOML), `keys/test.txt`, and `policy.rhai` when given, so live reload
    /// watches them all.
    pub async fn start_with_files(keys: &[String], extra: &str, policy: Option<&str>) -> Self {
        gemgate::upstream::install_crypto_provider();
        let fake = FakeUpstream::start().await.expect("fake upstream starts");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/test.txt"), keys.join("\n")).unwrap();
        if let Some(policy) = policy {
            std::fs::write(dir.path().join("policy.rhai"), policy).unwrap();
        }
        std::fs::write(dir.path().join("config.toml"), config_file_text(&fake.base_url(), policy.is_some(), extra))
            .unwrap();
        let mut harness = Self { fake, app: None, dir, http: reqwest::Client::new(), config: Config::default() };
        harness.boot_from_file().await;
        harness
    }

    async fn boot_from_file(&mut self) {
        let env = figment::providers::Env::prefixed("GEMGATE_TEST_UNUSED_").split("__");
        let loaded =
            gemgate::config::load_with_env(Some(&self.dir.path().join("config.toml")), env).expect("config loads");
        self.config = loaded.config.clone();
        self.app = Some(app::start(loaded).await.expect("gemgate starts"));
    }

    async fn boot(&mut self) {
        let loaded = LoadedConfig { config: self.config.clone(), file: None, base_dir: self.dir.path().to_path_buf() };
        self.app = Some(app::start(loaded).await.expect("gemgate starts"));
    }

    /// The running gemgate.
    pub fn app(&self) -> &RunningApp {
        self.app.as_ref().expect("gemgate is running")
    }

    /// Stops gemgate (flushing its store) and starts it again on the same folder.
    pub async fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
        self.boot().await;
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app().addr)
    }

    /// POSTs JSON with the client key.
    pub async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .header("x-goog-api-key", CLIENT_KEY)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("request reaches gemgate")
    }

    /// GETs with the client key.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header("x-goog-api-key", CLIENT_KEY)
            .send()
            .await
            .expect("request reaches gemgate")
    }

    /// POSTs an OpenAI chat completion with the client key as a bearer token.
    pub async fn chat(&self, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(CLIENT_KEY)
            .json(body)
            .send()
            .await
            .expect("request reaches gemgate")
    }

    /// generateContent on `model` with a short prompt.
    pub async fn generate(&self, model: &str) -> reqwest::Response {
        self.post(&format!("/v1beta/models/{model}:generateContent"), PROMPT).await
    }

    /// The published state of `key`, once the key actor has caught up.
    pub async fn snapshot(&self, key: &str) -> KeySnapshot {
        let fingerprint = Fingerprint::of(key);
        self.app().pool.settled(vec![fingerprint]).await;
        let slots = self.app().pool.slots();
        let slot = slots.iter().find(|s| s.record.fingerprint == fingerprint).expect("key is in the pool");
        slot.snapshot()
    }

    /// Waits until `check` holds, up to 5 s.
    pub async fn eventually<F: AsyncFn() -> bool>(&self, what: &str, check: F) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for: {what}");
    }

    /// Stops everything.
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.shutdown().await;
        }
    }
}

/// The test settings as a config file.
pub fn config_file_text(base_url: &str, with_policy: bool, extra: &str) -> String {
    let policy = if with_policy { "[policy]\nfile = \"policy.rhai\"\n" } else { "" };
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"{base_url}\"\nresponse_timeout_secs = 5\n\
         [auth]\nclient_keys = [\"{CLIENT_KEY}\"]\nadmin_key = \"{ADMIN_KEY}\"\n[scan]\ninterval_secs = 0\n[store]\nflush_interval_ms = 20\n\
         [retry]\noverload_backoff_ms = 10\n{policy}{extra}\n"
    )
}

/// A minimal generateContent body.
pub const PROMPT: &str = r#"{"contents":[{"role":"user","parts":[{"text":"hello there"}]}]}"#;

/// Keys of a behaviour, numbered from `from`.
pub fn keys(token: &str, count: u32) -> Vec<String> {
    (0..count).map(|n| fake_key(token, n + 1)).collect()
}

/// Sends `request` as raw bytes (no URL normalisation on the way, unlike
/// reqwest) with `Connection: close` semantics, and returns the status and
/// body of the answer.
pub async fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connects");
    stream.write_all(request).await.expect("request written");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    read.expect("an answer within 10 s").expect("answer read");
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

/// A raw HTTP/1.1 request with the client key, closing after the answer.
pub fn raw_request(method: &str, target: &str, body: &[u8]) -> Vec<u8> {
    let mut request = format!(
        "{method} {target} HTTP/1.1\r\nHost: gemgate\r\nx-goog-api-key: {CLIENT_KEY}\r\nAuthorization: Bearer {CLIENT_KEY}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    request
}

/// This process's resident memory in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Calls the admin API with the admin key; returns status and JSON body.
pub async fn admin_call(
    h: &Harness,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, serde_json::Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = h.http.request(method, h.url(&format!("/admin/api{path}"))).bearer_auth(ADMIN_KEY);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}")))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(18999)
}

/// Starts the real binary in `dir` against `upstream` on `port`, with extra
/// environment, and waits until it answers `/healthz`.
pub async fn spawn_gemgate(
    dir: &std::path::Path,
    upstream: &str,
    port: u16,
    env: &[(&str, &str)],
) -> std::process::Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gemgate"));
    command
        .current_dir(dir)
        .env("GEMGATE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("GEMGATE_UPSTREAM__BASE_URL", upstream)
        .env("GEMGATE_AUTH__CLIENT_KEYS", CLIENT_KEY)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "gemgate did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}
