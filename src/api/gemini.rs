//! The native Gemini API (`/v1beta/…` and `/v1/…`), paths exactly as Google's,
//! so `google-genai` works with only its base URL changed. Bodies pass through
//! untouched; replies stream back chunk by chunk.

use super::AppState;
use super::google_errors::{cut_frame, dispatch_error_response, error_response};
use crate::dispatch::{ProxyRequest, StreamMode};
use crate::upstream::UpstreamRequest;
use poem::http::Method;
use poem::web::Data;
use poem::{Body, Request, Response, handler};
use serde::de::IgnoredAny;
use std::sync::Arc;

/// What a native path asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NativeCall {
    /// `GET models`
    ListModels,
    /// `GET models/{model}`
    GetModel(String),
    /// `POST models/{model}:{action}`
    Action {
        /// The model.
        model: String,
        /// `generateContent`, `streamGenerateContent`, …
        action: String,
    },
}

/// A path gemgate refuses, with the status and words for the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathError {
    /// HTTP status.
    pub code: u16,
    /// Message.
    pub message: String,
}

/// Parses the part of the path after `/v1beta/` (or `/v1/`).
pub fn parse_native_path(method: &Method, tail: &str) -> Result<NativeCall, PathError> {
    let error = |code, message: String| Err(PathError { code, message });
    let Some(rest) = tail.strip_prefix("models") else {
        let first = tail.split('/').next().unwrap_or_default();
        if ["files", "cachedContents", "tunedModels", "corpora", "batches"].contains(&first) {
            return error(
                404,
                format!("gemgate does not serve `{first}` yet: these resources belong to the project of one key."),
            );
        }
        return error(404, format!("gemgate: no such method: {tail}"));
    };
    if rest.is_empty() || rest == "/" {
        return if method == Method::GET {
            Ok(NativeCall::ListModels)
        } else {
            error(405, "use GET to list models".into())
        };
    }
    let Some(name) = rest.strip_prefix('/') else { return error(404, format!("gemgate: no such method: {tail}")) };
    let (model, action) = match name.split_once(':') {
        Some((model, action)) => (model, Some(action)),
        None => (name, None),
    };
    if !super::paths::is_valid_model_name(model) {
        return error(
            400,
            format!("gemgate: `{}` is not a valid model name", model.chars().take(80).collect::<String>()),
        );
    }
    match action {
        None if method == Method::GET => Ok(NativeCall::GetModel(model.to_string())),
        None => error(405, "use GET to read a model".into()),
        Some(action) if method == Method::POST && ACTIONS.contains(&action) => {
            Ok(NativeCall::Action { model: model.to_string(), action: action.to_string() })
        }
        Some(_) if method != Method::POST => error(405, "use POST for model methods".into()),
        Some(action) => {
            error(404, format!("gemgate does not serve the method `:{}`", action.chars().take(60).collect::<String>()))
        }
    }
}

/// The model methods gemgate serves: stateless calls any key can answer.
/// Long-running and batch calls (`predictLongRunning`, `batchGenerateContent`)
/// create resources that belong to one key and are refused until gemgate
/// pins them.
const ACTIONS: &[&str] =
    &["generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents", "predict"];

/// The stream mode of a call from its action and query.
fn stream_mode(action: &str, query: &str) -> StreamMode {
    if action != "streamGenerateContent" {
        StreamMode::Whole
    } else if query.split('&').any(|pair| pair == "alt=sse") {
        StreamMode::Sse
    } else {
        StreamMode::JsonArray
    }
}

fn route_name(action: &str) -> &'static str {
    match action {
        "generateContent" => "generateContent",
        "streamGenerateContent" => "streamGenerateContent",
        "countTokens" => "countTokens",
        "embedContent" => "embedContent",
        "batchEmbedContents" => "batchEmbedContents",
        "predict" => "predict",
        _ => "other",
    }
}

/// Serves every native path.
#[handler]
pub async fn native(request: &Request, body: Body, state: Data<&Arc<AppState>>) -> Response {
    serve(request, body, &state).await
}

