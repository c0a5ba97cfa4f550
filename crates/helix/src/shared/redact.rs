//! Redaction: no secret value, `Authorization` header or password reaches a log line or a table.
//!
//! Two mechanisms. [`url`] hides the password of a URL for display. [`RedactingWriter`] sits
//! between the log formatter and its output and scrubs every line: values registered with
//! [`register`] (every secret variable of every running service), passwords in URLs, bearer
//! tokens and JSON Web Tokens. Scrubbing the formatted bytes, rather than individual fields,
//! means a secret cannot slip through a field or a message nobody thought of.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

/// What a hidden value is replaced with in tables and logs.
pub const HIDDEN: &str = "«hidden»";

/// Registered secret values. A lock rather than a lock-free structure: writes happen a handful of
/// times at start-up, reads once per log line.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Shorter values are not registered: scrubbing "abc" out of every log line would garble logs
/// and protect nothing worth protecting.
const MIN_SECRET_LEN: usize = 6;

/// Register a secret value so that no log line ever shows it.
pub fn register(value: &str) {
    let mut values = vec![value.to_owned()];
    if let Some(password) = url_password(value) {
        values.push(password.to_owned());
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for v in values {
        if v.len() >= MIN_SECRET_LEN && !secrets.contains(&v) {
            secrets.push(v);
        }
    }
    // Longest first, so a secret that contains another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// A URL with its password replaced by «hidden»; a value that is not a URL is hidden whole.
pub fn url(value: &str) -> String {
    if !value.contains("://") {
        return HIDDEN.to_owned();
    }
    match url_password_range(value) {
        Some((start, end)) => format!("{}{HIDDEN}{}", &value[..start], &value[end..]),
        None => value.to_owned(),
    }
}

fn url_password(value: &str) -> Option<&str> {
    url_password_range(value)
        .map(|(s, e)| &value[s..e])
        .filter(|p| !p.is_empty())
}

/// Byte range of the password in `scheme://user:password@host…`.
fn url_password_range(value: &str) -> Option<(usize, usize)> {
    let authority_start = value.find("://")? + 3;
    let rest = &value[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some((authority_start + colon + 1, authority_start + at))
}

/// Scrub one formatted log line.
pub fn scrub(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    {
        let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), HIDDEN));
            }
        }
    }
    if out.contains("://") {
        out = Cow::Owned(scrub_urls(&out));
    }
    if let Some(scrubbed) = scrub_bearer(&out) {
        out = Cow::Owned(scrubbed);
    }
    if let Some(scrubbed) = scrub_jwts(&out) {
        out = Cow::Owned(scrubbed);
    }
    out
}

/// Hide every JSON Web Token (`eyJ…` header, a payload and a signature, base64url, dot
/// separated), registered or not: a token is a credential wherever it turns up.
fn scrub_jwts(text: &str) -> Option<String> {
    if !text.contains("eyJ") {
        return None;
    }
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    let mut changed = false;
    while let Some(found) = text[pos..].find("eyJ") {
        let start = pos + found;
        let preceded = text[..start].chars().next_back().is_some_and(is_b64);
        let end = text[start..]
            .find(|c: char| !(is_b64(c) || c == '.'))
            .map_or(text.len(), |i| start + i);
        let token = text[start..end].trim_end_matches('.');
        let parts: Vec<&str> = token.split('.').collect();
        let looks_like_jwt = !preceded
            && parts.len() == 3
            && parts[0].len() >= 10
            && parts[1].len() >= 4
            && !parts[2].is_empty();
        if looks_like_jwt {
            out.push_str(&text[pos..start]);
            out.push_str(HIDDEN);
            pos = start + token.len();
            changed = true;
        } else {
            out.push_str(&text[pos..start + 3]);
            pos = start + 3;
        }
    }
    out.push_str(&text[pos..]);
    changed.then_some(out)
}

/// Hide the password of every URL in a text.
fn scrub_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let start = rest[..idx]
            .rfind(|c: char| c.is_whitespace() || c == '"' || c == '=' || c == '\\')
            .map_or(0, |i| i + 1);
        out.push_str(&rest[..start]);
        let token_end = rest[start..]
            .find(ends_token)
            .map_or(rest.len(), |i| start + i);
        out.push_str(&url(&rest[start..token_end]));
        rest = &rest[token_end..];
    }
    out.push_str(rest);
    out
}

/// Where a URL or token inside a log line ends. A backslash counts because JSON lines escape the
/// quote that closes a string, and eating the backslash would corrupt the line.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || c == '"' || c == '\\'
}

/// Hide the credential after every `Bearer ` (any case).
fn scrub_bearer(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("bearer ") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("bearer ") {
        let token_start = pos + found + "bearer ".len();
        out.push_str(&text[pos..token_start]);
        let token_end = text[token_start..]
            .find(|c: char| ends_token(c) || c == ',')
            .map_or(text.len(), |i| token_start + i);
        out.push_str(HIDDEN);
        pos = token_end;
    }
    out.push_str(&text[pos..]);
    Some(out)
}

/// Wraps a [`MakeWriter`] so that every line is scrubbed before it is written.
#[derive(Debug, Clone)]
pub struct RedactingWriter<M> {
    inner: M,
}

impl<M> RedactingWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingWriter<M> {
    type Writer = Scrubbing<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Scrubbing(self.inner.make_writer())
    }
}

/// The writer of one log event. The formatter hands over each event in one `write` call, so
/// scrubbing per call sees whole lines.
#[derive(Debug)]
pub struct Scrubbing<W>(W);

impl<W: Write> Write for Scrubbing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hides_password_only() {
        assert_eq!(
            url("postgres://app:s3cret@db:5432/x"),
            "postgres://app:«hidden»@db:5432/x"
        );
        assert_eq!(url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(url("redis://:pw@h:1/0"), "redis://:«hidden»@h:1/0");
        assert_eq!(url("not a url"), HIDDEN);
    }

    #[test]
    fn scrub_hides_registered_values_urls_and_bearer_tokens() {
        register("planted-secret-value-42");
        let line = "token=planted-secret-value-42 url=postgres://u:pw9@h/db Authorization: Bearer abc.def.ghi end";
        let out = scrub(line);
        assert!(!out.contains("planted-secret-value-42"), "{out}");
        assert!(!out.contains("pw9"), "{out}");
        assert!(!out.contains("abc.def.ghi"), "{out}");
        assert!(out.ends_with(" end"), "{out}");
    }

    #[test]
    fn scrubbing_keeps_json_escapes_intact() {
        let line = r#"{"headers":"[(\"authorization\", \"Bearer tok.en\")]","url":"redis://:pw123456@h:1\"x"}"#;
        let out = scrub(line);
        assert!(
            !out.contains("tok.en") && !out.contains("pw123456"),
            "{out}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "still JSON: {out}"
        );
    }

    #[test]
    fn json_web_tokens_are_hidden_unregistered() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl-_x";
        assert_eq!(
            scrub(&format!("token {jwt}. next eyJ alone")),
            format!("token {HIDDEN}. next eyJ alone")
        );
        assert_eq!(scrub("keyJ.a.b"), "keyJ.a.b");
    }

    #[test]
    fn registering_a_url_registers_its_password() {
        register("postgres://user:another-planted-pw@host/db");
        assert_eq!(scrub("pw is another-planted-pw"), format!("pw is {HIDDEN}"));
    }
}
