//! Caps on what one review makes secretgate say. A tenant controls how many findings a
//! secret produces (one per registry key, per annotation, per known_hosts line) and how
//! long the names in them are, so the denial, the warnings and the log line are cut here,
//! whatever the input: the first `MAX_SHOWN` findings in full (each clipped), then one
//! line that counts the rest by rule.
//!
//! Bounds, with every finding clipped to `MAX_FIELD_CHARS + MAX_MESSAGE_CHARS`: a denial
//! message and the warnings each stay under ~20 KiB, a response under 64 KiB.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::secrets::Violation;

/// Findings (and warnings) shown in full per review.
pub const MAX_SHOWN: usize = 20;
/// Longest field path shown; longer ones end in `…`.
pub const MAX_FIELD_CHARS: usize = 256;
/// Longest message shown; longer ones end in `…`.
pub const MAX_MESSAGE_CHARS: usize = 512;
/// Rules named in the "and N more" line, most frequent first.
const MAX_RULES_COUNTED: usize = 5;
/// Length of a message when it names a rule in the "and N more" line.
const RULE_CHARS: usize = 96;

/// `text` cut to at most `max` characters (the cut marked with `…`).
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    // No more bytes than allowed characters: nothing to count.
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    match text.char_indices().nth(max) {
        None => Cow::Borrowed(text),
        Some((end, _)) => {
            let end = text[..end]
                .char_indices()
                .next_back()
                .map_or(0, |(last, _)| last);
            Cow::Owned(format!("{}…", &text[..end]))
        }
    }
}

/// A finding clipped to the caps.
pub fn clip_finding(v: Violation) -> Violation {
    if v.field.len() <= MAX_FIELD_CHARS && v.message.len() <= MAX_MESSAGE_CHARS {
        return v;
    }
    Violation {
        field: clip(&v.field, MAX_FIELD_CHARS).into_owned(),
        message: clip(&v.message, MAX_MESSAGE_CHARS).into_owned(),
        severity: v.severity,
        mode: v.mode,
    }
}

/// The lines to show for `findings`: the first `MAX_SHOWN`, clipped, then a count of the
/// rest by rule.
pub fn lines<'a>(findings: impl ExactSizeIterator<Item = &'a Violation>) -> Vec<String> {
    let total = findings.len();
    let mut shown = Vec::with_capacity(total.min(MAX_SHOWN) + 1);
    let mut rest: Vec<&Violation> = Vec::new();
    for (i, v) in findings.enumerate() {
        if i < MAX_SHOWN {
            shown.push(format!(
                "{}: {}",
                clip(&v.field, MAX_FIELD_CHARS),
                clip(&v.message, MAX_MESSAGE_CHARS)
            ));
        } else {
            rest.push(v);
        }
    }
    if !rest.is_empty() {
        shown.push(more(rest.iter().map(|v| v.message.as_str())));
    }
    shown
}

/// Warnings (already worded) capped the same way: the first `MAX_SHOWN`, clipped, then
/// how many more there were.
pub fn warnings(mut warnings: Vec<String>) -> Vec<String> {
    let limit = MAX_FIELD_CHARS + MAX_MESSAGE_CHARS;
    if warnings.len() > MAX_SHOWN {
        let rest = warnings.split_off(MAX_SHOWN);
        warnings.push(more(rest.iter().map(String::as_str)));
    }
    for w in &mut warnings {
        if w.len() > limit {
            *w = clip(w, limit).into_owned();
        }
    }
    warnings
}

/// "and N more: A × rule; B × rule", the rules being the messages (which name the rule,
/// never a value), the most frequent first.
pub fn more<'a>(messages: impl Iterator<Item = &'a str>) -> String {
    let mut by_rule: HashMap<Cow<'a, str>, usize> = HashMap::new();
    let mut total = 0usize;
    for m in messages {
        total += 1;
        *by_rule.entry(clip(m, RULE_CHARS)).or_default() += 1;
    }
    let mut counted: Vec<(Cow<'a, str>, usize)> = by_rule.into_iter().collect();
    counted.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let others = counted.len().saturating_sub(MAX_RULES_COUNTED);
    let mut parts: Vec<String> = counted
        .iter()
        .take(MAX_RULES_COUNTED)
        .map(|(rule, n)| format!("{n} × {rule}"))
        .collect();
    if others > 0 {
        parts.push(format!("{others} other rules"));
    }
    format!("and {total} more: {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_cuts_on_a_character_boundary() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("exactly10!", 10), "exactly10!");
        assert_eq!(clip("0123456789abc", 10), "012345678…");
        assert_eq!(clip("ééééééééééé", 5), "éééé…");
        assert_eq!(clip("", 0), "");
    }

    #[test]
    fn many_findings_become_twenty_lines_and_a_count_by_rule() {
        let findings: Vec<Violation> = (0..100_000)
            .map(|i| {
                let message = if i % 10 == 0 {
                    "not valid base64"
                } else {
                    "is not a registry host"
                };
                Violation::deny(format!("auths[entry {i}]"), message)
            })
            .collect();
        let lines = lines(findings.iter());
        assert_eq!(lines.len(), MAX_SHOWN + 1);
        assert_eq!(lines[0], "auths[entry 0]: not valid base64");
        assert_eq!(
            lines[MAX_SHOWN],
            "and 99980 more: 89982 × is not a registry host; 9998 × not valid base64"
        );
    }

    #[test]
    fn long_fields_and_messages_are_clipped() {
        let v = Violation::deny("f".repeat(10_000), "m".repeat(10_000));
        let line = &lines(std::iter::once(&v))[0];
        assert_eq!(
            line.chars().count(),
            MAX_FIELD_CHARS + 2 + MAX_MESSAGE_CHARS
        );
        let clipped = clip_finding(v);
        assert_eq!(clipped.field.chars().count(), MAX_FIELD_CHARS);
        assert_eq!(clipped.message.chars().count(), MAX_MESSAGE_CHARS);
    }

    #[test]
    fn many_distinct_rules_are_summed_up() {
        let messages: Vec<String> = (0..50).map(|i| format!("rule {i}")).collect();
        let line = more(messages.iter().map(String::as_str));
        assert!(
            line.starts_with("and 50 more: 1 × rule 0; 1 × rule 1;"),
            "{line}"
        );
        assert!(line.ends_with("; 45 other rules"), "{line}");
        let w = warnings(messages.clone());
        assert_eq!(w.len(), MAX_SHOWN + 1);
        assert!(
            w[MAX_SHOWN].starts_with("and 30 more: "),
            "{}",
            w[MAX_SHOWN]
        );
    }
}
