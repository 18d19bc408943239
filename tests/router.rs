//! The webhook router without a socket (`oneshot`): the verdict plumbing for each policy
//! mode, and routing by kind and operation.

mod common;

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt as _;
use secretgate::policy::{Mode, ProjectPolicySpec, Snapshot};
use tower::ServiceExt as _;

use common::fixture;

async fn post(snapshot: Snapshot, path: &str, body: Vec<u8>) -> (u16, serde_json::Value) {
    let app = secretgate::server::app(common::state(snapshot, 1 << 20));
    let req = Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .expect("request");
    let res = app.oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).expect("JSON answer"))
}

/// A policy whose only rule is a name prefix, in `mode`.
fn prefix_policy(mode: Mode) -> Snapshot {
    let mut spec = ProjectPolicySpec {
        mode,
        ..ProjectPolicySpec::default()
    };
    spec.secrets.name.prefix = Some("team-a-".to_owned());
    Snapshot::with_fallback("team-a", spec)
}

const APP_CONFIG: &str = "secret-create-generic-from-literal.json";
const EXPECTED: &str = r#"metadata.name: "app-config" must start with "team-a-""#;

#[tokio::test]
async fn enforce_denies_with_403_forbidden_and_every_violation() {
    let (status, review) = post(
        prefix_policy(Mode::Enforce),
        "/validate",
        fixture(APP_CONFIG),
    )
    .await;
    assert_eq!(status, 200);
    let response = &review["response"];
    assert_eq!(response["uid"], "07edbf5c-83c5-4e99-9f21-8c1ac580b48f");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    assert_eq!(response["status"]["reason"], "Forbidden");
    assert_eq!(
        response["status"]["message"],
        format!(r#"secret violates policy "team-a": {EXPECTED}"#)
    );
}

#[tokio::test]
async fn warn_allows_with_one_warning_per_violation() {
    let (_, review) = post(prefix_policy(Mode::Warn), "/validate", fixture(APP_CONFIG)).await;
    let response = &review["response"];
    assert_eq!(response["allowed"], true);
    assert_eq!(response["warnings"], serde_json::json!([EXPECTED]));
    assert!(response.get("status").is_none());
}

#[tokio::test]
async fn audit_allows_silently() {
    let (_, review) = post(prefix_policy(Mode::Audit), "/validate", fixture(APP_CONFIG)).await;
    let response = &review["response"];
    assert_eq!(response["allowed"], true);
    assert!(response.get("warnings").is_none());
}

#[tokio::test]
async fn delete_is_always_allowed() {
    for name in [
        "secret-delete.json",
        "secret-delete-via-deletecollection.json",
        "secret-delete-by-namespace-controller.json",
    ] {
        let (_, review) = post(prefix_policy(Mode::Enforce), "/validate", fixture(name)).await;
        assert_eq!(review["response"]["allowed"], true, "{name}");
    }
}

#[tokio::test]
async fn dry_run_is_evaluated_like_a_real_request() {
    let (_, review) = post(
        prefix_policy(Mode::Enforce),
        "/validate",
        fixture("secret-create-dry-run-server.json"),
    )
    .await;
    assert_eq!(review["response"]["allowed"], false);
}

#[tokio::test]
async fn kinds_a_route_does_not_handle_are_allowed_unchanged() {
    // A pod sent to the secret webhook and a secret sent to the pod webhook.
    let (_, review) = post(
        prefix_policy(Mode::Enforce),
        "/validate",
        fixture("pod-create-kubectl-run-nginx.json"),
    )
    .await;
    assert_eq!(review["response"]["allowed"], true);
    let (_, review) = post(prefix_policy(Mode::Enforce), "/mutate", fixture(APP_CONFIG)).await;
    assert_eq!(review["response"]["allowed"], true);
    assert!(review["response"].get("patch").is_none());
}

#[tokio::test]
async fn an_update_that_keeps_an_old_violation_is_allowed_with_a_warning() {
    // app-config existed before the prefix rule; relabelling it must stay possible.
    let (_, review) = post(
        prefix_policy(Mode::Enforce),
        "/validate",
        fixture("secret-update-label-only.json"),
    )
    .await;
    let response = &review["response"];
    assert_eq!(response["allowed"], true, "{review}");
    assert_eq!(
        response["warnings"],
        serde_json::json!([format!("{EXPECTED} (already present before this update)")])
    );
}

#[tokio::test]
async fn a_malformed_review_gets_400_with_the_reason() {
    let (status, review) = post(Snapshot::with_default(), "/validate", b"[]".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["status"]["code"], 400);
    assert_eq!(review["response"]["status"]["reason"], "BadRequest");
}
