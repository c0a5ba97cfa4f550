//! The websocket-streaming JSON frames as the load generator sees them: building the few frames it
//! sends, and reading the ones it receives.
//!
//! Hot paths (`ws-broadcast`, `ws-rooms`: every delivery to every subscriber) never parse a whole
//! frame: [`kind`] and [`u64_field`] scan the text for one key and read its value. That is sound
//! here because the load generator writes the `data` itself and uses no key that the envelope
//! also uses. Frames whose every field matters (acks, `subscribed`, `ws-storm`'s offsets) are
//! parsed with serde into [`Frame`], borrowing from the text.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::json;

/// Any server frame, with the fields the load generator reads (others are skipped).
#[derive(Debug, Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(default)]
    pub offset: Option<u64>,
    #[serde(default, borrow)]
    pub epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    pub recovered: Option<bool>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
}

impl<'a> Frame<'a> {
    pub fn parse(text: &'a str) -> Option<Frame<'a>> {
        serde_json::from_str(text).ok()
    }

    /// `code: message` of an `error` frame, for reports.
    pub fn error_text(&self) -> String {
        format!(
            "{}: {}",
            self.code.as_deref().unwrap_or("?"),
            self.message.as_deref().unwrap_or("")
        )
    }
}

/// `{"type":"subscribe",…}`, with `since` and `epoch` when resuming after a disconnect.
pub fn subscribe(channel: &str, resume: Option<(u64, &str)>) -> String {
    let mut frame = json!({"type": "subscribe", "channel": channel});
    if let Some((since, epoch)) = resume {
        frame["since"] = json!(since);
        frame["epoch"] = json!(epoch);
    }
    frame.to_string()
}

/// A `publish` frame for one channel, stamped out per send with the send time and a sequence
/// number: `data` is `{"ts":<unix ns>,"seq":<n>,"pad":"xx…"}`.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    /// Everything up to the `ts` value.
    head: String,
    /// `,"pad":"xx…"}}`: the rest after `seq`.
    tail: String,
}

impl PublishTemplate {
    pub fn new(channel: &str, pad_bytes: usize) -> PublishTemplate {
        let channel = serde_json::Value::from(channel);
        PublishTemplate {
            head: format!(r#"{{"type":"publish","channel":{channel},"data":{{"ts":"#),
            tail: format!(r#","pad":"{}"}}}}"#, "x".repeat(pad_bytes)),
        }
    }

    pub fn frame(&self, ts: u64, seq: u64) -> String {
        format!(r#"{}{ts},"seq":{seq}{}"#, self.head, self.tail)
    }
}

/// The `type` of a frame, read without parsing the rest.
pub fn kind(frame: &str) -> Option<&str> {
    let value = value_after_key(frame, "type")?;
    let rest = value.strip_prefix('"')?;
    Some(&rest[..rest.find('"')?])
}

/// The first unsigned integer stored under `"key"` anywhere in the frame (e.g. `ts` inside
/// `data`), read without parsing the rest; `None` if the key is absent or not an integer.
pub fn u64_field(frame: &str, key: &str) -> Option<u64> {
    let value = value_after_key(frame, key)?;
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

/// The text right after `"key"` and its colon (whitespace skipped). A string value equal to
/// `"key"` is no match, since no colon follows it.
fn value_after_key<'f>(frame: &'f str, key: &str) -> Option<&'f str> {
    let quoted = format!("\"{key}\"");
    let mut from = 0;
    while let Some(at) = frame[from..].find(&quoted) {
        let after = &frame[from + at + quoted.len()..];
        if let Some(value) = after.trim_start().strip_prefix(':') {
            return Some(value.trim_start());
        }
        from += at + quoted.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = r#"{"type":"message","channel":"consciousness:stream","offset":42,"epoch":"00ff","data":{"ts":1700000000123456789,"seq":7,"pad":"xxxx"}}"#;

    #[test]
    fn reads_the_send_time_out_of_a_message_frame() {
        assert_eq!(kind(MESSAGE), Some("message"));
        assert_eq!(u64_field(MESSAGE, "ts"), Some(1_700_000_000_123_456_789));
        assert_eq!(u64_field(MESSAGE, "offset"), Some(42));
        assert_eq!(u64_field(MESSAGE, "seq"), Some(7));
    }

    #[test]
    fn tolerates_whitespace_and_skips_string_values_that_look_like_the_key() {
        let frame = r#"{ "type" : "message", "channel": "ts", "data": { "ts" :  99 } }"#;
        assert_eq!(kind(frame), Some("message"));
        assert_eq!(u64_field(frame, "ts"), Some(99));
    }

    #[test]
    fn missing_or_non_numeric_values_are_none() {
        assert_eq!(u64_field(r#"{"type":"pong"}"#, "ts"), None);
        assert_eq!(u64_field(r#"{"data":{"ts":"soon"}}"#, "ts"), None);
        assert_eq!(u64_field(r#"{"data":{"ts":-5}}"#, "ts"), None);
        assert_eq!(u64_field(r#"{"ts":99999999999999999999999}"#, "ts"), None);
        assert_eq!(kind(r#"{"channel":"x"}"#), None);
        assert_eq!(kind(r#"{"type":5}"#), None);
    }

    #[test]
    fn a_publish_frame_carries_its_time_and_sequence_as_json() {
        let template = PublishTemplate::new("conversation:abc", 3);
        let frame = template.frame(123, 9);
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(
            parsed,
            json!({"type":"publish","channel":"conversation:abc",
                   "data":{"ts":123,"seq":9,"pad":"xxx"}})
        );
    }

    #[test]
    fn subscribe_names_since_and_epoch_only_when_resuming() {
        let fresh: serde_json::Value = serde_json::from_str(&subscribe("c", None)).unwrap();
        assert_eq!(fresh, json!({"type":"subscribe","channel":"c"}));
        let resume: serde_json::Value =
            serde_json::from_str(&subscribe("c", Some((17, "e1")))).unwrap();
        assert_eq!(
            resume,
            json!({"type":"subscribe","channel":"c","since":17,"epoch":"e1"})
        );
    }

    #[test]
    fn parses_the_fields_of_acks_and_errors() {
        let ack = Frame::parse(
            r#"{"type":"subscribed","channel":"c","epoch":"e","offset":3,"recovered":true}"#,
        )
        .unwrap();
        assert_eq!(ack.kind, "subscribed");
        assert_eq!((ack.offset, ack.recovered), (Some(3), Some(true)));
        let error = Frame::parse(r#"{"type":"error","code":"forbidden","message":"no"}"#).unwrap();
        assert_eq!(error.error_text(), "forbidden: no");
    }
}
