//! Exemptions over HTTPS: a requester a policy exempts (by service account, username or
//! group, as `request.userInfo` names them) gets warnings where anyone else is denied,
//! with a first warning saying who they were exempt as, a count in
//! `secretgate_exempted_reviews_total` and the review's log line. Recorded reviews.

mod common;

use common::{Proto, TestServer, fixture};
use secretgate::policy::{ProjectPolicySpec, Snapshot};
use serde_json::{Value, json};

/// The recorded `kubectl create secret generic` by service account `team-a/ci-bot` (an
/// Opaque secret), under a policy that allows TLS secrets only.
fn review(edit_user: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut review: Value =
        serde_json::from_slice(&fixture("secret-create-by-serviceaccount.json")).expect("fixture");
    edit_user(&mut review["request"]["userInfo"]);
    serde_json::to_vec(&review).expect("JSON")
}

fn policy(exemptions: Value) -> Snapshot {
    let spec: ProjectPolicySpec = serde_json::from_value(json!({
        "secrets": {"allowedTypes": ["kubernetes.io/tls"]},
        "exemptions": exemptions,
    }))
    .expect("spec");
    Snapshot::with_fallback("team-a", spec)
}

async fn post(server: &TestServer, body: Vec<u8>) -> Value {
    let mut client = server.client(Proto::Http1).await;
    let reply = client.post("/validate", body).await;
    assert_eq!(reply.status, 200, "{}", reply.json());
    reply.json()["response"].clone()
}

fn warnings(response: &Value) -> Vec<String> {
    response["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| w.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn exempt_requesters_are_warned_where_others_are_denied() {
    let cases = [
        (
            json!({"serviceAccounts": ["team-a/ci-bot"]}),
            "service account team-a/ci-bot",
        ),
        (
            json!({"usernames": ["system:serviceaccount:team-a:ci-bot"]}),
            "user \"system:serviceaccount:team-a:ci-bot\"",
        ),
        (
            json!({"groups": ["system:serviceaccounts:team-a"]}),
            "group \"system:serviceaccounts:team-a\"",
        ),
    ];
    for (exemptions, who) in cases {
        let server = TestServer::start_with(policy(exemptions.clone()), |_| {}).await;
        let response = post(&server, review(|_| {})).await;
        assert_eq!(response["allowed"], true, "{exemptions}: {response}");
        let said = warnings(&response);
        assert_eq!(
            said.first().map(String::as_str),
            Some(
                format!(
                    "secret would be denied by policy \"team-a\", which exempts {who}: its findings are warnings"
                )
                .as_str()
            ),
            "{said:?}"
        );
        assert!(
            said.iter()
                .any(|w| w.contains("type") && w.contains("Opaque")),
            "the finding itself is a warning: {said:?}"
        );
        server
            .wait_for_metric("secretgate_exempted_reviews_total{webhook=\"validate\"} 1")
            .await;
        server.stop().await;
    }
}

#[tokio::test]
async fn others_are_still_denied() {
    let server = TestServer::start_with(
        policy(
            json!({"serviceAccounts": ["team-a/ci-bot"], "usernames": ["admin"],
                      "groups": ["platform"]}),
        ),
        |_| {},
    )
    .await;
    let other_users = [
        // Another service account of the same namespace.
        json!({"username": "system:serviceaccount:team-a:builder",
               "groups": ["system:serviceaccounts", "system:serviceaccounts:team-a"]}),
        // The exempt account's name in another namespace.
        json!({"username": "system:serviceaccount:team-b:ci-bot"}),
        // Names are exact: no prefixes, no case folding.
        json!({"username": "Admin", "groups": ["platform-team"]}),
        json!({"username": "system:serviceaccount:team-a:ci-bot:x"}),
        json!({}),
    ];
    for user in other_users {
        let response = post(&server, review(|u| *u = user.clone())).await;
        assert_eq!(response["allowed"], false, "{user}: {response}");
        assert_eq!(response["status"]["code"], 403);
        assert!(
            warnings(&response).iter().all(|w| !w.contains("exempts")),
            "{response}"
        );
    }
    let metrics = server.metrics().await;
    assert!(
        !metrics.contains("secretgate_exempted_reviews_total{"),
        "nothing exempted: {metrics}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_review_with_nothing_to_deny_says_nothing_of_exemptions() {
    // An allowed type: no denial to turn into a warning, so no exemption line.
    let spec: ProjectPolicySpec = serde_json::from_value(json!({
        "exemptions": {"serviceAccounts": ["team-a/ci-bot"]},
    }))
    .expect("spec");
    let server = TestServer::start_with(Snapshot::with_fallback("team-a", spec), |_| {}).await;
    let response = post(&server, review(|_| {})).await;
    assert_eq!(response["allowed"], true);
    assert!(warnings(&response).is_empty(), "{response}");
    server.stop().await;
}
