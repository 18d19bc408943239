//! Helpers for tests that stand a tower-test mock in for the API server: list bodies,
//! request bodies, replies, and waiting for what the code under test does in the
//! background. Included with `#[path]` by those tests.
#![allow(dead_code)]

use std::time::Duration;

use axum::http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// How long a test waits for a background effect before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `done` until it holds or [`PATIENCE`] runs out; its last answer.
pub async fn eventually(done: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done()
}

/// A LIST response of `kind` holding `items`.
pub fn list(kind: &str, api_version: &str, items: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"resourceVersion": "1"}, "items": items})
}

/// The request's JSON body (`Null` when empty or not JSON).
pub async fn body_json(request: Request<Body>) -> Value {
    let bytes = http_body_util::BodyExt::collect(request.into_body())
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

/// A response with `status` and `body` as JSON.
pub fn reply(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(Body::from(body.to_string().into_bytes()))
        .expect("response")
}
