//! `kubernetes.io/dockerconfigjson` and `kubernetes.io/dockercfg` content checks.
use super::{Input, Violation};
pub fn validate_config_json(_input: &Input<'_>, _out: &mut Vec<Violation>) {}
pub fn validate_legacy_cfg(_input: &Input<'_>, _out: &mut Vec<Violation>) {}
