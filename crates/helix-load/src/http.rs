//! One keep-alive HTTP/1.1 client connection and the pre-built requests sent on it.
//!
//! hyper's low-level `client::conn::http1` is used instead of a pooled client: each load task owns
//! exactly one connection, so there is no pool lock, no per-request URL parsing and no hidden
//! extra connections, and the client stays far cheaper per request than the server it measures.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

/// A request built once and stamped out per send; cloning it copies reference-counted buffers.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestTemplate {
    pub fn get(target: &Target, path: &str) -> Result<Self> {
        Ok(Self::new(
            target,
            Method::GET,
            target.uri(path)?,
            Bytes::new(),
        ))
    }

    pub fn delete(target: &Target, path: &str) -> Result<Self> {
        Ok(Self::new(
            target,
            Method::DELETE,
            target.uri(path)?,
            Bytes::new(),
        ))
    }

    pub fn post_json(target: &Target, path: &str, body: &serde_json::Value) -> Result<Self> {
        let body = Bytes::from(serde_json::to_vec(body)?);
        let mut template = Self::new(target, Method::POST, target.uri(path)?, body);
        let json = HeaderValue::from_static("application/json");
        template.headers.insert(header::CONTENT_TYPE, json);
        Ok(template)
    }

    fn new(target: &Target, method: Method, uri: Uri, body: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, target.host.clone());
        headers.insert(header::USER_AGENT, HeaderValue::from_static("helix-load"));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        Self {
            method,
            uri,
            headers,
            body,
        }
    }

    /// Add `Authorization: Bearer <token>`, marked sensitive so it never shows in debug output.
    pub fn bearer(mut self, token: &str) -> Result<Self> {
        let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the credential is not a valid header value")?;
        value.set_sensitive(true);
        self.headers.insert(header::AUTHORIZATION, value);
        Ok(self)
    }

    pub fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// A response read to the end, for setup calls whose body matters.
#[derive(Debug)]
pub struct Collected {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Collected {
    /// The body for an error message, cut short so a large page cannot flood the terminal.
    pub fn body_excerpt(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(300).collect()
    }
}

/// One open HTTP/1.1 connection. hyper has no pipelining, so it carries one request at a time.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

impl Conn {
    pub async fn open(target: &Target) -> Result<Conn> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connecting to {}", target.addr))?;
        // Requests are small writes waiting on a reply: Nagle would add delay, not save packets.
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        // The connection future does the socket I/O; `sender` only queues requests for it. It
        // ends by itself when `sender` is dropped or the server closes, so nobody joins it.
        tokio::spawn(async move {
            let _closed = connection.await;
        });
        Ok(Conn { sender })
    }

    /// Whether the server (or an error) has closed this connection, so it must be replaced.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Send a request and read its body to the end without keeping it (the connection can only
    /// be reused once the body is consumed).
    pub async fn send(&mut self, request: Request<Full<Bytes>>) -> hyper::Result<StatusCode> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        Ok(status)
    }

    /// Send a request and keep the whole response.
    pub async fn collect(&mut self, request: Request<Full<Bytes>>) -> hyper::Result<Collected> {
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Collected {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}
