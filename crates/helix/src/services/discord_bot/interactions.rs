//! `POST /discord/interactions`: the endpoint Discord calls for every interaction.
//!
//! Order of checks, each refusal storing nothing: DISCORD_PUBLIC_KEY unset → 503; a body over the
//! limit → 413; a missing header, a signature that is not 64 bytes of hex, a wrong signature or a
//! timestamp more than 5 minutes away → 401; a body that is not an interaction → 400; a type
//! other than PING (1) and APPLICATION_COMMAND (2) → 400. Then PING answers `{"type":1}` and a
//! command answers with its message (type 4), or with type 5 ("thinking…") when it outlives the
//! answer budget, its message following through [`followup`]. Each answered interaction is
//! recorded once in `discord_interactions`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use bytes::Bytes;
use chrono::Utc;
use helix_store::discord::NewInteraction;
use serde::Deserialize;
use serde_json::{json, Value};

use super::logs::{Channel, Field, Logger};
use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::{commands, followup::Followup, logs, Bot};
use crate::services::ServiceState;
use crate::shared::error::ApiError;

/// Discord's interaction types this endpoint answers.
const PING: i16 = 1;
const APPLICATION_COMMAND: i16 = 2;
/// Response types.
const PONG: u8 = 1;
const CHANNEL_MESSAGE: u8 = 4;
const DEFERRED_CHANNEL_MESSAGE: u8 = 5;

/// The parts of an interaction the bot reads. No `Debug`: `token` is a credential.
#[derive(Deserialize)]
struct Interaction {
    id: String,
    application_id: String,
    #[serde(rename = "type")]
    kind: i16,
    token: String,
    /// A command's `name` and options, a component's `custom_id`, …: read per type.
    #[serde(default)]
    data: Value,
    guild_id: Option<String>,
    channel_id: Option<String>,
    channel: Option<Id>,
    /// Who invoked it in a guild.
    member: Option<Member>,
    /// Who invoked it in a direct message.
    user: Option<Id>,
}

#[derive(Deserialize)]
struct Member {
    user: Option<Id>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

/// Receive one interaction (signed by Discord; no other authentication).
pub async fn receive(
    State(state): State<ServiceState>,
    Extension(bot): Extension<Arc<Bot>>,
    Extension(logger): Extension<Logger>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let received = Instant::now();
    let key = bot.key.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "interactions_not_configured",
            "DISCORD_PUBLIC_KEY is not set; unsigned interactions are never accepted",
        )
    })?;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                e.status(),
                "payload_too_large",
                format!(
                    "an interaction may be at most {} bytes",
                    crate::shared::json::MAX_BODY_BYTES
                ),
            )
        } else {
            ApiError::new(e.status(), "bad_request", e.body_text())
        }
    })?;
    let header = |name| headers.get(name).map(|v| v.to_str().unwrap_or_default());
    signature::verify(
        key,
        header(SIGNATURE_HEADER),
        header(TIMESTAMP_HEADER),
        &body,
        Utc::now().timestamp(),
    )
    .map_err(|e| {
        tracing::warn!(reason = %e, "refused a Discord interaction");
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_signature", e.to_string())
    })?;
    let interaction = parse(&body)?;
    let (answer, command, deferred) = match interaction.kind {
        PING => (json!({"type": PONG}), None, false),
        APPLICATION_COMMAND => {
            let name = interaction.data["name"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| invalid("an application command without data.name"))?;
            let (answer, deferred) = answer(&state, &bot, &interaction, &name).await;
            (answer, Some(name), deferred)
        }
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_interaction_type",
                format!("interaction type {other} is not handled here (only 1 and 2)"),
            ))
        }
    };
    if let Some(name) = &command {
        log_command(&state, logger, &interaction, name, deferred, received);
    }
    record(&state, &interaction, command, deferred, received).await;
    Ok(Json(answer))
}

fn parse(body: &[u8]) -> Result<Interaction, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )
    })?;
    serde_json::from_value(value).map_err(|e| invalid(&e.to_string()))
}

