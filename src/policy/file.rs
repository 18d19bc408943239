//! Policy from a YAML file, for running without a cluster: the same `ProjectPolicy`
//! documents a cluster would hold, plus the cluster state they are applied to ([`state`]):
//! `v1 Namespace` documents (name and labels, so selectors work), `v1 Secret` documents
//! (metadata only: which secrets exist, their labels and the owner's
//! `secretgate.io/allowed-service-accounts` annotation; any data is skipped by the parser
//! and never kept) and `v1 ServiceAccount` documents (the pull secrets their pods inherit).
//!
//! Errors name the file, the line and column (relative to the whole file) and the
//! document's index, so a broken edit is found at once; they say what is wrong by
//! category and never quote a key or value (a Secret document may hold credentials).
//!
//! **An empty policy is never inferred.** A file must hold at least one `ProjectPolicy`
//! document or a `ProjectPolicyList` (which may be empty: `items: []` is how a file says
//! "no project policy, the embedded default everywhere"). A file with no such document
//! (empty, comments only, only cluster state) is refused, and so is one that looks cut
//! short: a `ProjectPolicy` without `spec` (the CRD requires it too; `spec: {}`
//! is the permissive default), or a last `---` with no document after it. At start-up a
//! refused file stops the server; on reload it is logged and counted, and the last good
//! policy stays in force.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{InvalidPolicy, Labels, Policy, ProjectPolicySpec, Snapshot};

mod state;
mod watch;
pub use watch::{PolicyFile, log_overlaps, record_reload};

const POLICY_API_VERSION: &str = "secretgate.io/v1alpha1";

