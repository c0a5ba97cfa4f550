//! Field rules of backend-api's bodies, each failing with a 422 that names the field.

use crate::shared::error::ApiError;

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_NAME_LEN: usize = 100;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_ONBOARDING_STEP: i32 = 100;

/// Trim and lower-case an email, and check its shape. Uniqueness is then case-insensitive because
/// only the normalised form is stored.
pub fn email(raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    let bad = |why: &str| Err(ApiError::unprocessable("email", why));
    if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        return bad("must be an email address of at most 254 characters");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.') =>
        {
            Ok(email)
        }
        _ => bad("must be an email address like name@example.com"),
    }
}

/// A display or key name: trimmed, 1–100 characters, no control characters.
pub fn name(field: &str, raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    let len = name.chars().count();
    if len == 0 || len > MAX_NAME_LEN {
        return Err(ApiError::unprocessable(
            field,
            "must be 1 to 100 characters",
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

/// An avatar URL: http(s), at most 2048 characters.
pub fn avatar_url(raw: &str) -> Result<String, ApiError> {
    let ok = raw.len() <= MAX_URL_LEN
        && url::Url::parse(raw)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
    if !ok {
        return Err(ApiError::unprocessable(
            "avatar_url",
            "must be an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(raw.to_owned())
}

pub fn onboarding_step(step: i32) -> Result<i32, ApiError> {
    if !(0..=MAX_ONBOARDING_STEP).contains(&step) {
        return Err(ApiError::unprocessable(
            "onboarding_step",
            "must be from 0 to 100",
        ));
    }
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            email("  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@@b.com",
            "ada@.com",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
        assert!(email(&format!("{}@example.com", "a".repeat(250))).is_err());
    }

    #[test]
    fn names_urls_and_steps() {
        assert_eq!(name("display_name", "  Ada ").ok().as_deref(), Some("Ada"));
        assert!(name("display_name", "   ").is_err());
        assert!(name("display_name", "a\u{0}b").is_err());
        assert!(name("display_name", &"x".repeat(101)).is_err());
        assert!(avatar_url("https://cdn.example.com/a.png").is_ok());
        assert!(avatar_url("javascript:alert(1)").is_err());
        assert!(onboarding_step(101).is_err());
        assert!(onboarding_step(-1).is_err());
    }
}
