//! The server under load: its base URL parsed and its address resolved once, so reconnecting
//! under load never waits on name resolution.

use std::net::SocketAddr;

use anyhow::{bail, Context, Result};
use hyper::header::HeaderValue;
use hyper::Uri;

#[derive(Debug, Clone)]
pub struct Target {
    /// Where connections go.
    pub addr: SocketAddr,
    /// The `Host` header: hyper's client connections send only the headers they are given.
    pub host: HeaderValue,
    /// The base URL as given, for reports.
    pub base: String,
    /// Path prefix of the base URL without a trailing `/` (usually empty).
    prefix: String,
}

impl Target {
    pub async fn resolve(base: &str) -> Result<Target> {
        let url = url::Url::parse(base).with_context(|| format!("--url {base:?} is not a URL"))?;
        if url.scheme() != "http" {
            bail!("--url must be plain http:// (benchmark the server's own listener, not a TLS proxy)");
        }
        let Some(host) = url.host_str() else {
            bail!("--url {base:?} has no host")
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let addr = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        Ok(Target {
            addr,
            host: HeaderValue::from_str(&authority).context("host is not a valid header value")?,
            base: base.trim_end_matches('/').to_owned(),
            prefix: url.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The origin-form request target for an API path such as `/api/me`.
    pub fn uri(&self, path: &str) -> Result<Uri> {
        let full = format!("{}{path}", self.prefix);
        full.parse()
            .with_context(|| format!("{full:?} is not a valid request path"))
    }

    /// The full URL of an API path, for reports and error messages.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}
