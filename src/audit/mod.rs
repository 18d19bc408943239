//! `secretgate audit`: what in a cluster breaks its policies now. Builds the snapshot the
//! server would (the same `policy::cluster::Builder` the watchers feed), then reviews
//! every Secret as a CREATE (ratcheting does not apply) and every Pod as the mutating
//! webhook would now, through `admission::review`.
//!
//! Secrets are listed metadata-only; each one's values are read with a GET just before
//! its review and dropped right after. Nothing of them is printed or kept.

pub mod continuous;
mod report;

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod, Secret, ServiceAccount};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, ObjectList};
use serde::Deserialize as _;
use serde_json::Value;
use time::OffsetDateTime;

use crate::admission::{Context, Webhook};
use crate::check::evaluate;
use crate::policy::cluster::Builder;
use crate::policy::{Policy, ProjectPolicy, ProjectPolicySpec};
pub(crate) use report::pattern as report_pattern;
pub use report::{CopyFinding, InvalidPolicy, Report, Reviewed, write};

/// Objects per LIST page.
const PAGE: u32 = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot list {what}")]
    List {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read secret {namespace}/{name}")]
    Get {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Reads the cluster and reviews every Secret and Pod in it, and the instance-secret
/// copies the policies ask for (sources may come from `instance_sources`).
pub async fn run(
    client: Client,
    now: OffsetDateTime,
    instance_sources: &BTreeSet<String>,
) -> Result<Report> {
    let policy_resource = ApiResource::erase::<ProjectPolicy>(&());
    let policy_api: Api<DynamicObject> = Api::all_with(client.clone(), &policy_resource);
    let policies = pages("projectpolicies", async |p| policy_api.list(p).await).await?;
    let namespace_api: Api<Namespace> = Api::all(client.clone());
    let namespaces = pages("namespaces", async |p| namespace_api.list_metadata(p).await).await?;
    let secret_api: Api<Secret> = Api::all(client.clone());
    let secrets = pages("secrets", async |p| secret_api.list_metadata(p).await).await?;
    let account_api: Api<ServiceAccount> = Api::all(client.clone());
    let accounts = pages("serviceaccounts", async |p| account_api.list(p).await).await?;

    let mut report = Report::default();
    for policy in &policies {
        if let Some(problem) = invalid(policy) {
            report.invalid_policy(policy.metadata.name.clone().unwrap_or_default(), problem);
        }
    }
    let (policies, namespaces, secrets) = (arcs(policies), arcs(namespaces), arcs(secrets));
    let (snapshot, _statuses) =
        Builder::default().rebuild(&policies, &namespaces, &secrets, &arcs(accounts));
    let ctx = Context {
        policies: &snapshot,
        now,
    };
    let copies =
        crate::instance::plan_from_caches(&snapshot, &namespaces, &secrets, instance_sources);
    report.instance_secrets(&copies);

    for meta in &secrets {
        let (Some(namespace), Some(name)) = (&meta.metadata.namespace, &meta.metadata.name) else {
            continue;
        };
        let secret = match read_secret(&client, namespace, name).await {
            Ok(Some(secret)) => secret,
            // Deleted since the LIST: nothing left to audit.
            Ok(None) => continue,
            Err(source) => {
                return Err(Error::Get {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                });
            }
        };
        review(&mut report, "Secret", secret, namespace, &ctx);
    }

    let pod_api: Api<DynamicObject> = Api::all_with(client, &ApiResource::erase::<Pod>(&()));
    let pods = pages("pods", async |p| pod_api.list(p).await).await?;
    for pod in pods {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        review(&mut report, "Pod", pod, &namespace, &ctx);
    }
    Ok(report)
}

/// One Secret, values included (`None`: not found). Sent with `request_text` and decoded
/// here, not through `Api::get`: kube logs an answer it cannot decode whole, and an
/// answer about a Secret holds its values.
pub(crate) async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<DynamicObject>, kube::Error> {
    let request =
        kube::core::Request::new(<Secret as kube::Resource>::url_path(&(), Some(namespace)))
            .get(name, &kube::api::GetParams::default())
            .map_err(kube::Error::BuildRequest)?;
    match client.request_text(request).await {
        // The decode error names a line and column, never the text.
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(kube::Error::SerdeError),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

fn arcs<T>(items: Vec<T>) -> Vec<Arc<T>> {
    items.into_iter().map(Arc::new).collect()
}

/// Reviews one object as a CREATE and adds the outcome to the report.
fn review(
    report: &mut Report,
    kind: &'static str,
    object: DynamicObject,
    namespace: &str,
    ctx: &Context<'_>,
) {
    let uid = object.metadata.uid.clone();
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    // List items carry no apiVersion and kind; the review's object does.
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".to_owned(), Value::from("v1"));
        map.insert("kind".to_owned(), Value::from(kind));
    }
    let outcome = match evaluate::wrap(kind, value, namespace) {
        Ok((webhook, review)) => {
            let body = serde_json::to_vec(&review).unwrap_or_default();
            drop(review);
            let outcome = evaluate::review(webhook, &body, ctx);
            if webhook == Webhook::Mutate {
                // A running pod is also judged for the secrets it uses, as stored.
                let validation = evaluate::review(Webhook::ValidatePods, &body, ctx);
                evaluate::merge(outcome, validation)
            } else {
                outcome
            }
        }
        // Objects read from a cluster always have a name.
        Err(_) => return,
    };
    report.add(kind, uid, &outcome);
}

/// Why a ProjectPolicy is not in force, if it is not.
fn invalid(policy: &DynamicObject) -> Option<String> {
    let name = policy.metadata.name.as_deref().unwrap_or_default();
    let spec = match policy.data.get("spec") {
        None => ProjectPolicySpec::default(),
        Some(value) => match ProjectPolicySpec::deserialize(value) {
            Ok(spec) => spec,
            Err(e) => return Some(format!("spec does not parse: {e}")),
        },
    };
    Policy::new(name, spec).err().map(|e| e.problems.join("; "))
}

/// Every item of a LIST, page by page.
async fn pages<T>(
    what: &'static str,
    list: impl AsyncFn(&ListParams) -> kube::Result<ObjectList<T>>,
) -> Result<Vec<T>>
where
    T: Clone,
{
    let mut params = ListParams::default().limit(PAGE);
    let mut items = Vec::new();
    loop {
        let page = list(&params)
            .await
            .map_err(|source| Error::List { what, source })?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(items),
        }
    }
}
