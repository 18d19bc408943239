//! How the command line's messages read: an error as one line saying what failed (and
//! what to do), then its causes once; counts with their noun in the right number.
//!
//! Causes come from `Error::source()` chains built by several crates, and many of them
//! repeat their cause in their own message (kube's `ServiceError: {0}`, our older
//! `cannot list {what}: {source}`), so printing every link (anyhow's `{:#}`) shows the
//! same text two or three times. [`segments`] keeps what each link adds, once.

use std::error::Error;

/// `error: <what failed>` and, when there are causes, `  cause: <a>: <b>` on a second
/// line, without a trailing newline.
pub fn render(error: &(dyn Error + 'static)) -> String {
    let segments = segments(error);
    let mut out = format!("error: {}", segments[0]);
    if segments.len() > 1 {
        out.push_str("\n  cause: ");
        out.push_str(&segments[1..].join(": "));
    }
    out
}

/// An error and its causes on one line, each said once: for log fields.
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&segments(self.0).join(": "))
    }
}

/// What each link of the chain adds, in order; never empty.
pub fn segments(error: &(dyn Error + 'static)) -> Vec<String> {
    // Each link as it prints itself (`raw`, what its parent may repeat) and as shown here.
    let links: Vec<(String, String)> = std::iter::successors(Some(error), |&e| e.source())
        .map(|e| (e.to_string(), text(e)))
        .collect();
    let mut out: Vec<String> = Vec::new();
    for (i, (raw, shown)) in links.iter().enumerate() {
        let mut own = shown.as_str();
        // A message ending with its cause's text: only the part before it is its own.
        if shown == raw
            && let Some((next_raw, next_shown)) = links.get(i + 1)
            && let Some(before) = [next_raw, next_shown]
                .into_iter()
                .filter(|next| !next.is_empty())
                .find_map(|next| own.strip_suffix(next.as_str()))
        {
            own = before.trim_end_matches([':', ' ']);
        }
        let own = own.trim();
        // `ServiceError` left of `ServiceError: {0}` is a Rust type's name, not a message.
        let type_name = !own.contains(char::is_whitespace) && own.ends_with("Error");
        if own.is_empty() || type_name || out.iter().any(|o| o.contains(own)) {
            continue;
        }
        out.push(own.to_owned());
    }
    if out.is_empty() {
        out.push(
            links
                .first()
                .map(|(_, shown)| shown.clone())
                .unwrap_or_default(),
        );
    }
    out
}

/// A link's text. kube's API errors print their whole `Status` twice (`ApiError: {0}
/// ({0:?})`); the server's message and reason say it all.
fn text(error: &(dyn Error + 'static)) -> String {
    // The `Status` is also the next link of the chain: shown alike, it is dropped there.
    let status = match error.downcast_ref::<kube::Error>() {
        Some(kube::Error::Api(status)) => Some(&**status),
        // thiserror hands out the `Box<Status>` itself as the source.
        _ => error
            .downcast_ref::<Box<kube::core::Status>>()
            .map(|status| &**status)
            .or_else(|| error.downcast_ref::<kube::core::Status>()),
    };
    if let Some(status) = status {
        return match (status.message.is_empty(), status.reason.is_empty()) {
            (false, false) => format!("{} ({}, {})", status.message, status.reason, status.code),
            (false, true) => format!("{} ({})", status.message, status.code),
            _ => format!("the API server answered {}", status.code),
        };
    }
    // kube quotes these paths with `'{:?}'`, which prints them in doubled quotes.
    use kube::config::{KubeconfigError, LoadDataError};
    if let Some(KubeconfigError::ReadConfig(_, path)) = error.downcast_ref() {
        return format!("cannot read kubeconfig {}", path.display());
    }
    if let Some(LoadDataError::ReadFile(_, path)) = error.downcast_ref() {
        return format!("cannot read {}", path.display());
    }
    error.to_string()
}

/// `1 object`, `2 objects`: `n` with `noun` in the right number (`plural` when it is
/// not just `noun` + `s`).
pub fn count(n: usize, noun: &str, plural: Option<&str>) -> String {
    match (n, plural) {
        (1, _) => format!("1 {noun}"),
        (n, Some(plural)) => format!("{n} {plural}"),
        (n, None) => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(String, Option<Box<E>>);

    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    fn chain(texts: &[&str]) -> E {
        texts
            .iter()
            .rev()
            .fold(None, |source, text| {
                Some(E(text.to_string(), source.map(Box::new)))
            })
            .expect("one link at least")
    }

    #[test]
    fn a_cause_repeated_by_its_parent_is_said_once() {
        // The shape of a refused connection under `audit` before this module.
        let e = chain(&[
            "cannot list projectpolicies: ServiceError: client error (Connect)",
            "ServiceError: client error (Connect)",
            "client error (Connect)",
            "tcp connect error",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            render(&e),
            "error: cannot list projectpolicies\n  cause: client error (Connect): tcp connect error: Connection refused (os error 111)"
        );
    }

    #[test]
    fn a_cause_quoted_inside_a_parent_is_dropped() {
        let e = chain(&[
            "failed to infer config: in-cluster: (no env), kubeconfig: (no file)",
            "no file",
        ]);
        assert_eq!(
            segments(&e),
            ["failed to infer config: in-cluster: (no env), kubeconfig: (no file)"]
        );
    }

    #[test]
    fn a_lone_error_is_one_line() {
        assert_eq!(render(&chain(&["bad flag"])), "error: bad flag");
        assert_eq!(Chain(&chain(&["a: b", "b", "c"])).to_string(), "a: b: c");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(0, "object", None), "0 objects");
        assert_eq!(count(1, "object", None), "1 object");
        assert_eq!(count(2, "policy", Some("policies")), "2 policies");
        assert_eq!(count(1, "policy", Some("policies")), "1 policy");
    }
}