fn invalid(why: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_interaction",
        format!("not a Discord interaction: {why}"),
    )
}

/// Run the command for at most the answer budget: its message (type 4), or type 5 with the
/// message sent as a follow-up once ready.
async fn answer(
    state: &ServiceState,
    bot: &Arc<Bot>,
    interaction: &Interaction,
    name: &str,
) -> (Value, bool) {
    if !commands::is_known(name) {
        let data = commands::unknown(name);
        return (json!({"type": CHANNEL_MESSAGE, "data": data}), false);
    }
    let mut work = Box::pin(commands::run(state.clone(), bot.clone(), name.to_owned()));
    // Why biased: with a zero budget, a command that is ready at once still answers at once.
    tokio::select! {
        biased;
        data = &mut work => (json!({"type": CHANNEL_MESSAGE, "data": data}), false),
        () = tokio::time::sleep(bot.budget) => {
            let followup = Followup::new(bot, &interaction.application_id, &interaction.token, &interaction.id);
            // Why a tracked task: it outlives this request, and a stopping service waits for it
            // so the user still gets the answer.
            state.tasks().spawn(async move {
                let data = work.await;
                followup.send(&data).await;
            });
            (json!({"type": DEFERRED_CHANNEL_MESSAGE}), true)
        }
    }
}

/// Post the command to the `commands` channel (who ran what, where, how it was answered); never
/// the token or the answer's content. In a tracked task, so the answer does not wait for the
/// queue.
fn log_command(
    state: &ServiceState,
    logger: Logger,
    interaction: &Interaction,
    name: &str,
    deferred: bool,
    received: Instant,
) {
    if !logger.is_on(Channel::Commands) {
        return;
    }
    let field = |name: &str, value: String| Field {
        name: name.to_owned(),
        value,
        inline: true,
    };
    let mut fields = vec![field(
        "answered",
        format!(
            "{} in {} ms",
            if deferred { "deferred" } else { "at once" },
            received.elapsed().as_millis()
        ),
    )];
    if let Some(user) = user_id(interaction) {
        fields.push(field("user", user));
    }
    if let Some(guild) = &interaction.guild_id {
        fields.push(field("guild", guild.clone()));
    }
    let message = logs::Message::embed(logs::Embed {
        title: Some(format!("/{name}")),
        color: Some(logs::BLUE),
        fields,
        timestamp: Some(Utc::now().to_rfc3339()),
        ..logs::Embed::default()
    });
    let id = interaction.id.clone();
    state.tasks().spawn(async move {
        logger.log(Channel::Commands, message, Some(&id)).await;
    });
}

fn user_id(interaction: &Interaction) -> Option<String> {
    interaction
        .member
        .as_ref()
        .and_then(|m| m.user.as_ref())
        .or(interaction.user.as_ref())
        .map(|u| u.id.clone())
}

/// Record the interaction (once per id); a failure is logged, the answer still goes out.
async fn record(
    state: &ServiceState,
    interaction: &Interaction,
    command: Option<String>,
    deferred: bool,
    received: Instant,
) {
    let Some(store) = state.store() else { return };
    let user_id = user_id(interaction);
    let new = NewInteraction {
        interaction_id: interaction.id.clone(),
        kind: interaction.kind,
        command,
        user_id,
        guild_id: interaction.guild_id.clone(),
        channel_id: interaction
            .channel_id
            .clone()
            .or_else(|| interaction.channel.as_ref().map(|c| c.id.clone())),
        deferred,
        latency_ms: i64::try_from(received.elapsed().as_millis()).unwrap_or(i64::MAX),
        created_at: Utc::now(),
    };
    match store.discord().record_interaction(&new).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(interaction = %new.interaction_id, "interaction delivered again; recorded once")
        }
        Err(error) => {
            tracing::warn!(interaction = %new.interaction_id, %error, "could not record an interaction")
        }
    }
}
