//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG` (default
//! `info`).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Built without tracing-subscriber's `ansi` feature: in a pod, stderr goes to a file
    // where escape codes are noise for log tools, and styling every field (even with
    // colours off) cost ~20k instructions a line, a tenth of an allowed review
    // (callgrind, BENCHMARKS.md).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
