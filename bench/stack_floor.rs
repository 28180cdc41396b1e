//! The floor of the fixed stack, for the proxy benchmark: a poem server that
//! relays each POST to the upstream with reqwest and returns the body, with
//! nothing else (no auth, pool, policy, log). gemgate cannot be faster than
//! this; bench/proxy/run.sh measures both against an nginx hop.
//!
//! `cargo run --release --example stack_floor -- 127.0.0.1:18103 http://127.0.0.1:18100`

// The same allocator as gemgate's build, so the floor measures the stack
// and not the allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use poem::web::Data;
use poem::{Body, EndpointExt, Request, Response, Route, Server, handler};
use std::sync::Arc;

struct Relay {
    client: reqwest::Client,
    upstream: String,
}

#[handler]
async fn relay(request: &Request, body: Body, relay: Data<&Arc<Relay>>) -> Response {
    let body = body.into_bytes().await.unwrap_or_default();
    let url = format!("{}{}", relay.upstream, request.uri().path());
    match relay.client.post(url).header("content-type", "application/json").body(body).send().await {
        Ok(reply) => {
            let status = reply.status();
            let bytes = reply.bytes().await.unwrap_or_default();
            Response::builder().status(status).content_type("application/json").body(bytes)
        }
        Err(_) => Response::builder().status(poem::http::StatusCode::BAD_GATEWAY).finish(),
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18103".into());
    let upstream = args.next().unwrap_or_else(|| "http://127.0.0.1:18100".into());
    gemgate::upstream::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .build()
        .map_err(std::io::Error::other)?;
    let app = Route::new().at("/*path", relay).data(Arc::new(Relay { client, upstream }));
    // TCP_NODELAY, as gemgate's own server sets it: a socket option, not logic.
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let acceptor = gemgate::server::NoDelayAcceptor(poem::listener::TcpAcceptor::from_tokio(listener)?);
    Server::new_with_acceptor(acceptor).run(app).await
}