/// How a file says "no project policy" (shown in the error for a file that does not).
pub const EXPLICITLY_EMPTY: &str =
    "apiVersion: secretgate.io/v1alpha1\nkind: ProjectPolicyList\nitems: []\n";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the policy file (--policy)")]
    Read(#[from] crate::file_read::Error),
    /// The YAML does not parse, or a document does not have the expected shape.
    #[error("{path}:{line}:{column}: document {document}: {message}")]
    Syntax {
        path: PathBuf,
        document: usize,
        line: usize,
        column: usize,
        message: String,
    },
    /// A document is well-formed YAML but not something the file may hold.
    #[error("{path}:{line}: document {document}: {message}")]
    Document {
        path: PathBuf,
        document: usize,
        line: usize,
        message: String,
    },
    /// No ProjectPolicy or ProjectPolicyList document: an empty policy is never inferred.
    #[error(
        "{path}: no ProjectPolicy document (the file is empty, holds only comments, or only \
         Namespaces, Secrets and ServiceAccounts). A policy file holds at least one \
         ProjectPolicy; to run with no project policy (the embedded default in every \
         namespace), write it explicitly:\n{EXPLICITLY_EMPTY}"
    )]
    NoPolicy { path: PathBuf },
    #[error("{path}:{line}: document {document}: {invalid}")]
    Invalid {
        path: PathBuf,
        document: usize,
        line: usize,
        invalid: InvalidPolicy,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads and parses `path` into a snapshot (`check`: a pipe is fine there, unlike in
/// `serve`, which re-reads the file).
pub fn load(path: &Path) -> Result<Snapshot> {
    let bytes = std::fs::read(path).map_err(|error| crate::file_read::Error::Io {
        path: path.to_owned(),
        error,
    })?;
    parse(path, &String::from_utf8_lossy(&bytes))
}

/// Parses the documents of a policy file (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<Snapshot> {
    let mut policies = Vec::new();
    let mut names = HashSet::new();
    let mut state = state::State::default();
    // ProjectPolicy and ProjectPolicyList documents: at least one, or the file is refused.
    let mut policy_documents = 0;
    let docs = documents(text);
    for doc in &docs {
        let at = |message: String| document_error(path, doc, message);
        let mut add = |item: &str, name: String, spec: Option<ProjectPolicySpec>| {
            let Some(spec) = spec else {
                return Err(at(format!(
                    "{item}ProjectPolicy {name:?} has no spec (is the file cut short?); \
                     write `spec: {{}}` for the permissive defaults"
                )));
            };
            if !names.insert(name.clone()) {
                return Err(at(format!("{item}ProjectPolicy {name:?} is defined twice")));
            }
            let policy = Policy::new(&name, spec).map_err(|invalid| Error::Invalid {
                path: path.to_owned(),
                document: doc.index,
                line: doc.first_line,
                invalid,
            })?;
            policies.push(policy);
            Ok(())
        };
        let header: Header = doc.parse(path)?;
        match (header.api_version.as_deref(), header.kind.as_deref()) {
            (Some(POLICY_API_VERSION), Some("ProjectPolicy")) => {
                policy_documents += 1;
                let parsed: PolicyDocument = doc.parse(path)?;
                add("", parsed.metadata.name, parsed.spec)?;
            }
            (Some(POLICY_API_VERSION), Some("ProjectPolicyList")) => {
                policy_documents += 1;
                let parsed: PolicyListDocument = doc.parse(path)?;
                for (i, item) in parsed.items.into_iter().enumerate() {
                    let item_at = format!("items[{i}]: ");
                    let api_version = item.api_version.as_deref().unwrap_or(POLICY_API_VERSION);
                    let kind = item.kind.as_deref().unwrap_or("ProjectPolicy");
                    if (api_version, kind) != (POLICY_API_VERSION, "ProjectPolicy") {
                        return Err(at(format!(
                            "{item_at}apiVersion {api_version:?}, kind {kind:?} is not \
                             {POLICY_API_VERSION} ProjectPolicy"
                        )));
                    }
                    add(&item_at, item.metadata.name, item.spec)?;
                }
            }
            (Some("v1"), Some("Namespace")) => state.namespace(doc, path)?,
            (Some("v1"), Some("Secret")) => state.secret(doc, path)?,
            (Some("v1"), Some("ServiceAccount")) => state.service_account(doc, path)?,
            (api_version, kind) => {
                return Err(at(format!(
                    "apiVersion {:?}, kind {:?} is not one of {POLICY_API_VERSION} ProjectPolicy \
                     or ProjectPolicyList, v1 Namespace, v1 Secret, v1 ServiceAccount",
                    api_version.unwrap_or(""),
                    kind.unwrap_or("")
                )));
            }
        }
    }
    if docs.is_empty() {
        return Err(Error::NoPolicy {
            path: path.to_owned(),
        });
    }
    if let Some(line) = trailing_separator(text) {
        return Err(Error::Document {
            path: path.to_owned(),
            document: docs.len() + 1,
            line,
            message: "the file ends with `---` and no document after it: it may have been \
                      cut short while being written (if not, remove the last `---`)"
                .to_owned(),
        });
    }
    if policy_documents == 0 {
        return Err(Error::NoPolicy {
            path: path.to_owned(),
        });
    }
    Ok(state.into_snapshot(policies))
}

/// The error for a document that is well-formed but not something the file may hold.
fn document_error(path: &Path, doc: &Document<'_>, message: String) -> Error {
    Error::Document {
        path: path.to_owned(),
        document: doc.index,
        line: doc.first_line,
        message,
    }
}

/// The line of the last `---` when only blank lines and comments follow it: a separator
/// promising a document the file does not hold. A leading `---` before the first document
/// is not one.
fn trailing_separator(text: &str) -> Option<usize> {
    let mut last = None;
    let mut content_after = false;
    for (i, line) in text.lines().enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") {
            // `--- value` starts a document on the separator line itself.
            let inline = bare.strip_prefix("--- ").map(str::trim_start);
            last = Some(i + 1);
            content_after = inline.is_some_and(|rest| !rest.is_empty() && !rest.starts_with('#'));
        } else if !bare.trim().is_empty() && !bare.trim_start().starts_with('#') {
            content_after = true;
        }
    }
    last.filter(|_| !content_after)
}

/// Just enough of a document to tell what it is; everything else is skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: Metadata,
    /// Required (as in the CRD): a document without one may be a file cut short.
    #[serde(default)]
    spec: Option<ProjectPolicySpec>,
    /// Accepted (and ignored) so that `kubectl get -o yaml` output loads as it is.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde::de::IgnoredAny>,
}

/// `kind: ProjectPolicyList`: policies as `kubectl get projectpolicies -o yaml` lists
/// them, and, with `items: []`, the explicit way to say "no project policy".
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyListDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<serde::de::IgnoredAny>,
    /// Required: a list without `items` says nothing explicitly.
    items: Vec<ListedPolicy>,
}

