//! How long a streamed chunk spends inside gemgate: the fake upstream drips
//! events 50 ms apart; each event's arrival time through gemgate (native SSE
//! and OpenAI stream) is compared with its arrival straight from the fake.
//! Goal: under 1 ms per chunk (no buffering).
//!
//! Run: `cargo bench --bench stream_latency`

use gemgate::app;
use gemgate::config::{Config, LoadedConfig};
use gemgate::fake_upstream::{FakeUpstream, fake_key};
use std::time::{Duration, Instant};

const ROUNDS: usize = 20;

async fn arrivals(client: &reqwest::Client, url: &str, headers: &[(&str, &str)], body: &str) -> Vec<Duration> {
    let mut request = client.post(url).header("content-type", "application/json").body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let started = Instant::now();
    let mut response = request.send().await.expect("request");
    let mut times = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if chunk.windows(5).any(|w| w == b"data:") {
            times.push(started.elapsed());
        }
    }
    times
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main]
async fn main() {
    gemgate::upstream::install_crypto_provider();
    let fake = FakeUpstream::start().await.expect("fake");
    let key = fake_key("drip50", 1);
    let dir = std::env::temp_dir().join(format!("gemgate-stream-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("keys")).expect("dir");
    std::fs::write(dir.join("keys/k.txt"), &key).expect("keys");
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    config.upstream.base_url = fake.base_url();
    config.auth.open = true;
    config.scan.interval_secs = 0;
    let gate = app::start(LoadedConfig { config, file: None, base_dir: dir.clone() }).await.expect("gemgate");
    let client = reqwest::Client::new();
    let native_body =
        r#"{"contents":[{"parts":[{"text":"a longer prompt so that the reply has a few words in each chunk"}]}]}"#;
    let openai_body = r#"{"model":"gemini-2.5-flash","stream":true,"messages":[{"role":"user","content":"a longer prompt so that the reply has a few words in each chunk"}]}"#;
    let path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse";
    let (mut native_gap, mut openai_gap) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let direct =
            arrivals(&client, &format!("{}{path}", fake.base_url()), &[("x-goog-api-key", &key)], native_body).await;
        let native = arrivals(&client, &format!("http://{}{path}", gate.addr), &[], native_body).await;
        let openai = arrivals(&client, &format!("http://{}/v1/chat/completions", gate.addr), &[], openai_body).await;
        // Later chunks are timed from the first one, so connection set-up is not counted.
        for i in 1..direct.len().min(native.len()) {
            native_gap.push(((native[i] - native[0]).as_secs_f64() - (direct[i] - direct[0]).as_secs_f64()) * 1000.0);
        }
        // The OpenAI stream opens with the role chunk in the first event; align on the last events.
        let (d, o) = (direct.len(), openai.len());
        if d >= 2 && o >= 2 {
            let direct_span = (direct[d - 1] - direct[0]).as_secs_f64();
            let openai_span = (openai[o - 2] - openai[0]).as_secs_f64();
            openai_gap.push((openai_span - direct_span) * 1000.0);
        }
    }
    println!("streamed chunk delay added by gemgate (median over {ROUNDS} streams, events 50 ms apart):");
    println!("  native SSE:     {:+.3} ms per chunk  (goal < 1 ms)", median(native_gap));
    println!("  OpenAI stream:  {:+.3} ms per chunk  (goal < 1 ms)", median(openai_gap));
    gate.shutdown().await;
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
