//! Policy calls per second: the shipped `policies/default.rhai` against the
//! built-in policy, on a 429 outcome (the most common failure).
//! Run: `cargo bench --bench policy`

use gemgate::config::{CooldownConfig, RetryConfig};
use gemgate::policy::case::outcome_from_case;
use gemgate::policy::script::ScriptPolicy;
use gemgate::policy::{DefaultPolicy, Policy};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rate(policy: &dyn Policy, outcome: &gemgate::policy::Outcome) -> f64 {
    for _ in 0..10_000 {
        black_box(policy.decide(black_box(outcome)));
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < Duration::from_secs(2) {
        for _ in 0..1000 {
            black_box(policy.decide(black_box(outcome)));
        }
        calls += 1000;
    }
    calls as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let builtin = DefaultPolicy::new(&CooldownConfig::default(), &RetryConfig::default());
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/default.rhai");
    let script = ScriptPolicy::load(&path, builtin.clone(), Arc::default()).expect("default.rhai compiles");
    let outcome =
        outcome_from_case(&serde_json::json!({"status": 429, "model": "gemini-2.5-pro", "retry_delay_secs": 30}))
            .expect("case");
    let (script_rate, builtin_rate) = (rate(&script, &outcome), rate(&builtin, &outcome));
    println!("policy decisions per second (one thread):");
    println!("  policies/default.rhai  {script_rate:>12.0}/s  ({:.2} µs per call)", 1e6 / script_rate);
    println!("  built-in               {builtin_rate:>12.0}/s  ({:.3} µs per call)", 1e6 / builtin_rate);
}
