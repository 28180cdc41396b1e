//! Sign-in, sign-out, the session's CSRF token, and what is running.

use super::AdminTag;
use crate::admin::AdminContext;
use crate::admin::error::{ApiError, ApiResult};
use crate::admin::security::{AdminAuth, session_cookie};
use crate::admin::session::{COOKIE, SESSION_TTL};
use crate::api::auth::AuthError;
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

pub struct SessionApi {
    pub ctx: Arc<AdminContext>,
}

/// The admin key, to sign in.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct LoginRequest {
    /// The admin key.
    #[oai(validator(min_length = 1, max_length = 512))]
    key: String,
}

/// A session: send `csrf_token` as `x-csrf-token` with every change.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct SessionInfo {
    /// The token for `x-csrf-token`.
    csrf_token: String,
    /// Seconds the session lasts from sign-in.
    expires_in_secs: u64,
}

#[derive(ApiResponse)]
enum LoginResponse {
    /// Signed in; the session cookie is set.
    #[oai(status = 200)]
    Ok(Json<SessionInfo>, #[oai(header = "set-cookie")] String),
}

#[derive(ApiResponse)]
enum LogoutResponse {
    /// Signed out; the cookie is cleared.
    #[oai(status = 200)]
    Ok(Json<Done>, #[oai(header = "set-cookie")] String),
}

/// A plain acknowledgement.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// What is running.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Info {
    /// gemgate's version.
    version: String,
    /// Unix milliseconds of the start.
    started_ms: i64,
    /// Seconds since the start.
    uptime_secs: u64,
    /// The config file, if any.
    config_file: Option<String>,
    /// The keys folder.
    keys_dir: String,
    /// The policy script, if any.
    policy_file: Option<String>,
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> String {
    // No Path: the browser scopes the cookie to this API's folder, which is
    // right under any reverse-proxy prefix.
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={value}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

fn is_https(req: &Request) -> bool {
    req.header("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https"))
        || req.uri().scheme_str() == Some("https")
}

#[OpenApi(tag = "AdminTag::Session")]
impl SessionApi {
    /// Sign in with the admin key; sets an HttpOnly, SameSite=Strict session
    /// cookie. Wrong keys count against the address in the failed-auth limit
    /// shared by every way in (`server.auth_failures_per_minute`).
    #[oai(path = "/login", method = "post")]
    async fn login(&self, req: &Request, body: Json<LoginRequest>) -> ApiResult<LoginResponse> {
        let from = self.ctx.state.access.limiter.address(req);
        match self.ctx.state.access.limiter.guard(req, || self.ctx.gate.check_key(&body.key)) {
            Ok(()) => {
                let session = self.ctx.gate.open_session(from).await?;
                Ok(LoginResponse::Ok(
                    Json(SessionInfo { csrf_token: session.csrf, expires_in_secs: SESSION_TTL.as_secs() }),
                    cookie_header(&session.token, SESSION_TTL.as_secs(), is_https(req)),
                ))
            }
            Err(err @ AuthError::TooMany(wait)) => {
                let secs = wait.as_secs().max(1).to_string();
                Err(ApiError::too_many(err.message()).with_id("too_many_tries", &[("secs", &secs)]))
            }
            Err(_) => {
                tracing::warn!(from = ?from, "admin login refused: wrong key");
                Err(ApiError::unauthorized("that is not the admin key").with_id("not_admin_key", &[]))
            }
        }
    }

    /// The current session's CSRF token (for a dashboard page that was reloaded).
    #[oai(path = "/session", method = "get")]
    async fn session(&self, req: &Request, _auth: AdminAuth) -> ApiResult<Json<SessionInfo>> {
        let token = session_cookie(req).ok_or_else(|| {
            ApiError::unauthorized("no session cookie (bearer callers need no CSRF token)")
                .with_id("session_ended", &[])
        })?;
        let csrf = self
            .ctx
            .gate
            .session_csrf(&token)
            .await
            .ok_or_else(|| ApiError::unauthorized("the session has ended").with_id("session_ended", &[]))?;
        Ok(Json(SessionInfo { csrf_token: csrf, expires_in_secs: SESSION_TTL.as_secs() }))
    }

    /// Sign out: ends the session and clears the cookie.
    #[oai(path = "/session", method = "delete")]
    async fn logout(&self, req: &Request, _auth: AdminAuth) -> ApiResult<LogoutResponse> {
        if let Some(token) = session_cookie(req) {
            self.ctx.gate.logout(&token).await;
        }
        Ok(LogoutResponse::Ok(Json(Done { ok: true }), cookie_header("", 0, is_https(req))))
    }

    /// Version, uptime and the files gemgate runs from.
    #[oai(path = "/info", method = "get")]
    async fn info(&self, _auth: AdminAuth) -> ApiResult<Json<Info>> {
        let loaded = self.ctx.reloader.current();
        Ok(Json(Info {
            version: env!("CARGO_PKG_VERSION").into(),
            started_ms: crate::store::to_ms(self.ctx.started),
            uptime_secs: self.ctx.started.elapsed().map_or(0, |d| d.as_secs()),
            config_file: loaded.file.as_ref().map(|f| f.display().to_string()),
            keys_dir: loaded.keys_dir().display().to_string(),
            policy_file: loaded.policy_file().map(|f| f.display().to_string()),
        }))
    }
}
