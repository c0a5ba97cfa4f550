//! The hub's JSON protocol (documented in `docs/realtime.md`): frames clients send, frames the
//! server sends, and the close codes.
//!
//! A `message` frame is built once per instance from a channel's [`Envelope`] and shared by every
//! recipient ([`Frame`]); the other server frames are small and built per connection.

use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use helix_bus::Envelope;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Close codes: the standard ones the hub sends (1001 going away, 1009 too big, 1013 try again
/// later) and its own in the 4000 range.
pub mod close {
    /// The client read too slowly: its send queue filled up.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// No valid credential at connect, or the token expired and no fresh one came in time.
    pub const UNAUTHORIZED: u16 = 4401;
    /// Far too many frames: the client kept going after being told to slow down.
    pub const FLOOD: u16 = 4429;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    /// Credentials cannot be checked right now (backend-api is unreachable).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// A frame a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    Subscribe {
        channel: String,
        since: Option<u64>,
        epoch: Option<String>,
        id: Option<Value>,
    },
    Unsubscribe {
        channel: String,
        id: Option<Value>,
    },
    Publish {
        channel: String,
        /// Why a `Value` and not raw JSON: serde buffers internally tagged enums, which raw
        /// values cannot come through.
        data: Value,
        id: Option<Value>,
    },
    Ping {
        id: Option<Value>,
    },
    /// A fresh credential, sent when the server asked for one (`token_expiring`).
    Auth {
        token: String,
        id: Option<Value>,
    },
    /// An agent (connected with its agent key) says it is alive.
    Heartbeat {
        id: Option<Value>,
    },
}

/// Messages handed to every local subscriber of a channel at once: one queue slot and one wakeup
/// per connection however many messages arrived together.
pub type Batch = Arc<Vec<Frame>>;

/// A `message` frame ready to send: built once per instance, shared by every recipient.
#[derive(Debug)]
pub struct Frame {
    pub channel: Arc<str>,
    pub epoch: String,
    /// 0 for a message published outside the history (no offset, not recoverable) and for
    /// `gap` notices.
    pub offset: u64,
    pub text: Utf8Bytes,
}

impl Frame {
    /// The frame of a message appended to `channel`'s history; `None` if its data is not UTF-8
    /// (the hub only appends JSON, but anyone can write to the bus).
    pub fn from_envelope(channel: &Arc<str>, envelope: &Envelope) -> Option<Self> {
        let data = std::str::from_utf8(&envelope.data).ok()?;
        let text = format!(
            r#"{{"type":"message","channel":{},"offset":{},"epoch":"{}","data":{data}}}"#,
            quoted(channel),
            envelope.offset,
            envelope.epoch,
        );
        Some(Self {
            channel: channel.clone(),
            epoch: envelope.epoch.clone(),
            offset: envelope.offset,
            text: text.into(),
        })
    }

    /// Tells subscribers that messages of `channel` were lost (the bus was interrupted and the
    /// history no longer reaches back): refetch from the source of truth, go on from `offset`.
    pub fn gap(channel: &Arc<str>, epoch: &str, offset: u64) -> Self {
        let text = json!({"type": "gap", "channel": &**channel, "epoch": epoch, "offset": offset});
        Self {
            channel: channel.clone(),
            epoch: String::new(),
            offset: 0,
            text: text.to_string().into(),
        }
    }

