//! The admin API's security schemes, as the OpenAPI document declares them:
//! the admin key as a bearer token, or the dashboard's session cookie (with
//! its CSRF token on every request that changes something).

use super::AdminContext;
use super::error::ApiError;
use super::session::{COOKIE, csrf_matches};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};
use std::sync::Arc;

/// Who passed the gate (nothing more is needed: there is one admin).
pub struct Admin;

/// The admin key as `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_bearer")]
pub struct AdminKey(Admin);

/// The session cookie set by `POST /login`; changes also need `x-csrf-token`.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "gemgate_admin", key_in = "cookie", checker = "check_cookie")]
pub struct AdminSession(Admin);

/// Either way in.
#[derive(SecurityScheme)]
pub enum AdminAuth {
    /// Bearer token.
    Key(AdminKey),
    /// Dashboard session.
    Session(AdminSession),
}

fn context(req: &Request) -> poem::Result<&Arc<AdminContext>> {
    req.data::<Arc<AdminContext>>().ok_or_else(|| ApiError::internal("admin context missing").into())
}

async fn check_bearer(req: &Request, bearer: Bearer) -> poem::Result<Admin> {
    let ctx = context(req)?;
    match ctx.state.access.limiter.guard(req, || ctx.gate.check_key(&bearer.token)) {
        Ok(()) => Ok(Admin),
        Err(err @ crate::api::auth::AuthError::TooMany(wait)) => {
            let secs = wait.as_secs().max(1).to_string();
            Err(ApiError::too_many(err.message()).with_id("too_many_tries", &[("secs", &secs)]).into())
        }
        Err(_) => {
            Err(ApiError::unauthorized("the bearer token is not the admin key").with_id("not_admin_key", &[]).into())
        }
    }
}

async fn check_cookie(req: &Request, cookie: ApiKey) -> poem::Result<Admin> {
    let Some(csrf) = context(req)?.gate.session_csrf(&cookie.key).await else {
        return Err(ApiError::unauthorized("the session has ended; sign in again")
            .with_id("session_ended", &[])
            .into());
    };
    let safe = matches!(*req.method(), poem::http::Method::GET | poem::http::Method::HEAD);
    if !safe && !csrf_matches(&csrf, req.header("x-csrf-token")) {
        return Err(ApiError::forbidden("missing or wrong x-csrf-token header for this session")
            .with_id("csrf", &[])
            .into());
    }
    Ok(Admin)
}

/// The session cookie's value, if the request has one.
pub fn session_cookie(req: &Request) -> Option<String> {
    req.cookie().get(COOKIE).map(|c| c.value_str().to_string())
}
