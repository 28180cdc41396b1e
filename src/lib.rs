//! gemgate: pools many Google Gemini API keys behind one endpoint that speaks
//! Google's native API, failing over between keys and keeping each key's
//! state true.
//!
//! - [`config`]: `config.toml` schema, environment overrides, validation.
//! - [`keys`]: key files, the masked key type, fingerprints.
//! - [`pool`]: KeyActors, the PoolSupervisor, the ready index, health scans.
//! - [`policy`]: the failover decision seam and the built-in policy.
//! - [`upstream`]: the HTTP client to Google and error classification.
//! - [`dispatch`]: the attempt loop and the streaming relay.
//! - [`api`]: poem routes, client auth, Google-dialect errors.
//! - [`store`]: sqlx persistence (SQLite default) and the batch writer.
//! - [`app`]: wiring and orderly shutdown.
//! - [`server`]: the HTTP server loop: connection caps, header, idle and body deadlines.
//! - [`fake_upstream`]: a faithful fake of Google's API for tests and `--demo`.
//! - [`demo`]: the `--demo` mode.
//! - [`translate`]: OpenAI ⇄ Gemini, pure functions.
//! - [`watch`]: live reload of config, key files and the policy script.
//! - [`metrics`]: Prometheus metrics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod app;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod fake_upstream;
pub mod key_state;
pub mod keys;
pub mod metrics;
pub mod policy;
pub mod pool;
pub mod secrets;
pub mod server;
pub mod store;
pub mod translate;
pub mod upstream;
pub mod watch;
