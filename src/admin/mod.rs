//! The admin: an OpenAPI API under `/admin/api` (document at
//! `/admin/api/openapi.json`, interactive docs at `/admin/docs`) and the
//! dashboard in `static/`, embedded in the binary, which is a client of that
//! same API. Every URL the dashboard uses is relative, so the admin works
//! under any path prefix a reverse proxy adds.

mod api;
mod backups;
mod config_text;
mod error;
mod files;
mod security;
mod session;
mod stats;

use crate::api::AppState;
use crate::pool::PoolHandle;
use crate::store::Store;
use crate::watch::Reloader;
use poem::http::{StatusCode, header};
use poem::middleware::CookieJarManager;
use poem::{Endpoint, EndpointExt, Request, Response, Route, handler};
use session::AdminGate;
use std::sync::Arc;
use std::time::SystemTime;

/// What the admin works on.
pub struct AdminContext {
    /// The running service's shared state (dispatcher, pool, store, auth).
    pub state: Arc<AppState>,
    /// Applies file changes; the admin's edits go through it too.
    pub reloader: Arc<Reloader>,
    /// The admin key and sessions.
    pub gate: AdminGate,
    /// When gemgate started.
    pub started: SystemTime,
    /// One admin file edit at a time (key files, config, policy): each is a
    /// read-modify-write, and two at once would lose one.
    pub file_writes: tokio::sync::Mutex<()>,
}

impl AdminContext {
    /// The admin context for `admin_key`.
    pub fn new(state: Arc<AppState>, reloader: Arc<Reloader>, admin_key: &str) -> Self {
        let gate = AdminGate::new(admin_key, state.store.clone());
        Self { state, reloader, gate, started: SystemTime::now(), file_writes: tokio::sync::Mutex::new(()) }
    }

    fn pool(&self) -> &PoolHandle {
        &self.state.dispatcher.pool
    }

    fn store(&self) -> &Store {
        &self.state.store
    }
}

/// The dashboard's files, from `static/`.
#[derive(rust_embed::RustEmbed)]
#[folder = "static/"]
struct Dashboard;

/// Serves the dashboard; `/admin` redirects to `/admin/` with a relative
/// Location, so a path prefix survives.
#[handler]
fn dashboard(req: &Request) -> Response {
    let rest = req.uri().path().trim_start_matches('/');
    if rest.is_empty() && !req.original_uri().path().ends_with('/') {
        return Response::builder().status(StatusCode::FOUND).header(header::LOCATION, "admin/").finish();
    }
    let name = match rest {
        "" => "index.html",
        other => other,
    };
    match <Dashboard as rust_embed::RustEmbed>::get(name) {
        Some(file) => Response::builder()
            .content_type(mime_guess::from_path(name).first_or_octet_stream().as_ref())
            .header(header::CACHE_CONTROL, "no-cache")
            .body(file.data.into_owned()),
        None => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("not found\n"),
    }
}

/// Hardening headers for the dashboard's pages.
async fn page_headers<E: Endpoint>(endpoint: Arc<E>, request: Request) -> poem::Result<Response> {
    let mut response = endpoint.get_response(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        headers.insert(name, poem::http::HeaderValue::from_static(value));
    }
    Ok(response)
}

/// Turns any error the framework answers by itself (unknown route, a body
/// that is not JSON, a failed security check) into the admin's JSON shape.
async fn json_errors<E: Endpoint>(endpoint: Arc<E>, request: Request) -> poem::Result<Response> {
    let response = endpoint.get_response(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let text = body.into_string().await.unwrap_or_default();
    let message = match status {
        StatusCode::UNAUTHORIZED => {
            "sign in: send the admin key as `Authorization: Bearer KEY`, or POST /login for a session".to_string()
        }
        StatusCode::NOT_FOUND if text.trim().is_empty() || text.trim() == "not found" => {
            "no such admin endpoint".to_string()
        }
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take that method".to_string(),
        _ if text.trim().is_empty() => status.canonical_reason().unwrap_or("error").to_string(),
        _ => text.trim().to_string(),
    };
    let body = serde_json::json!({"error": {"code": status.as_u16(), "message": message}});
    let mut response = Response::from_parts(parts, poem::Body::from(body.to_string()));
    response.headers_mut().insert(header::CONTENT_TYPE, poem::http::HeaderValue::from_static("application/json"));
    response.headers_mut().remove(header::CONTENT_LENGTH);
    Ok(response)
}

/// The admin's routes, to nest at `/admin`.
pub fn routes(ctx: Arc<AdminContext>) -> impl Endpoint {
    let service = api::service(ctx.clone());
    let docs = service.swagger_ui();
    let spec = service.spec_endpoint();
    let api = Route::new()
        .at("/openapi.json", spec)
        .nest("/", service)
        .with(CookieJarManager::new())
        .around(json_errors)
        .data(ctx);
    Route::new()
        .nest("/api", api)
        .nest("/docs", docs)
        .at("/", dashboard.around(page_headers))
        .at("/*path", dashboard.around(page_headers))
}

/// The OpenAPI document, for `gemgate admin openapi` and tests.
pub fn openapi_document(ctx: Arc<AdminContext>) -> String {
    api::service(ctx).spec()
}
