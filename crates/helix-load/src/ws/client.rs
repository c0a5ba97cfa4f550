//! One client connection to websocket-streaming: the endpoint resolved once, the authenticated
//! upgrade (`Authorization: Bearer …`), the `welcome` frame, `subscribe` and its answer, and what
//! the server's close codes mean. Every failure says what to check.
//!
//! Connections are opened on our own `TcpStream` to an address resolved up front, so opening
//! thousands of them never waits on name resolution, and with small buffers: an idle client
//! connection costs this process a few KiB, not tungstenite's default 256 KiB.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use super::frame::{self, Frame};

pub type Socket = WebSocketStream<TcpStream>;

/// How long the server may take to answer the upgrade, or a `subscribe`, while thousands of other
/// connections are being opened.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer per connection: frames here are small, and memory per connection matters.
const READ_BUFFER: usize = 4 * 1024;

/// The websocket-streaming endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    addr: SocketAddr,
    uri: Uri,
    /// The URL as given, for messages.
    pub url: String,
}

impl Endpoint {
    pub async fn resolve(url: &str) -> Result<Endpoint> {
        let parsed =
            url::Url::parse(url).with_context(|| format!("--ws-url {url:?} is not a URL"))?;
        if parsed.scheme() != "ws" {
            bail!("--ws-url must be plain ws:// (load the server's own listener, not a TLS proxy)");
        }
        let host = parsed
            .host_str()
            .with_context(|| format!("--ws-url {url:?} has no host"))?;
        let authority = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(80));
        let addr = tokio::net::lookup_host(&authority)
            .await
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolves to no address"))?;
        let uri = url
            .parse()
            .with_context(|| format!("--ws-url {url:?} is not a valid request URI"))?;
        Ok(Endpoint {
            addr,
            uri,
            url: url.to_owned(),
        })
    }

    /// Open an authenticated connection and wait for its `welcome` frame.
    pub async fn connect(&self, token: &str) -> Result<Socket> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(|err| self.connect_error(&err))?;
        // Frames are small writes waiting on a reply: Nagle would only delay them.
        stream.set_nodelay(true).context("setting TCP_NODELAY")?;
        let request = self.request(token)?;
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER)
            .write_buffer_size(0);
        let upgrade = tokio_tungstenite::client_async_with_config(request, stream, Some(config));
        let (mut socket, _response) = tokio::time::timeout(ANSWER_TIMEOUT, upgrade)
            .await
            .map_err(|_| anyhow!("no WebSocket upgrade from {} within 30 s", self.url))?
            .map_err(|err| self.upgrade_error(err))?;
        welcome(&mut socket).await?;
        Ok(socket)
    }

    fn request(&self, token: &str) -> Result<tungstenite::handshake::client::Request> {
        let mut request = self
            .uri
            .clone()
            .into_client_request()
            .with_context(|| format!("building the upgrade request for {}", self.url))?;
        let mut bearer = HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the credential is not a valid header value")?;
        bearer.set_sensitive(true);
        request.headers_mut().insert(AUTHORIZATION, bearer);
        Ok(request)
    }

    fn connect_error(&self, err: &std::io::Error) -> anyhow::Error {
        match (err.kind(), err.raw_os_error()) {
            (std::io::ErrorKind::ConnectionRefused, _) => anyhow!(
                "connection refused: is websocket-streaming running at {}?",
                self.url
            ),
            (std::io::ErrorKind::AddrNotAvailable, _) => anyhow!(
                "no free local port to connect to {} (EADDRNOTAVAIL): widen \
                 net.ipv4.ip_local_port_range or wait for TIME_WAIT sockets to clear",
                self.addr
            ),
            // EMFILE / ENFILE
            (_, Some(24 | 23)) => anyhow!("too many open files: raise ulimit -n"),
            _ => anyhow!("connecting to {}: {err}", self.addr),
        }
    }

    fn upgrade_error(&self, err: tungstenite::Error) -> anyhow::Error {
        let tungstenite::Error::Http(response) = err else {
            return anyhow!("WebSocket upgrade with {} failed: {err}", self.url);
        };
        let body: String = response
            .body()
            .as_deref()
            .map(|body| String::from_utf8_lossy(body).chars().take(300).collect())
            .unwrap_or_default();
        let hint = match response.status().as_u16() {
            401 | 403 => " (the credential was refused)",
            404 => " (is --ws-url websocket-streaming's endpoint?)",
            _ => "",
        };
        anyhow!(
            "WebSocket upgrade refused: HTTP {}{hint} {body}",
            response.status()
        )
    }
}

