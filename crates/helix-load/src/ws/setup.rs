//! Before a WebSocket run, over backend-api's HTTP API: the signed-up user the connections
//! authenticate as, the admin (the server's `HELIX_CREATOR_EMAIL`, as `ucf` signs it up), and
//! conversations whose `conversation:<id>` channels the run uses. Also the probe: one connection
//! that checks, before thousands are opened, that the server accepts what the run will do.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};

use super::client::{self, Endpoint};
use super::frame::{Frame, PublishTemplate};
use crate::setup::{self, Account};
use crate::target::Target;
use crate::{chat, me, ucf};

/// Conversations created at once.
const CREATE_CONCURRENCY: usize = 32;
/// Progress is printed each time this many more conversations exist.
const PROGRESS_EVERY: usize = 500;

/// Sign up a fresh user; its access token (warning if it expires within `run_secs`).
pub async fn user_token(api: &Target, run_secs: f64) -> Result<String> {
    let tokens = setup::signup(api, &Account::generate()).await?;
    me::warn_if_token_expires(tokens.expires_in, run_secs);
    Ok(tokens.access_token)
}

/// The admin's access token (signed up on first use, logged into afterwards).
pub async fn admin_token(api: &Target, email: &str, password: &str) -> Result<String> {
    ucf::admin_token(api, email, password).await.context(
        "the admin publisher needs the server's HELIX_CREATOR_EMAIL account (--admin-email)",
    )
}

/// Create `count` conversations owned by the holder of `token`; their channel names.
pub async fn conversations(api: &Target, token: &str, count: usize) -> Result<Vec<String>> {
    eprintln!("creating {count} conversations…");
    let started = Instant::now();
    let mut created = 0usize;
    futures::stream::iter(0..count)
        .map(|n| async move { chat::create_conversation(api, token, &format!("ws bench {n}")).await })
        .buffer_unordered(CREATE_CONCURRENCY)
        .map_ok(|id| {
            created += 1;
            if created.is_multiple_of(PROGRESS_EVERY) || created == count {
                eprintln!(
                    "  conversations: {created}/{count} after {:.1} s",
                    started.elapsed().as_secs_f64()
                );
            }
            format!("conversation:{id}")
        })
        .try_collect()
        .await
}

/// Open one connection as the run's subscribers will, subscribe to `channel` and, when a
/// publisher token is given, publish one untimed message there and wait for its ack: every
/// refusal surfaces here once, with its reason, instead of thousands of times later.
pub async fn probe(
    endpoint: &Endpoint,
    token: &str,
    channel: &str,
    publisher: Option<&str>,
) -> Result<()> {
    let mut socket = endpoint.connect(token).await.context("probe connection")?;
    client::subscribe(&mut socket, channel, None)
        .await
        .context("probe subscription")?;
    client::close(socket).await;
    if let Some(publisher) = publisher {
        let mut socket = endpoint
            .connect(publisher)
            .await
            .context("probe publisher")?;
        let frame = PublishTemplate::new(channel, 0).frame(0, 0); // ts 0: never in a window
        client::send_text(&mut socket, frame).await?;
        let ack = client::next_text(&mut socket, "the published ack").await?;
        match Frame::parse(&ack) {
            Some(frame) if frame.kind == "published" => {}
            Some(frame) if frame.kind == "error" => {
                bail!("publishing on {channel} refused: {}", frame.error_text())
            }
            _ => bail!("expected a published ack, got {}", client::excerpt(&ack)),
        }
        client::close(socket).await;
    }
    Ok(())
}
