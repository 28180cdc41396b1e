//! An open-loop load generator: requests are scheduled at a fixed rate
//! whatever the server does, and each one's latency is measured from when it
//! was due (not from when a free connection let it go), so queueing shows up
//! in the figures instead of silently lowering the rate, as closed-loop
//! tools (wrk) would.
//!
//! `cargo run --release --example openloop -- --url URL --rate 2000 --secs 10 --connections 256 \
//!  --header 'x-goog-api-key: KEY' --body '{…}'`
//!
//! Prints one line: `offered achieved p50_ms p99_ms errors`.

use clap::Parser;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, Semaphore};

#[derive(Parser)]
struct Args {
    /// The URL to POST to.
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long)]
    rate: u64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Connections at most (requests beyond wait, and their wait counts).
    #[arg(long, default_value_t = 256)]
    connections: usize,
    /// `name: value` headers.
    #[arg(long)]
    header: Vec<String>,
    /// The request body.
    #[arg(long, default_value = "")]
    body: String,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    gemgate::upstream::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    for header in &args.header {
        let (name, value) = header.split_once(':').ok_or("headers are `name: value`")?;
        headers.insert(reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())?, value.trim().parse()?);
    }
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.connections)
        .tcp_nodelay(true)
        .http1_only()
        .build()?;
    let connections = Arc::new(Semaphore::new(args.connections));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((args.rate * args.secs) as usize)));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let total = args.rate * args.secs;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let body = bytes::Bytes::from(args.body.clone());
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let (client, url, body) = (client.clone(), args.url.clone(), body.clone());
        let (connections, latencies, errors) = (connections.clone(), latencies.clone(), errors.clone());
        tasks.spawn(async move {
            let Ok(_permit) = connections.acquire().await else { return };
            let ok = match client.post(&url).header("content-type", "application/json").body(body).send().await {
                Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                Err(_) => false,
            };
            if ok {
                latencies.lock().await.push(due.elapsed());
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let at = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[at].as_secs_f64() * 1000.0
    };
    let served = latencies.len() as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    println!(
        "{} {:.0} {:.2} {:.2} {}",
        args.rate,
        served,
        percentile(0.50),
        percentile(0.99),
        errors.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}
