//! `secretgate unregister` (the chart's pre-delete hook) against a tower-test mock API
//! server: one DELETE per configuration at its cluster-scoped path, a configuration
//! already gone counts as deleted, and a refusal is reported for that one while the
//! others are still deleted.

use std::sync::{Arc, Mutex};

use axum::http::{Request, Response};
use kube::client::Body;
use secretgate::unregister::{self, Kind, Outcome, Target};
use serde_json::json;

#[path = "common/mock_api.rs"]
mod mock_api;
use mock_api::reply;

type Calls = Arc<Mutex<Vec<(String, String)>>>;

/// Answers DELETEs: names starting with `gone` are 404, `locked` 403, others 200.
async fn mock(mut handle: tower_test::mock::Handle<Request<Body>, Response<Body>>, calls: Calls) {
    while let Some((request, send)) = handle.next_request().await {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        calls.lock().expect("lock").push((method, path.clone()));
        let name = path.rsplit('/').next().unwrap_or_default();
        let status = |code: u16, reason: &str| {
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                   "reason": reason, "message": format!("{reason}: {name}")})
        };
        let answer = if name.starts_with("gone") {
            reply(404, &status(404, "NotFound"))
        } else if name.starts_with("locked") {
            reply(403, &status(403, "Forbidden"))
        } else {
            reply(
                200,
                &json!({"kind": "Status", "apiVersion": "v1", "status": "Success",
                        "details": {"name": name}}),
            )
        };
        send.send_response(answer);
    }
}

fn client() -> (kube::Client, Calls) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let calls: Calls = Arc::default();
    tokio::spawn(mock(handle, calls.clone()));
    (kube::Client::new(service, "default"), calls)
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn deletes_each_configuration_at_its_path() {
    let (client, calls) = client();
    let targets = unregister::targets(
        &names(&["sg-secretgate", "sg-secretgate-policies"]),
        &names(&["sg-secretgate"]),
    );
    let results = unregister::run(&client, &targets).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Outcome::Deleted))),
        "{results:?}"
    );
    assert_eq!(
        *calls.lock().expect("lock"),
        vec![
            ("DELETE".to_owned(), "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/sg-secretgate".to_owned()),
            ("DELETE".to_owned(), "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/sg-secretgate-policies".to_owned()),
            ("DELETE".to_owned(), "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/sg-secretgate".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_configuration_already_gone_counts_as_deleted() {
    let (client, _) = client();
    let target = Target {
        kind: Kind::Validating,
        name: "gone-already".to_owned(),
    };
    assert_eq!(
        unregister::delete(&client, &target)
            .await
            .expect("not an error"),
        Outcome::AlreadyGone
    );
}

#[tokio::test]
async fn a_refusal_is_reported_and_the_rest_still_deleted() {
    let (client, calls) = client();
    let targets = unregister::targets(&names(&["locked-one"]), &names(&["sg-secretgate"]));
    let mut results = unregister::run(&client, &targets).await;
    let error = results.remove(0).expect_err("403");
    // As `secretgate unregister` prints it: one line, the cause after the target.
    let line = format!("{:#}", anyhow::Error::from(error));
    assert!(
        line.starts_with("cannot delete validatingwebhookconfiguration \"locked-one\": "),
        "{line}"
    );
    assert!(line.contains("Forbidden"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert!(matches!(results[0], Ok(Outcome::Deleted)));
    assert_eq!(calls.lock().expect("lock").len(), 2);
}

#[test]
fn the_cli_needs_at_least_one_configuration() {
    use clap::Parser as _;
    let parse = |args: &[&str]| {
        secretgate::cli::Cli::try_parse_from(
            std::iter::once("secretgate").chain(args.iter().copied()),
        )
    };
    assert!(parse(&["unregister"]).is_err());
    assert!(parse(&["unregister", "--validating", "a", "--validating", "b"]).is_ok());
    assert!(parse(&["unregister", "--mutating", "a", "--timeout-seconds", "60"]).is_ok());
}
