//! voice-processing: Speech-to-text and text-to-speech.
//!
//! Declares what the service needs; its HTTP surface beyond `/health` and `/metrics` arrives with
//! the issue that builds it.

use crate::platform::catalog::{Need, ServiceSpec, VarSpec, BACKEND_API_URL_VAR, JWT_SECRET_VAR};

/// What voice-processing declares.
pub const SPEC: ServiceSpec = ServiceSpec {
    name: "voice-processing",
    port: Some(8004),
    postgres: Need::No,
    redis: Need::Yes,
    about: "Speech-to-text and text-to-speech.",
    postgres_why: "audio is processed in flight; nothing durable is kept",
    redis_why: "publishes voice events",
    vars: &[
        JWT_SECRET_VAR,
        BACKEND_API_URL_VAR,
        VarSpec::optional("GOOGLE_CLOUD_KEY", "Google Cloud speech credentials").secret(),
        VarSpec::optional("AUDIO_TEMP_DIR", "scratch directory for audio files"),
    ],
    api_ready: false,
};