/// An item of a ProjectPolicyList (apiVersion and kind may be left out).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListedPolicy {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    metadata: Metadata,
    #[serde(default)]
    spec: Option<ProjectPolicySpec>,
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: Labels,
}

/// One YAML document of the file, with where it starts.
pub(crate) struct Document<'a> {
    /// 1-based position among the non-empty documents.
    pub index: usize,
    /// 1-based line of the document's first line in the file.
    pub first_line: usize,
    pub text: &'a str,
}

impl Document<'_> {
    fn parse<T: serde::de::DeserializeOwned>(&self, path: &Path) -> Result<T> {
        self.parse_located()
            .map_err(|(line, column, message)| Error::Syntax {
                path: path.to_owned(),
                document: self.index,
                line,
                column,
                message,
            })
    }

    /// Parses the document (also used by `secretgate check`). An error gives the line and
    /// column in the whole file and what is wrong by category ([`describe`]), never the
    /// parser's text: a Secret document may hold values, in its keys as well.
    pub(crate) fn parse_located<T: serde::de::DeserializeOwned>(
        &self,
    ) -> std::result::Result<T, (usize, usize, String)> {
        serde_saphyr::from_str(self.text).map_err(|e| {
            let (line, column) = e
                .location()
                .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
            (self.first_line + line - 1, column, describe(&e))
        })
    }
}

/// What is wrong with a YAML document, by category. serde's and the parser's own
/// messages quote the input (`duplicate mapping key: <key>`, `invalid type: string
/// "…"`, `unknown field `<key>``); what is kept here is the category and what the
/// schema expected (field and type names from the code, never from the input).
pub(crate) fn describe(e: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error as E;
    let expected_one_of = |what: &str, expected: &[&str]| match expected {
        [] => what.to_owned(),
        names => format!("{what}, expected one of {}", names.join(", ")),
    };
    match e {
        E::WithSnippet { error, .. } | E::AliasError { error, .. } => describe(error),
        E::DuplicateMappingKey { .. } => "duplicate mapping key".to_owned(),
        E::SerdeUnknownField { expected, .. } => expected_one_of("unknown field", expected),
        E::SerdeUnknownVariant { expected, .. } => expected_one_of("unknown value", expected),
        E::SerdeMissingField { field, .. } => format!("missing field `{field}`"),
        E::SerdeInvalidType { expected, .. } => format!("invalid type, expected {expected}"),
        E::SerdeInvalidValue { expected, .. } => format!("invalid value, expected {expected}"),
        E::SerdeInvalidLength { expected, .. } => {
            format!("invalid length, expected {expected}")
        }
        E::InvalidScalar { ty, .. } => format!("invalid value, expected {ty}"),
        E::NullIntoString { .. } => "invalid value, expected a string".to_owned(),
        E::InvalidBooleanStrict { .. } => "invalid value, expected a boolean".to_owned(),
        E::Unexpected { expected, .. } => format!("invalid type, expected {expected}"),
        // The one custom message of the policy types (`Pattern`) quotes the pattern.
        E::Message { msg, .. } if msg.starts_with("invalid pattern") => {
            "invalid regular expression".to_owned()
        }
        E::Message { .. } => "invalid value".to_owned(),
        E::Eof { .. } => "the document ends early".to_owned(),
        E::InvalidUtf8Input => "not UTF-8 text".to_owned(),
        E::UnknownAnchor { .. } => "alias of an unknown anchor".to_owned(),
        E::Budget { .. }
        | E::AliasReplayCounterOverflow { .. }
        | E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. } => {
            "the document exceeds the parser's limits (size, depth or aliases)".to_owned()
        }
        _ => "syntax error".to_owned(),
    }
}

/// Splits `text` at `---` lines; documents holding only comments or blank lines are left
/// out (and not counted).
pub(crate) fn documents(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end();
        if bare == "---" || bare.starts_with("--- ") || bare == "..." {
            push_document(&mut docs, &text[start..offset], start_line);
            start = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    push_document(&mut docs, &text[start..], start_line);
    docs
}

fn push_document<'a>(docs: &mut Vec<Document<'a>>, text: &'a str, first_line: usize) {
    let blank = text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
    if !blank {
        docs.push(Document {
            index: docs.len() + 1,
            first_line,
            text,
        });
    }
}

#[cfg(test)]
mod tests;
