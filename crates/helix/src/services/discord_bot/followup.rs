//! Deferred answers: when a command outlives the answer budget, Discord has been told "thinking…"
//! (type 5) and the message is sent later by editing that original response:
//! `PATCH {DISCORD_API_URL}/webhooks/{application_id}/{interaction token}/messages/@original`.
//! The interaction token authorises the call (no bot token needed) and lasts 15 minutes.
//!
//! The token is a credential: it is part of the URL, so the URL is never logged and errors are
//! logged without it (`reqwest::Error::without_url`).

use std::time::Duration;

use serde_json::Value;

use super::Bot;

/// Every request to Discord or service-integration gives up after this long.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts in all when Discord answers 429 or 5xx, or does not answer.
const ATTEMPTS: usize = 3;
/// The longest wait between attempts, whatever `Retry-After` asks for.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// Where a deferred answer goes. No `Debug`: it holds the interaction token.
pub struct Followup {
    url: Option<url::Url>,
    client: reqwest::Client,
    /// The interaction, for log lines (its id is not a credential).
    interaction_id: String,
}

impl Followup {
    pub fn new(bot: &Bot, application_id: &str, token: &str, interaction_id: &str) -> Self {
        let url = url::Url::parse(&bot.api_url).ok().and_then(|mut url| {
            url.path_segments_mut().ok()?.pop_if_empty().extend([
                "webhooks",
                application_id,
                token,
                "messages",
                "@original",
            ]);
            Some(url)
        });
        Self {
            url,
            client: bot.client.clone(),
            interaction_id: interaction_id.to_owned(),
        }
    }

    /// Edit the original response to `message`; failures are logged (the user sees "thinking…"
    /// turn into Discord's own failure notice).
    pub async fn send(self, message: &Value) {
        let id = &self.interaction_id;
        let Some(url) = self.url else {
            tracing::warn!(interaction = %id, "DISCORD_API_URL is not a URL; follow-up dropped");
            return;
        };
        for attempt in 1..=ATTEMPTS {
            let wait = match self.client.patch(url.clone()).json(message).send().await {
                Ok(answer) if answer.status().is_success() => {
                    tracing::debug!(interaction = %id, "follow-up sent");
                    return;
                }
                Ok(answer) if retryable(answer.status()) => {
                    let wait = retry_after(&answer);
                    tracing::warn!(interaction = %id, status = answer.status().as_u16(), attempt, "Discord refused a follow-up for now");
                    wait
                }
                Ok(answer) => {
                    tracing::warn!(interaction = %id, status = answer.status().as_u16(), "Discord refused a follow-up");
                    return;
                }
                Err(error) => {
                    tracing::warn!(interaction = %id, error = %error.without_url(), attempt, "could not send a follow-up");
                    Duration::from_secs(1)
                }
            };
            if attempt < ATTEMPTS {
                tokio::time::sleep(wait.min(MAX_WAIT)).await;
            }
        }
    }
}

fn retryable(status: reqwest::StatusCode) -> bool {
    status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Discord's `Retry-After` (seconds, maybe fractional); one second without it.
fn retry_after(answer: &reqwest::Response) -> Duration {
    answer
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| s.min(MAX_WAIT.as_secs_f64()))
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}
