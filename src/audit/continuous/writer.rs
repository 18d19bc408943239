//! Writing report objects: which report API the cluster serves, server-side apply of one
//! report (updated in place, never recreated: its `results` list is atomic in both CRDs,
//! so an apply replaces it whole and stale results go), and deletion of reports that no
//! longer have results.

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;

use crate::cli::ReportsChoice as Choice;
use crate::reports::{Flavor, NAME, ReportObject};

/// Field manager of report writes.
pub const MANAGER: &str = "secretgate-audit";
/// Label every report secretgate writes carries.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by=secretgate";

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot apply {kind} {where_}: {source}")]
    Apply {
        kind: &'static str,
        where_: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} in namespace {namespace}: {source}")]
    Delete {
        kind: &'static str,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot list {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
}

/// The API resource of a flavor's namespaced report or cluster report.
pub fn resource(flavor: Flavor, cluster: bool) -> ApiResource {
    let (group, version) = flavor
        .api_version()
        .split_once('/')
        .unwrap_or(("", flavor.api_version()));
    let kind = flavor.kind(cluster);
    let plural = format!("{}s", kind.to_ascii_lowercase());
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), &plural)
}

/// Whether the API server serves both kinds of `flavor` (discovery: every authenticated
/// user may read it).
pub async fn serves(client: &Client, flavor: Flavor) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(flavor.api_version()).await {
        Ok(list) => {
            let names: Vec<&str> = list.resources.iter().map(|r| r.name.as_str()).collect();
            Ok([false, true]
                .iter()
                .all(|&c| names.contains(&resource(flavor, c).plural.as_str())))
        }
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// The flavor to write, or `None` when the cluster has no report CRD `choice` accepts.
pub async fn detect(client: &Client, choice: Choice) -> Result<Option<Flavor>, kube::Error> {
    let candidates: &[Flavor] = match choice {
        Choice::Auto => &[Flavor::OpenReports, Flavor::PolicyReport],
        Choice::Openreports => &[Flavor::OpenReports],
        Choice::Policyreport => &[Flavor::PolicyReport],
        Choice::Off => &[],
    };
    for &flavor in candidates {
        if serves(client, flavor).await? {
            return Ok(Some(flavor));
        }
    }
    Ok(None)
}

fn api(client: &Client, flavor: Flavor, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = resource(flavor, namespace.is_none());
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Applies `object` (created if absent, updated in place otherwise).
pub async fn apply(
    client: &Client,
    flavor: Flavor,
    object: &ReportObject,
) -> Result<(), WriteError> {
    let namespace = object.metadata.namespace.as_deref();
    let params = PatchParams::apply(MANAGER).force();
    api(client, flavor, namespace)
        .patch(NAME, &params, &Patch::Apply(object))
        .await
        .map(drop)
        .map_err(|source| WriteError::Apply {
            kind: flavor.kind(namespace.is_none()),
            where_: match namespace {
                Some(ns) => format!("in namespace {ns}"),
                None => "(cluster)".to_owned(),
            },
            source,
        })
}

/// Deletes a namespace's report (gone already is fine).
pub async fn delete(client: &Client, flavor: Flavor, namespace: &str) -> Result<(), WriteError> {
    match api(client, flavor, Some(namespace))
        .delete(NAME, &DeleteParams::default())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(()),
        Err(source) => Err(WriteError::Delete {
            kind: flavor.kind(false),
            namespace: namespace.to_owned(),
            source,
        }),
    }
}

/// Namespaces that hold a report secretgate wrote (a previous leader's, say), so reports
/// of namespaces without results any more are deleted.
pub async fn existing(client: &Client, flavor: Flavor) -> Result<Vec<String>, WriteError> {
    let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource(flavor, false));
    let params = ListParams::default().labels(SELECTOR);
    let list = all
        .list_metadata(&params)
        .await
        .map_err(|source| WriteError::List {
            kind: flavor.kind(false),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|o| o.metadata.name.as_deref() == Some(NAME))
        .filter_map(|o| o.metadata.namespace)
        .collect())
}
