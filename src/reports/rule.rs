//! Rule ids: stable names for "the same problem" across objects, so a dashboard can group
//! and count them. Built from the finding's field path with quoted keys (registry hosts,
//! annotation names) as `*`, and a slug of the message made of its plain lowercase words
//! only: quoted names, numbers, hosts and punctuation are dropped, so an id never holds
//! more than the message already says and rarely differs between two objects.

use super::MAX_RULE_CHARS;
use crate::audit::report_pattern;

/// Words of a message kept in its slug.
const SLUG_WORDS: usize = 8;

/// `<field pattern>:<message slug>`, e.g. `data[.dockerconfigjson].auths[*].auth:password-must-not-be-empty`.
pub fn finding(field: &str, message: &str) -> String {
    let pattern = report_pattern(field);
    let id = match slug(message) {
        s if s.is_empty() => pattern,
        s if pattern.is_empty() => s,
        s => format!("{pattern}:{s}"),
    };
    clip(id)
}

/// `<prefix>:<message slug>` for findings without a field (pod warnings).
pub fn prefixed(prefix: &str, message: &str) -> String {
    match slug(message) {
        s if s.is_empty() => prefix.to_owned(),
        s => clip(format!("{prefix}:{s}")),
    }
}

/// The plain lowercase words of `message` (letters and inner hyphens), joined by `-`.
pub fn slug(message: &str) -> String {
    let words: Vec<String> = message
        .split_whitespace()
        .filter(|w| !w.starts_with(['"', '\'', '`']))
        .map(|w| {
            w.trim_end_matches([',', ';', ':', '.', ')'])
                .to_ascii_lowercase()
        })
        .filter(|w| {
            !w.is_empty()
                && w.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && !w.starts_with('-')
                && !w.ends_with('-')
        })
        .take(SLUG_WORDS)
        .collect();
    words.join("-")
}

/// `text` cut to at most `MAX_RULE_CHARS` characters.
fn clip(text: String) -> String {
    match text.char_indices().nth(MAX_RULE_CHARS) {
        Some((at, _)) => text[..at].to_owned(),
        None => text,
    }
}
