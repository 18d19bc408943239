//! secretgate: a Kubernetes admission webhook for Secrets and Pods.
#![forbid(unsafe_code)]

pub mod policy;
pub mod secrets;
