//! `gemgate --demo`: the fake upstream in-process, a handful of fake keys of
//! every behaviour, and a little traffic, so a newcomer sees requests served,
//! failover and cooldowns within a minute, without any Google key.

use crate::app;
use crate::config::LoadedConfig;
use crate::fake_upstream::{FakeUpstream, fake_key};
use std::time::Duration;

/// The demo's keys: (behaviour token, what the operator will see).
const DEMO_KEYS: &[(&str, &str)] = &[
    ("ok", "healthy"),
    ("ok", "healthy"),
    ("ok", "healthy"),
    ("prorpm", "429 per-minute quota on gemini-2.5-pro only: cools down for that model, keeps serving flash"),
    ("rpd", "429 per-day quota: cools down until midnight Pacific"),
    ("invalid", "400 API_KEY_INVALID: disabled at first use"),
    ("overload", "503 overloaded: failover to another key"),
    ("cut0", "connection cut before the first byte: transparent failover"),
];

/// Runs the demo until Ctrl-C.
pub async fn run(mut loaded: LoadedConfig) -> anyhow::Result<()> {
    let fake = FakeUpstream::start().await?;
    let dir = std::env::temp_dir().join(format!("gemgate-demo-{}", std::process::id()));
    let keys_dir = dir.join("keys");
    std::fs::create_dir_all(&keys_dir)?;
    let mut key_file = String::from("# gemgate --demo keys: each key's name tells the fake upstream how to behave\n");
    for (n, (token, meaning)) in DEMO_KEYS.iter().enumerate() {
        key_file.push_str(&format!("# {meaning}\n{}\n", fake_key(token, n as u32)));
    }
    std::fs::write(keys_dir.join("demo.txt"), key_file)?;

    let config = &mut loaded.config;
    config.upstream.base_url = fake.base_url();
    config.keys.dir = keys_dir;
    config.store.data_dir = dir.join("data");
    config.store.database_url = String::new();
    config.auth.open = true;
    config.scan.on_start = false;
    let admin_key = crate::secrets::generate_secret();
    config.auth.admin_key = admin_key.clone();
    let running = app::start(loaded).await?;
    let base = format!("http://{}", running.addr);
    println!("\n  gemgate demo: fake Google API at {}, {} demo keys, open access.", fake.base_url(), DEMO_KEYS.len());
    println!("  Try it yourself:");
    println!(
        "    curl -s {base}/v1beta/models/gemini-2.5-flash:generateContent -H 'content-type: application/json' \\\n      -d '{{\"contents\":[{{\"parts\":[{{\"text\":\"hello\"}}]}}]}}'"
    );
    println!("  The admin dashboard: {base}/admin/  (admin key {admin_key})");
    println!("  Demo traffic follows; Ctrl-C stops.\n");

    let traffic = tokio::spawn(drive_traffic(base));
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = traffic => {}
    }
    running.shutdown().await;
    fake.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn drive_traffic(base: String) {
    let client = reqwest::Client::new();
    let body = r#"{"contents":[{"role":"user","parts":[{"text":"Tell me about key pools"}]}]}"#;
    for n in 1..=40u32 {
        let model = if n % 2 == 0 { "gemini-2.5-pro" } else { "gemini-2.5-flash" };
        let (action, query) = if n % 3 == 0 { ("streamGenerateContent", "?alt=sse") } else { ("generateContent", "") };
        let url = format!("{base}/v1beta/models/{model}:{action}{query}");
        let started = std::time::Instant::now();
        let result = client.post(&url).header("content-type", "application/json").body(body).send().await;
        let outcome = match result {
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                if status.is_success() {
                    format!("{status} ({} bytes)", text.len())
                } else {
                    let message: String = text.chars().take(120).collect();
                    format!("{status}: {}", message.replace('\n', " "))
                }
            }
            Err(err) => format!("error: {err}"),
        };
        println!("  demo request {n:>2}  {model:<18} {action:<22} → {outcome}  [{} ms]", started.elapsed().as_millis());
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    println!("\n  demo traffic done; gemgate keeps running until Ctrl-C.");
    std::future::pending::<()>().await;
}
