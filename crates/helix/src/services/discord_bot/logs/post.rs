//! The `discord.post` job kind: one message to one channel's webhook, run by the worker.
//!
//! `POST {webhook_url}?wait=true` with `{"content", "embeds", "allowed_mentions": {"parse": []}}`.
//! The URL comes from this process's environment (the payload names only the channel), and it
//! is never logged nor kept in an error: it holds the webhook's token.
//!
//! | answer | what happens |
//! |---|---|
//! | 2xx | done |
//! | bucket exhausted (before sending) | retried when the bucket resets ([`super::limiter`]) |
//! | 429 | retried after the body's `retry_after` (seconds), else `Retry-After`, else 1 s |
//! | 404 | the webhook is gone: the channel is disabled (a `helix_meta` entry), the error logged once, and this and later messages are dropped |
//! | 5xx, no answer | retried with the job core's backoff |
//! | 401, 403, other 4xx | failed for good, the status (and Discord's reason) recorded |
//!
//! A disabled channel comes back when its variable is set to another webhook: the entry keeps a
//! fingerprint (SHA-256) of the URL it was disabled for.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use helix_jobs::{JobContext, JobFailure, JobKind};
use helix_store::Store;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::limiter::{self, Limiter};
use super::{Channel, Message, QUEUE};
use crate::config::ServiceEnv;

/// One request to Discord gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after a 429 that names none.
const DEFAULT_THROTTLE: Duration = Duration::from_secs(1);
/// How much of an error answer is read, for the reason recorded with the job.
const MAX_REASON: usize = 300;

/// The `helix_meta` key that marks a channel disabled.
pub fn disabled_key(channel: Channel) -> String {
    format!("discord.webhook.{channel}.disabled")
}

/// What a job carries: the channel, not its URL, and the message, already scrubbed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostPayload {
    pub channel: Channel,
    pub message: Message,
}

/// Posts messages; holds the webhook URLs of the process it runs in. No `Debug`: the URLs are
/// secrets.
pub struct Post {
    store: Arc<dyn Store>,
    urls: BTreeMap<Channel, url::Url>,
    client: reqwest::Client,
    limiter: Limiter,
}

impl Post {
    /// Prefix of the unique keys of its jobs.
    pub const NAME_PREFIX: &'static str = "discord.post";

    pub fn new(store: Arc<dyn Store>, env: &ServiceEnv) -> Self {
        let mut urls = BTreeMap::new();
        for channel in Channel::configured(env) {
            let raw = env.get(channel.var()).unwrap_or_default().trim();
            match url::Url::parse(raw) {
                Ok(url) if url.scheme() == "https" || url.scheme() == "http" => {
                    urls.insert(channel, url);
                }
                _ => {
                    tracing::error!(
                        variable = channel.var(),
                        "not an http(s) URL; channel not logged"
                    )
                }
            }
        }
        Self {
            store,
            urls,
            client: reqwest::Client::builder()
                .timeout(TIMEOUT)
                .build()
                .expect("a client with a timeout builds"),
            limiter: Limiter::default(),
        }
    }

    /// Whether `channel` was disabled for this very webhook.
    async fn disabled(&self, channel: Channel, url: &url::Url) -> Result<bool, JobFailure> {
        let entry = self
            .store
            .meta_get(&disabled_key(channel))
            .await
            .map_err(JobFailure::retry)?;
        Ok(entry.is_some_and(|e| {
            serde_json::from_str::<serde_json::Value>(&e)
                .is_ok_and(|v| v["webhook"] == fingerprint(url))
        }))
    }

    /// Remember that the webhook is gone; the first job to find out logs it.
    async fn disable(&self, channel: Channel, url: &url::Url) -> Result<(), JobFailure> {
        if self.disabled(channel, url).await? {
            return Ok(());
        }
        let entry = serde_json::json!({
            "status": 404,
            "at": chrono::Utc::now().to_rfc3339(),
            "webhook": fingerprint(url),
        });
        self.store
            .meta_put(&disabled_key(channel), &entry.to_string())
            .await
            .map_err(JobFailure::retry)?;
        tracing::error!(
            %channel,
            variable = channel.var(),
            "Discord answered 404 (unknown webhook): channel disabled until the variable names another webhook"
        );
        Ok(())
    }

    async fn send(
        &self,
        channel: Channel,
        url: &url::Url,
        message: &Message,
    ) -> Result<(), JobFailure> {
        if let Some(wait) = self.limiter.acquire(channel, Instant::now()) {
            return Err(JobFailure::retry_after(
                format!(
                    "rate-limit bucket exhausted; waiting {} ms",
                    wait.as_millis()
                ),
                wait,
            ));
        }
        let mut target = url.clone();
        target.query_pairs_mut().append_pair("wait", "true");
        let answer = self
            .client
            .post(target)
            .json(&message.body())
            .send()
            .await
            .map_err(|e| JobFailure::retry(e.without_url()))?;
        let status = answer.status().as_u16();
        self.limiter
            .update(channel, answer.headers(), Instant::now());
        match status {
            200..=299 => Ok(()),
            429 => {
                let wait = throttled(answer).await;
                self.limiter.block(channel, wait, Instant::now());
                Err(JobFailure::retry_after(
                    format!("HTTP 429: retry after {} ms", wait.as_millis()),
                    wait,
                ))
            }
            404 => self.disable(channel, url).await,
            500..=599 => Err(JobFailure::retry(format!("HTTP {status}"))),
            _ => Err(JobFailure::permanent(format!(
                "HTTP {status}: {}",
                reason(answer).await
            ))),
        }
    }
}

impl JobKind for Post {
    const NAME: &'static str = "discord.post";
    const QUEUE: &'static str = QUEUE;
    type Payload = PostPayload;

    async fn run(&self, payload: PostPayload, _ctx: JobContext) -> Result<(), JobFailure> {
        let channel = payload.channel;
        let Some(url) = self.urls.get(&channel) else {
            tracing::debug!(%channel, "no webhook for this channel here; message dropped");
            return Ok(());
        };
        if self.disabled(channel, url).await? {
            tracing::debug!(%channel, "channel disabled (404); message dropped");
            return Ok(());
        }
        self.send(channel, url, &payload.message).await
    }
}

/// A short, stable fingerprint of a webhook URL (the URL itself is a secret).
fn fingerprint(url: &url::Url) -> String {
    hex::encode(&Sha256::digest(url.as_str().as_bytes())[..12])
}

/// How long a 429 asks to wait: the body's `retry_after` (seconds), else `Retry-After`.
async fn throttled(answer: reqwest::Response) -> Duration {
    let header = answer
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(limiter::seconds);
    let body: Option<serde_json::Value> = answer.json().await.ok();
    body.as_ref()
        .and_then(|b| b["retry_after"].as_f64())
        .and_then(|s| limiter::seconds(&s.to_string()))
        .or(header)
        .unwrap_or(DEFAULT_THROTTLE)
}

/// Discord's reason for refusing (its JSON `message`, else the start of the body), scrubbed.
async fn reason(answer: reqwest::Response) -> String {
    let text = answer.text().await.unwrap_or_default();
    let said = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or(text);
    super::clean(&said, MAX_REASON)
}
