//! Logging: `tracing` with pretty or JSON lines, `RUST_LOG` respected, every line scrubbed of
//! secrets by the redaction layer before it is written.

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;
use crate::shared::redact::RedactingWriter;

/// What is logged when `RUST_LOG` is not set: our own INFO, drivers' warnings only.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn,hyper=warn,redis=warn,tower=warn";

/// Install the global subscriber writing to stderr.
pub fn init(format: LogFormat, filter: Option<&str>) {
    init_with(format, filter, std::io::stderr);
}

/// Install the global subscriber writing to `writer` (tests capture logs this way). A second
/// call is ignored.
pub fn init_with<W>(format: LogFormat, filter: Option<&str>, writer: W)
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(filter.unwrap_or(DEFAULT_FILTER))
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let writer = RedactingWriter::new(writer);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Pretty => builder.with_ansi(ansi()).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}

fn ansi() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
