//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG` (default
//! [`DEFAULT_FILTER`]).

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// `info`, without kube's own line for each failed API request (`failed with error
/// client error (Connect)`): the caller logs the same failure, with its whole cause and
/// what it was doing, so the default log says it once.
pub const DEFAULT_FILTER: &str = "info,kube_client::client::builder=off";

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
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

/// A value from a request as a log field: control characters escaped, so no input can
/// start a new log line or hide behind a terminal escape sequence, and at most `max`
/// characters (the cut marked with `…`). Text and JSON logs both get the escaped form.
pub struct Escaped<'a> {
    text: &'a str,
    max: usize,
}

impl<'a> Escaped<'a> {
    pub fn new(text: &'a str, max: usize) -> Self {
        Self { text, max }
    }
}

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write as _;
        // `max` counts what is written, escapes included, so the cap holds for the line.
        let mut written = 0;
        for c in self.text.chars() {
            let escaped = match c {
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                '\t' => "\\t".to_owned(),
                '\\' => "\\\\".to_owned(),
                // Line and paragraph separators end a line for some log readers; bidi
                // controls reorder what a reader sees.
                c if c.is_control()
                    || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}') =>
                {
                    format!("\\u{{{:x}}}", u32::from(c))
                }
                c => {
                    if written == self.max {
                        return f.write_char('…');
                    }
                    written += 1;
                    f.write_char(c)?;
                    continue;
                }
            };
            let width = escaped.chars().count();
            if written + width > self.max {
                return f.write_char('…');
            }
            written += width;
            f.write_str(&escaped)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Escaped;

    #[test]
    fn no_input_starts_a_new_line() {
        let forged = "u-1\n2026-12-01T00:00:00Z  INFO review verdict=allowed\r\u{1b}[2J\u{2028}\\";
        let shown = Escaped::new(forged, 1000).to_string();
        assert!(
            !shown.contains(['\n', '\r', '\u{1b}', '\u{2028}']),
            "{shown}"
        );
        assert_eq!(
            shown,
            "u-1\\n2026-12-01T00:00:00Z  INFO review verdict=allowed\\r\\u{1b}[2J\\u{2028}\\\\"
        );
    }

    #[test]
    fn long_values_are_cut() {
        assert_eq!(Escaped::new("abcdef", 3).to_string(), "abc…");
        assert_eq!(Escaped::new("abc", 3).to_string(), "abc");
        // Escapes count: a field of control characters stays within its cap.
        let shown = Escaped::new(&"\u{1}".repeat(1000), 64).to_string();
        assert!(shown.chars().count() <= 65, "{shown}");
        assert!(shown.ends_with('…'));
    }
}