    /// The frame of a payload published on the bus without history (by a process that does not
    /// use it): delivered live without offset; `None` unless it is JSON.
    pub fn from_plain(channel: &Arc<str>, payload: &[u8]) -> Option<Self> {
        let data: &RawValue = serde_json::from_slice(payload).ok()?;
        let text = format!(
            r#"{{"type":"message","channel":{},"data":{}}}"#,
            quoted(channel),
            data.get()
        );
        Some(Self {
            channel: channel.clone(),
            epoch: String::new(),
            offset: 0,
            text: text.into(),
        })
    }
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Add the client's correlation `id` (if it sent one) to a reply.
fn with_id(mut frame: Value, id: Option<&Value>) -> Utf8Bytes {
    if let (Some(id), Some(map)) = (id, frame.as_object_mut()) {
        map.insert("id".into(), id.clone());
    }
    frame.to_string().into()
}

pub fn welcome(connection_id: u64, user_id: &str, expires_at: Option<i64>) -> Utf8Bytes {
    json!({
        "type": "welcome",
        "connection_id": connection_id,
        "user_id": user_id,
        "expires_at": expires_at,
    })
    .to_string()
    .into()
}

pub fn subscribed(
    channel: &str,
    epoch: &str,
    offset: u64,
    recovered: Option<bool>,
    id: Option<&Value>,
) -> Utf8Bytes {
    let mut frame =
        json!({"type": "subscribed", "channel": channel, "epoch": epoch, "offset": offset});
    if let Some(recovered) = recovered {
        frame["recovered"] = recovered.into();
    }
    with_id(frame, id)
}

pub fn unsubscribed(channel: &str, id: Option<&Value>) -> Utf8Bytes {
    with_id(json!({"type": "unsubscribed", "channel": channel}), id)
}

pub fn published(channel: &str, epoch: &str, offset: u64, id: Option<&Value>) -> Utf8Bytes {
    with_id(
        json!({"type": "published", "channel": channel, "epoch": epoch, "offset": offset}),
        id,
    )
}

pub fn pong(id: Option<&Value>) -> Utf8Bytes {
    with_id(json!({"type": "pong"}), id)
}

pub fn heartbeat_ack(agent_id: &str, id: Option<&Value>) -> Utf8Bytes {
    with_id(json!({"type": "heartbeat_ack", "agent_id": agent_id}), id)
}

pub fn authenticated(expires_at: Option<i64>, id: Option<&Value>) -> Utf8Bytes {
    with_id(
        json!({"type": "authenticated", "expires_at": expires_at}),
        id,
    )
}

pub fn token_expiring(expires_at: i64, grace_ms: u64) -> Utf8Bytes {
    json!({"type": "token_expiring", "expires_at": expires_at, "grace_ms": grace_ms})
        .to_string()
        .into()
}

pub fn error(code: &str, message: &str, channel: Option<&str>, id: Option<&Value>) -> Utf8Bytes {
    let mut frame = json!({"type": "error", "code": code, "message": message});
    if let Some(channel) = channel {
        frame["channel"] = channel.into();
    }
    with_id(frame, id)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    #[test]
    fn a_message_frame_is_json_with_the_envelope_fields_and_the_data_verbatim() {
        let envelope = Envelope {
            epoch: "00ff00ff00ff00ff".into(),
            offset: 7,
            time_ms: 1,
            data: Bytes::from_static(br#"{"ts":12,"text":"h\u00e9"}"#),
        };
        let channel: Arc<str> = Arc::from("consciousness:stream");
        let frame = Frame::from_envelope(&channel, &envelope).expect("a frame");
        let parsed: Value = serde_json::from_str(frame.text.as_str()).expect("JSON");
        assert_eq!(
            parsed,
            json!({"type":"message","channel":"consciousness:stream","offset":7,
                   "epoch":"00ff00ff00ff00ff","data":{"ts":12,"text":"hé"}})
        );
        assert!(Frame::from_plain(&channel, b"not json").is_none());
        let plain = Frame::from_plain(&channel, br#"[1,2]"#).expect("a frame");
        assert_eq!(
            plain.text.as_str(),
            r#"{"type":"message","channel":"consciousness:stream","data":[1,2]}"#
        );
    }

    #[test]
    fn client_frames_parse_and_unknown_types_or_fields_do_not() {
        let sub: ClientFrame =
            serde_json::from_str(r#"{"type":"subscribe","channel":"x","since":4,"epoch":"e"}"#)
                .expect("subscribe");
        assert!(matches!(sub, ClientFrame::Subscribe { since: Some(4), .. }));
        for bad in [
            r#"{"type":"shout","channel":"x"}"#,
            r#"{"type":"subscribe","channel":"x","extra":1}"#,
            r#"{"type":"publish","channel":"x"}"#,
            r#"{"channel":"x"}"#,
            "[1]",
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }
}