/// Serves a native call (also reached from the `/v1` router).
pub async fn serve(request: &Request, body: Body, state: &Arc<AppState>) -> Response {
    let path = request.uri().path();
    let (version, tail) = match path.strip_prefix("/v1beta/") {
        Some(tail) => ("v1beta", tail),
        None => ("v1", path.strip_prefix("/v1/").unwrap_or_default()),
    };
    let query = request.uri().query().unwrap_or_default();
    let (call, mode) = match parse_native_path(request.method(), tail) {
        Ok(call) => {
            let mode = match &call {
                NativeCall::Action { action, .. } => stream_mode(action, query),
                _ => StreamMode::Whole,
            };
            (call, mode)
        }
        Err(err) => return error_response(err.code, &err.message, Vec::new(), StreamMode::Whole),
    };
    let client = match state.authenticate(request) {
        Ok(client) => client,
        Err(err) => return super::google_errors::auth_error_response(err, mode),
    };
    let body = match super::body::read_body(body, state.max_body_bytes).await {
        Ok(body) => body,
        Err(err) => return error_response(err.status(), &format!("gemgate: {err}"), Vec::new(), mode),
    };
    let (model, route) = match &call {
        NativeCall::ListModels => (String::new(), "listModels"),
        NativeCall::GetModel(model) => (model.clone(), "getModel"),
        NativeCall::Action { model, action } => (model.clone(), route_name(action)),
    };
    // serde skips strings it ignores without checking their UTF-8: check it first.
    let is_json = std::str::from_utf8(&body).is_ok() && serde_json::from_slice::<IgnoredAny>(&body).is_ok();
    if matches!(call, NativeCall::Action { .. }) && !is_json {
        let message = "Invalid JSON payload received. The request body is not valid JSON.";
        return error_response(400, message, Vec::new(), mode);
    }
    let query = super::paths::native_upstream_query(query);
    // The path as gemgate understood it, not as the client spelled it.
    let tail = match &call {
        NativeCall::ListModels => "models".to_string(),
        NativeCall::GetModel(model) => format!("models/{model}"),
        NativeCall::Action { model, action } => format!("models/{model}:{action}"),
    };
    let path_and_query =
        if query.is_empty() { format!("/{version}/{tail}") } else { format!("/{version}/{tail}?{query}") };
    let proxy_request = ProxyRequest {
        upstream: UpstreamRequest {
            method: request.method().clone(),
            path_and_query,
            body,
            content_type: request.headers().get("content-type").cloned(),
            bearer: false,
        },
        model: Arc::from(model),
        mode,
        route,
        client: client.0,
    };
    match state.dispatcher.dispatch(proxy_request).await {
        Ok(reply) => super::relay_response(reply, move |cut| {
            cut_frame(&cut.message, mode).ok_or_else(|| std::io::Error::other(cut.message))
        }),
        Err(error) => dispatch_error_response(&error, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: Method, tail: &str) -> Result<NativeCall, u16> {
        parse_native_path(&method, tail).map_err(|e| e.code)
    }

    #[test]
    fn native_paths() {
        assert_eq!(parse(Method::GET, "models"), Ok(NativeCall::ListModels));
        assert_eq!(parse(Method::GET, "models/gemini-2.5-flash"), Ok(NativeCall::GetModel("gemini-2.5-flash".into())));
        assert_eq!(
            parse(Method::POST, "models/gemini-2.5-flash:streamGenerateContent"),
            Ok(NativeCall::Action { model: "gemini-2.5-flash".into(), action: "streamGenerateContent".into() })
        );
        assert_eq!(parse(Method::POST, "models/bad model:generateContent"), Err(400));
        assert_eq!(parse(Method::POST, "models/x:"), Err(404));
        assert_eq!(parse(Method::POST, "models/x:batchGenerateContent"), Err(404));
        assert_eq!(parse(Method::GET, "models/.."), Err(400));
        assert_eq!(parse(Method::GET, "models/x:generateContent"), Err(405));
        assert_eq!(parse(Method::GET, "files"), Err(404));
        assert_eq!(parse(Method::GET, "whatever"), Err(404));
    }

    #[test]
    fn stream_modes() {
        assert_eq!(stream_mode("streamGenerateContent", "alt=sse"), StreamMode::Sse);
        assert_eq!(stream_mode("streamGenerateContent", ""), StreamMode::JsonArray);
        assert_eq!(stream_mode("generateContent", "alt=sse"), StreamMode::Whole);
    }
}
