//! The HTTP surface (poem): client authentication, the native Gemini routes,
//! and errors in Google's dialect.

pub mod auth;
pub mod gemini;
pub mod google_errors;

use crate::dispatch::{Dispatcher, StreamMode};
use auth::ClientAuth;
use poem::{Endpoint, EndpointExt, Route, handler};
use std::sync::Arc;

/// What every route needs.
pub struct AppState {
    /// Serves requests through the pool.
    pub dispatcher: Arc<Dispatcher>,
    /// Client keys.
    pub auth: ClientAuth,
    /// Largest body accepted.
    pub max_body_bytes: usize,
}

/// Anything that matches no route: a 404 in Google's format.
#[handler]
fn not_found(request: &poem::Request) -> poem::Response {
    let message = format!("gemgate: no route for {} {}", request.method(), request.uri().path());
    google_errors::error_response(404, &message, Vec::new(), StreamMode::Whole)
}

/// The full route table.
pub fn routes(state: Arc<AppState>) -> impl Endpoint {
    Route::new().at("/v1beta/*path", gemini::native).at("/v1/*path", gemini::native).at("/*path", not_found).data(state)
}
