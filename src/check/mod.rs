//! `secretgate check`: Secret and Pod manifests (and the pod templates of Deployments,
//! StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and CronJobs), or
//! recorded AdmissionReviews, evaluated offline with the code the server runs, for CI
//! pipelines (like `kyverno apply`).
//!
//! - [`input`] reads files, directories and stdin into objects with their source.
//! - [`evaluate`] wraps a bare object into the review the API server would send and
//!   calls `admission::review`: verdicts, messages and patches are the server's.
//! - [`report`] prints the results as text, JSON or YAML.

pub mod evaluate;
pub mod input;
pub mod report;

use std::path::PathBuf;

use serde_json::Value;
use time::OffsetDateTime;

use crate::admission::{Context, Verdict, Webhook};
use crate::cli::{CheckArgs, OutputFormat};
use crate::policy::{self, SecretMeta, Snapshot};
pub use evaluate::Outcome;
pub use input::Source;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{file}:{line}:{column}: document {document}: {message}")]
    Syntax {
        file: String,
        document: usize,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: document {document}: {message}")]
    Document {
        file: String,
        document: usize,
        message: String,
    },
    #[error("{at}: {error}")]
    Wrap {
        at: Source,
        error: evaluate::WrapError,
    },
    #[error(
        "nothing to check: name files, directories or - (stdin), as arguments or with -f \
         (secretgate check deploy/)"
    )]
    NoInput,
    #[error(transparent)]
    Policy(#[from] policy::file::Error),
    #[error("cannot write the report: {0}")]
    Output(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The result for one object of the input.
pub struct Checked {
    pub source: Source,
    pub kind: String,
    /// The server's answer; `None` for a kind `check` does not evaluate.
    pub outcome: Option<Outcome>,
    /// The pod with the patch applied (only computed for YAML output).
    pub mutated: Option<Value>,
    /// Whether the review was built here from a bare object (not read from the input).
    pub wrapped: bool,
}

impl Checked {
    pub fn verdict(&self) -> Option<Verdict> {
        self.outcome.as_ref().map(|o| o.summary.verdict())
    }
}

/// The exit status of `check`: 0 when every object passes, 1 when any is denied, 2 when
/// an input could not be evaluated (including a review the server calls malformed).
pub fn exit_code(results: &[Checked]) -> u8 {
    let verdicts: Vec<Verdict> = results.iter().filter_map(Checked::verdict).collect();
    if verdicts.contains(&Verdict::Invalid) {
        2
    } else if verdicts.contains(&Verdict::Denied) {
        1
    } else {
        0
    }
}

/// Runs `check` and writes the report to `out`; returns the exit code.
pub fn run(args: &CheckArgs, out: &mut dyn std::io::Write) -> Result<u8> {
    let inputs = args.inputs();
    if inputs.is_empty() {
        return Err(Error::NoInput);
    }
    let mut snapshot = match &args.policy {
        Some(path) => policy::file::load(path)?,
        None => Snapshot::with_default(),
    };
    let input::Input { objects, notes } = input::read(&inputs)?;
    // Secrets in the input will exist when the pods beside them are created (kubectl
    // and Helm create Secrets first), so pods may be injected with them.
    // So are ServiceAccounts, whose pull secrets their pods inherit.
    for object in &objects {
        let meta = &object.value["metadata"];
        let Some(name) = meta["name"].as_str() else {
            continue;
        };
        let ns = meta["namespace"].as_str().unwrap_or(&args.namespace);
        if is_core_v1(&object.value, "Secret") {
            let map = |v: &Value| serde_json::from_value::<policy::Labels>(v.clone()).ok();
            let secret = SecretMeta::from_metadata(
                map(&meta["labels"]).as_ref(),
                map(&meta["annotations"]).as_ref(),
            );
            snapshot.secrets.insert_meta(ns, name, secret);
        } else if is_core_v1(&object.value, "ServiceAccount") {
            let pull: Vec<String> = object.value["imagePullSecrets"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["name"].as_str().map(str::to_owned))
                .collect();
            snapshot.service_accounts.insert(ns, name, pull);
        }
    }
    let ctx = Context {
        policies: &snapshot,
        now: OffsetDateTime::now_utc(),
    };
    let want_mutated = args.output == OutputFormat::Yaml;
    let mut results = Vec::with_capacity(objects.len());
    for object in objects {
        results.push(check_one(object, &args.namespace, &ctx, want_mutated)?);
    }
    report::write(&results, &notes, args.output, out).map_err(|e| Error::Output(e.to_string()))?;
    Ok(exit_code(&results))
}

/// Evaluates one object of the input.
pub fn check_one(
    object: input::Object,
    namespace: &str,
    ctx: &Context<'_>,
    want_mutated: bool,
) -> Result<Checked> {
    let input::Object { source, value } = object;
    let Some(kind) = value["kind"].as_str().map(str::to_owned) else {
        return Err(Error::Document {
            file: source.file,
            document: source.document,
            message: match source.item {
                Some(item) => format!("item {item} has no kind"),
                None => "the object has no kind".to_owned(),
            },
        });
    };
    let wrap = |kind, object| {
        evaluate::wrap(kind, object, namespace).map_err(|error| Error::Wrap {
            at: source.clone(),
            error,
        })
    };
    // A workload is checked through the Pod its controller would create from its
    // template; `workload` keeps it (with the template's path) for the patch and output.
    let mut workload = None;
    let review = if kind == "AdmissionReview" {
        Some((evaluate::route(&value), value))
    } else if is_core_v1(&value, "Secret") || is_core_v1(&value, "Pod") {
        let kind = if kind == "Pod" { "Pod" } else { "Secret" };
        Some(wrap(kind, value)?)
    } else if let Some(path) = evaluate::pod_template_path(&value)
        && let Some(pod) = evaluate::templated_pod(&value, path)
    {
        if pod["metadata"]["name"].is_null() && pod["metadata"]["generateName"].is_null() {
            return Err(Error::Document {
                file: source.file,
                document: source.document,
                message: format!("{kind} has neither metadata.name nor metadata.generateName"),
            });
        }
        workload = Some((path, value));
        Some(wrap("Pod", pod)?)
    } else {
        None
    };
    let wrapped = kind != "AdmissionReview";
    let Some((webhook, review)) = review else {
        return Ok(Checked {
            source,
            kind,
            outcome: None,
            mutated: None,
            wrapped: false,
        });
    };
    // Serialising a Value cannot fail.
    let body = serde_json::to_vec(&review).unwrap_or_default();
    let mut outcome = evaluate::review(webhook, &body, ctx);
    drop(body);
    // A workload's patch and mutated object are the workload's, not its template Pod's.
    let templated = workload.is_some();
    if let Some((path, _)) = &workload {
        outcome.patch = outcome
            .patch
            .and_then(|p| evaluate::patch_for_workload(&p, path));
    }
    // The object as the API server would store it: the patch applied.
    let patched = match (&outcome.patch, webhook) {
        (Some(patch), Webhook::Mutate) => {
            let mut target = match &workload {
                Some((_, workload)) => workload.clone(),
                None => review["request"]["object"].clone(),
            };
            json_patch::patch(&mut target, patch).ok().map(|()| target)
        }
        _ => None,
    };
    // Secret use is judged on that final object, as the API server's validating webhooks
    // see it: a workload as itself (field paths inside its template), a pod as a pod.
    if wrapped && webhook == Webhook::Mutate {
        let object = match (&patched, &workload) {
            (Some(object), _) => object.clone(),
            (None, Some((_, workload))) => workload.clone(),
            (None, None) => review["request"]["object"].clone(),
        };
        let use_review = match &workload {
            Some(_) => evaluate::wrap_workload(object, namespace),
            None => Some(evaluate::wrap("Pod", object, namespace).map(|(_, r)| r)),
        };
        if let Some(use_review) = use_review {
            let use_review = use_review.map_err(|error| Error::Wrap {
                at: source.clone(),
                error,
            })?;
            let body = serde_json::to_vec(&use_review).unwrap_or_default();
            let validation = evaluate::review(Webhook::ValidatePods, &body, ctx);
            outcome = evaluate::merge(outcome, validation);
        }
    }
    let mutated = if want_mutated { patched } else { None };
    let kind = match outcome.summary.kind.as_str() {
        _ if templated => kind,
        "" => kind,
        k => k.to_owned(),
    };
    Ok(Checked {
        source,
        kind,
        outcome: Some(outcome),
        mutated,
        wrapped,
    })
}

fn is_core_v1(value: &Value, kind: &str) -> bool {
    value["apiVersion"] == "v1" && value["kind"] == kind
}
