//! `kubernetes.io/ssh-auth` and git-sync key content checks.
use super::{Input, Violation};
pub fn validate(_input: &Input<'_>, _out: &mut Vec<Violation>) {}
pub fn validate_git_sync_fields(_input: &Input<'_>, _out: &mut Vec<Violation>) {}