/// The first frame must be `welcome`; a 4401 close means the token was refused.
async fn welcome(socket: &mut Socket) -> Result<()> {
    let text = next_text(socket, "the welcome frame").await?;
    match frame::kind(&text) {
        Some("welcome") => Ok(()),
        _ => bail!("expected a welcome frame first, got {}", excerpt(&text)),
    }
}

/// The `subscribed` answer to a subscribe.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub epoch: String,
    /// The channel's last offset when the subscription started.
    pub offset: u64,
    /// Present when the subscribe carried `since`.
    pub recovered: Option<bool>,
}

/// Subscribe to `channel` (resuming from `(since, epoch)` if given) and wait for `subscribed`.
/// Only frames before that answer are consumed, so a recovery replay is left to the caller.
pub async fn subscribe(
    socket: &mut Socket,
    channel: &str,
    resume: Option<(u64, &str)>,
) -> Result<Subscribed> {
    send_text(socket, frame::subscribe(channel, resume)).await?;
    loop {
        let text = next_text(socket, "the subscribed frame").await?;
        let Some(frame) = Frame::parse(&text) else {
            bail!(
                "the server sent a frame that is not JSON: {}",
                excerpt(&text)
            );
        };
        match frame.kind.as_ref() {
            "subscribed" if frame.channel.as_deref() == Some(channel) => {
                return Ok(Subscribed {
                    epoch: frame.epoch.as_deref().unwrap_or_default().to_owned(),
                    offset: frame.offset.unwrap_or(0),
                    recovered: frame.recovered,
                })
            }
            "error" => bail!("subscribing to {channel} refused: {}", frame.error_text()),
            _ => {}
        }
    }
}

/// Send one text frame (flushed).
pub async fn send_text(socket: &mut Socket, text: String) -> Result<()> {
    socket
        .send(Message::text(text))
        .await
        .context("sending a frame")
}

/// Send a close frame without waiting for the server's; errors are moot at that point.
pub async fn close(mut socket: Socket) {
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
}

/// The next text frame, within [`ANSWER_TIMEOUT`]; a close or a dropped connection is an error
/// that names the close code.
pub async fn next_text(socket: &mut Socket, waiting_for: &str) -> Result<String> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| anyhow!("no {waiting_for} within 30 s"))?;
        match next {
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(close))) => {
                bail!(
                    "closed while waiting for {waiting_for}: {}",
                    describe_close(close.as_ref())
                )
            }
            Some(Ok(_)) => {} // pings are answered by tungstenite itself
            Some(Err(err)) => bail!("connection failed while waiting for {waiting_for}: {err}"),
            None => bail!("connection ended while waiting for {waiting_for}"),
        }
    }
}

/// How the server ended a connection, e.g. `close 4001 (slow consumer)`.
pub fn describe_close(close: Option<&CloseFrame>) -> String {
    let Some(close) = close else {
        return "close without a code".to_owned();
    };
    let code = u16::from(close.code);
    let meaning = match code {
        1000 => "normal",
        1001 => "going away",
        1003 => "unsupported data",
        1009 => "too big",
        1011 => "server error",
        4001 => "slow consumer",
        4401 => "unauthorized: the token was refused or expired",
        4429 => "flood: too many frames",
        _ => "unknown code",
    };
    format!("close {code} ({meaning})")
}

/// A frame cut short for an error message.
pub fn excerpt(text: &str) -> String {
    text.chars().take(200).collect()
}
