//! A TCP proxy the test controls, to take a dependency away and give it back (an outage without
//! stopping the shared server), and to count the connections a service opens.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    // Why a watch channel: every open connection and the accept loop see the current up/down
    // state at once.
    up: watch::Sender<bool>,
}

impl Proxy {
    /// Forward 127.0.0.1:<random> to `target`.
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let (up, _) = watch::channel(true);
        let (count, state) = (accepted.clone(), up.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                if !*state.borrow() {
                    continue; // down: drop the connection at once
                }
                tokio::spawn(forward(client, target.clone(), state.subscribe()));
            }
        });
        Self { addr, accepted, up }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Close every connection and refuse new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

async fn forward(mut client: TcpStream, target: String, mut up: watch::Receiver<bool>) {
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = up.wait_for(|up| !*up) => {}
    }
}

/// `host:port` of a URL.
pub fn host_port(url: &str) -> String {
    let parsed = url::Url::parse(url).expect("a URL");
    format!(
        "{}:{}",
        parsed.host_str().expect("a host"),
        parsed.port_or_known_default().expect("a port")
    )
}

/// The URL with its host and port replaced by the proxy's.
pub fn through(url: &str, proxy: &Proxy) -> String {
    let mut parsed = url::Url::parse(url).expect("a URL");
    parsed.set_host(Some("127.0.0.1")).expect("settable host");
    parsed
        .set_port(Some(proxy.addr.port()))
        .expect("settable port");
    parsed.to_string()
}
