//! Small proxies for egress tests, written with tokio: an HTTP proxy
//! (absolute-form requests and CONNECT, optional Basic auth) and a SOCKS5
//! proxy (no auth, or username and password). Each logs the Gemini keys it
//! carried (read from the `x-goog-api-key` headers passing through), and can
//! be stopped (listener and every connection closed) and started again on
//! the same port.
#![allow(dead_code)]

use base64::Engine;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Which protocol a test proxy speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// HTTP forward proxy.
    Http,
    /// SOCKS5.
    Socks5,
}

/// A running (or stopped) test proxy.
pub struct TestProxy {
    pub kind: Kind,
    pub addr: SocketAddr,
    credentials: Option<(String, String)>,
    /// Keys carried, in order.
    pub carried: Arc<Mutex<Vec<String>>>,
    tasks: Option<Arc<Mutex<JoinSet<()>>>>,
}

impl TestProxy {
    /// Starts a proxy on a free loopback port; with `credentials`, clients must present them.
    pub async fn start(kind: Kind, credentials: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let mut proxy = Self {
            kind,
            addr,
            credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
            carried: Arc::default(),
            tasks: None,
        };
        proxy.serve(listener);
        proxy
    }

    /// The URL gemgate is configured with (credentials included when given).
    pub fn url(&self, user: Option<(&str, &str)>) -> String {
        let scheme = match self.kind {
            Kind::Http => "http",
            Kind::Socks5 => "socks5",
        };
        match user {
            Some((u, p)) => format!("{scheme}://{u}:{p}@{}", self.addr),
            None => format!("{scheme}://{}", self.addr),
        }
    }

    /// The keys it carried so far.
    pub fn keys(&self) -> Vec<String> {
        self.carried.lock().unwrap().clone()
    }

    /// Stops accepting and cuts every connection.
    pub fn stop(&mut self) {
        if let Some(tasks) = self.tasks.take() {
            tasks.lock().unwrap().abort_all();
        }
    }

    /// Starts again on the same port.
    pub async fn restart(&mut self) {
        self.stop();
        // The stopped listener closes when its task is dropped: wait for the port.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                Err(err) => panic!("cannot bind {} again: {err}", self.addr),
            }
        };
        self.serve(listener);
    }

    fn serve(&mut self, listener: TcpListener) {
        let tasks = Arc::new(Mutex::new(JoinSet::new()));
        let (kind, credentials, carried) = (self.kind, self.credentials.clone(), self.carried.clone());
        let spawner = tasks.clone();
        tasks.lock().unwrap().spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (credentials, carried) = (credentials.clone(), carried.clone());
                spawner.lock().unwrap().spawn(async move {
                    let _ = match kind {
                        Kind::Http => http_connection(client, credentials, carried).await,
                        Kind::Socks5 => socks_connection(client, credentials, carried).await,
                    };
                });
            }
        });
        self.tasks = Some(tasks);
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await? == 0 || head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

async fn http_connection(
    mut client: TcpStream,
    credentials: Option<(String, String)>,
    carried: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let head = read_head(&mut client).await?;
    let text = String::from_utf8_lossy(&head).into_owned();
    if let Some((user, password)) = &credentials {
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let presented = text.lines().any(|line| {
            line.to_ascii_lowercase().starts_with("proxy-authorization:")
                && line.ends_with(&format!("Basic {expected}"))
        });
        if !presented {
            let refusal = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
            client.write_all(refusal.as_bytes()).await?;
            return Ok(());
        }
    }
    let target = text.split_whitespace().nth(1).unwrap_or_default().to_string();
    if text.starts_with("CONNECT ") {
        let mut upstream = TcpStream::connect(&target).await?;
        client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await?;
        return pump(client, &mut upstream, carried, Vec::new()).await;
    }
    // Absolute form (`POST http://host:port/path HTTP/1.1`): the upstream takes it as it is.
    let authority = target.strip_prefix("http://").and_then(|rest| rest.split('/').next()).unwrap_or_default();
    let mut upstream = TcpStream::connect(authority).await?;
    let head: String = text
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("proxy-authorization:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    pump(client, &mut upstream, carried, head.into_bytes()).await
}

async fn socks_connection(
    mut client: TcpStream,
    credentials: Option<(String, String)>,
    carried: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).await?;
    let wanted = if credentials.is_some() { 2 } else { 0 };
    if greeting[0] != 5 || !methods.contains(&wanted) {
        client.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    client.write_all(&[5, wanted]).await?;
    if let Some((user, password)) = &credentials {
        let mut version_len = [0u8; 2];
        client.read_exact(&mut version_len).await?;
        let mut name = vec![0u8; version_len[1] as usize];
        client.read_exact(&mut name).await?;
        let mut len = [0u8; 1];
        client.read_exact(&mut len).await?;
        let mut pass = vec![0u8; len[0] as usize];
        client.read_exact(&mut pass).await?;
        if name != user.as_bytes() || pass != password.as_bytes() {
            client.write_all(&[1, 1]).await?;
            return Ok(());
        }
        client.write_all(&[1, 0]).await?;
    }
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return Ok(()),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let mut upstream = TcpStream::connect((host.as_str(), u16::from_be_bytes(port))).await?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    pump(client, &mut upstream, carried, Vec::new()).await
}

/// Copies both ways (after sending `first` upstream), logging every
/// `x-goog-api-key` header that passes from client to upstream.
async fn pump(
    client: TcpStream,
    upstream: &mut TcpStream,
    carried: Arc<Mutex<Vec<String>>>,
    first: Vec<u8>,
) -> std::io::Result<()> {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let mut seen = String::new();
    let note = |seen: &mut String, bytes: &[u8]| {
        seen.push_str(&String::from_utf8_lossy(bytes));
        while let Some(start) = seen.to_ascii_lowercase().find("x-goog-api-key: ") {
            let Some(end) = seen[start..].find("\r\n") else { break };
            let key = seen[start + 16..start + end].to_string();
            carried.lock().unwrap().push(key);
            seen.drain(..start + end);
        }
        if seen.len() > 64 * 1024 {
            let keep = seen.len() - 1024;
            seen.drain(..keep);
        }
    };
    note(&mut seen, &first);
    upstream_write.write_all(&first).await?;
    let to_upstream = async {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = client_read.read(&mut buffer).await?;
            if read == 0 {
                return upstream_write.shutdown().await;
            }
            note(&mut seen, &buffer[..read]);
            upstream_write.write_all(&buffer[..read]).await?;
        }
    };
    let to_client = tokio::io::copy(&mut upstream_read, &mut client_write);
    let _ = tokio::join!(to_upstream, to_client);
    Ok(())
}
