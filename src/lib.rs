//! gemgate: pools many Google Gemini API keys behind one endpoint that speaks
//! Google's native API, failing over between keys and keeping each key's
//! state true.
//!
//! Modules by layer (each imports only from its own layer or lower ones;
//! `tests/architecture.rs` checks it):
//!
//! - wiring: [`app`] (everything in order, the routes, shutdown), [`demo`].
//! - HTTP: [`api`] (the one intake and the client dialects), [`admin`].
//! - request flow: [`dispatch`] (attempt loop, ledger, relay), [`watch`] (live reload).
//! - services: [`pool`] (key actors, supervisor, ready index, scans), [`policy`], [`tenancy`] (client limits),
//!   [`accounting`] (what clients spend: prices, budgets, usage rollups),
//!   [`upstream`] (Google client, error classification), [`store`], [`server`]
//!   (connection caps and deadlines), [`fake_upstream`] (a faithful fake of Google).
//! - pure cores: [`key_state`], [`keys`], [`config`], [`translate`], [`secrets`], [`metrics`], [`midnight`],
//!   [`catalog`] (served models, aliases, variants), [`shaping`] (operator defaults for generate calls),
//!   [`prices`] (what tokens cost).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod accounting;
pub mod admin;
pub mod api;
pub mod app;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod dispatch;
pub mod fake_upstream;
pub mod key_state;
pub mod keys;
pub mod metrics;
pub mod midnight;
pub mod policy;
pub mod pool;
pub mod prices;
pub mod secrets;
pub mod server;
pub mod shaping;
pub mod store;
pub mod tenancy;
pub mod translate;
pub mod upstream;
pub mod watch;
