//! git-sync key injection: a secret volume (mode 0400) with the project's SSH key,
//! mounted read-only into the git-sync container(s).
//!
//! Never clobbers what the user wrote: a volume of the same name that is not this
//! secret, or a mount at the same path, leaves the pod as written and says why.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::json;

use super::patch::PatchBuilder;
use super::{Context, Injection};

pub const KIND: &str = "git_sync_key";

/// A pod annotation naming the containers that run git-sync, comma-separated.
pub const CONTAINERS_ANNOTATION: &str = "secretgate.io/git-sync-containers";

/// The most containers one pod may have the git-sync key mounted into.
pub const MAX_TARGETS: usize = 16;

/// Owner read-only: git-sync (ssh) refuses a private key others can read.
const KEY_FILE_MODE: i32 = 0o400;

pub fn inject(
    pod: &Pod,
    ctx: &Context<'_>,
    patch: &mut PatchBuilder,
    out: &mut Vec<Injection>,
    warnings: &mut Vec<String>,
) {
    let Some(rule) = &ctx.policy.spec.git_sync else {
        return;
    };
    let Some(spec) = &pod.spec else { return };
    let wanted = target_names(pod, &rule.containers);
    let containers = indexed(&["spec", "containers"], Some(&spec.containers));
    let init = indexed(&["spec", "initContainers"], spec.init_containers.as_ref());
    let targets: Vec<_> = containers
        .chain(init)
        .filter(|(_, _, c)| wanted.contains(c.name.as_str()))
        .collect();
    if targets.is_empty() {
        return;
    }
    if targets.len() > MAX_TARGETS {
        // A pod runs one git-sync, maybe one per repository; hundreds would make the
        // patch (and the response) as large as the pod. Nothing is half-injected.
        warnings.push(format!(
            "{} containers are named as git-sync containers; at most {MAX_TARGETS} get the \
             git-sync key, so it was not injected",
            targets.len()
        ));
        return;
    }
    let secret = rule.secret_name.as_str();
    let volume = rule.volume_name.as_str();
    if !is_dns1123_label(volume) {
        // The API server would refuse the pod with our volume in it; admit it untouched.
        warnings.push(format!(
            "git-sync volume name {volume:?} in policy {:?} is not a DNS-1123 label; git-sync key not injected",
            ctx.policy.name.as_ref()
        ));
        return;
    }
    if let Some(missing) = ctx.missing("git-sync key secret", secret) {
        warnings.push(missing);
        return;
    }
    if let Some(refused) = ctx.refused(pod, "git-sync key secret", secret) {
        warnings.push(refused);
        return;
    }
    let volumes = spec.volumes.as_ref();
    let same_name = volumes.and_then(|v| v.iter().find(|v| v.name == volume));
    let volume_present = match same_name {
        None => false,
        Some(v) if v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret) => true,
        Some(_) => {
            warnings.push(format!(
                "volume {volume:?} already exists and does not hold secret {secret:?}; git-sync key not injected"
            ));
            return;
        }
    };

    let mut mounted_any = false;
    for (path, index, container) in targets {
        let mounts = container.volume_mounts.as_ref();
        if mounts.is_some_and(|m| m.iter().any(|m| m.name == volume)) {
            mounted_any = true;
            continue;
        }
        // The runtime cleans mount paths (runc: filepath.Clean) and the API server compares
        // them as written: `/etc/git-secret/` is the same place as `/etc/git-secret`.
        let wanted_path = clean_path(&rule.mount_path);
        if mounts.is_some_and(|m| m.iter().any(|m| clean_path(&m.mount_path) == wanted_path)) {
            warnings.push(format!(
                "container {:?} already mounts something at {:?}; git-sync key not mounted there",
                container.name, rule.mount_path
            ));
            continue;
        }
        let index = index.to_string();
        let tokens = [path[0], path[1], index.as_str(), "volumeMounts"];
        let mount = json!({ "name": volume, "mountPath": rule.mount_path, "readOnly": true });
        patch.extend_array(&tokens, mounts.is_some(), vec![mount]);
        mounted_any = true;
        out.push(Injection {
            kind: KIND,
            secret: secret.to_owned(),
        });
    }
    if mounted_any && !volume_present {
        let item = json!({
            "name": volume,
            "secret": { "secretName": secret, "defaultMode": KEY_FILE_MODE },
        });
        patch.extend_array(&["spec", "volumes"], volumes.is_some(), vec![item]);
    }
}

/// A path as Go's `path.Clean` (and so the container runtime) reads it: repeated
/// slashes collapsed, `.` dropped, `..` resolved lexically, no trailing slash.
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Lowercase letters, digits and '-', at most 63, starting and ending alphanumeric.
fn is_dns1123_label(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| alnum(b) || b == b'-')
        && name.bytes().next().is_some_and(alnum)
        && name.bytes().last().is_some_and(alnum)
}

/// The container names the pod's annotation gives, or else the policy's. A set: the
/// annotation is the pod author's, as long as the API server allows, and every container
/// is looked up in it.
fn target_names<'a>(pod: &'a Pod, policy: &'a [String]) -> HashSet<&'a str> {
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CONTAINERS_ANNOTATION));
    match annotated {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect(),
        None => policy.iter().map(String::as_str).collect(),
    }
}

fn indexed<'a>(
    path: &'static [&'static str; 2],
    list: Option<&'a Vec<Container>>,
) -> impl Iterator<Item = (&'static [&'static str; 2], usize, &'a Container)> {
    list.into_iter()
        .flatten()
        .enumerate()
        .map(move |(i, c)| (path, i, c))
}

#[cfg(test)]
mod tests {
    use super::{clean_path, is_dns1123_label};

    #[test]
    fn mount_paths_are_compared_as_the_runtime_cleans_them() {
        for (path, clean) in [
            ("/etc/git-secret", "/etc/git-secret"),
            ("/etc/git-secret/", "/etc/git-secret"),
            ("//etc//git-secret", "/etc/git-secret"),
            ("/etc/./git-secret/.", "/etc/git-secret"),
            ("/etc/x/../git-secret", "/etc/git-secret"),
            ("/../etc/git-secret", "/etc/git-secret"),
            ("/", "/"),
            ("", "."),
            ("a/../../b", "../b"),
        ] {
            assert_eq!(clean_path(path), clean, "{path}");
        }
    }

    #[test]
    fn volume_names_must_be_dns1123_labels() {
        for (name, ok) in [
            ("git-secret", true),
            ("a", true),
            ("Git", false),
            ("-a", false),
            ("a-", false),
            ("a.b", false),
            ("", false),
        ] {
            assert_eq!(is_dns1123_label(name), ok, "{name}");
        }
        assert!(!is_dns1123_label(&"a".repeat(64)));
    }
}
