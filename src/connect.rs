//! How `serve`, `audit` and `unregister` reach a cluster, as kubectl does: `--kubeconfig`,
//! else the files `KUBECONFIG` lists (merged, missing ones skipped), else
//! `~/.kube/config`, else the in-cluster configuration of the pod; `--context` picks a
//! context, else the kubeconfig's current one.
//!
//! Errors say what failed and what to do in their own message and leave the cause to
//! `#[source]`, for [`crate::messages::render`]. [`Cluster::explain`] turns an API call's
//! failure into such an error where the cause has a remedy (unreachable server, refused
//! credentials, missing RBAC).

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};

use crate::cli::ConnectionArgs;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no Kubernetes configuration: no kubeconfig at {default} and not in a pod; pass \
         --kubeconfig, set KUBECONFIG, or run inside the cluster"
    )]
    NoConfig { default: String },
    #[error(
        "none of the files KUBECONFIG lists exists ({listed}); fix KUBECONFIG or pass \
         --kubeconfig"
    )]
    NoListedFile { listed: String },
    #[error("cannot read kubeconfig {path} ({from}); check the path")]
    Read {
        path: String,
        from: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("kubeconfig {path}:{line}:{column} ({from}) is not valid: {what}")]
    Syntax {
        path: String,
        from: &'static str,
        line: usize,
        column: usize,
        what: String,
    },
    #[error("kubeconfig {path} ({from}) is not a valid kubeconfig")]
    Invalid {
        path: String,
        from: &'static str,
        #[source]
        source: KubeconfigError,
    },
    #[error("context {name:?} does not exist in {origin}; pass one of [{available}] to --context")]
    NoContext {
        name: String,
        origin: String,
        available: String,
    },
    #[error("{origin} sets no current-context; pass one of [{available}] to --context")]
    NoCurrentContext { origin: String, available: String },
    #[error("cannot use {origin}")]
    Kubeconfig {
        origin: String,
        #[source]
        source: KubeconfigError,
    },
    #[error("--context needs a kubeconfig; in a pod without one, drop --context")]
    ContextInCluster,
    #[error("cannot load the in-cluster configuration (the pod's service account)")]
    InCluster(#[source] kube::config::InClusterError),
    #[error("cannot build a client for the API server at {url}")]
    Client {
        url: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot reach the API server at {0} ({1}); check that it is up and that \
         --kubeconfig and --context name the cluster you mean"
    )]
    Unreachable(
        String,
        String,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
    #[error(
        "the API server at {0} refused the credentials of {1} (401 Unauthorized); \
         renew them (log in again) or pick another --context"
    )]
    Unauthorized(
        String,
        String,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
    #[error(
        "the API server at {0} forbids this to the user of {1}; grant it the RBAC \
         the README lists for this command, or pick another --context"
    )]
    Forbidden(
        String,
        String,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client and where its configuration came from, for messages.
#[derive(Clone)]
pub struct Cluster {
    pub client: Client,
    /// The API server's URL.
    pub url: String,
    /// `kubeconfig PATH, context NAME` or `in-cluster service account`.
    pub origin: String,
}

impl Cluster {
    /// `error` with the remedy its cause calls for: the API server unreachable, the
    /// credentials refused, or the request forbidden. Other errors pass unchanged.
    pub fn explain(&self, error: impl Into<anyhow::Error>) -> anyhow::Error {
        let error = error.into();
        let (url, origin) = (self.url.clone(), self.origin.clone());
        let status = error
            .chain()
            .find_map(|e| match e.downcast_ref::<kube::Error>() {
                Some(kube::Error::Api(status)) => Some(status.code),
                _ => None,
            });
        let unreachable = error.chain().any(is_unreachable);
        let explained = match (unreachable, status) {
            (true, _) => Error::Unreachable,
            (false, Some(401)) => Error::Unauthorized,
            (false, Some(403)) => Error::Forbidden,
            _ => return error,
        };
        anyhow::Error::new(explained(url, origin, error.into()))
    }
}

/// Whether a link of an error chain is a failure to connect (refused, timed out, no
/// route, TLS handshake): no request reached the API server.
pub fn is_unreachable(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind::*;
    if let Some(e) = error.downcast_ref::<hyper_util::client::legacy::Error>() {
        return e.is_connect();
    }
    error.downcast_ref::<std::io::Error>().is_some_and(|e| {
        matches!(
            e.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | TimedOut
                | HostUnreachable
                | NetworkUnreachable
                | NotConnected
        )
    })
}

/// Whether any link of `error`'s chain is a failure to connect ([`is_unreachable`]).
pub fn is_unreachable_error(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |&e| e.source()).any(is_unreachable)
}

/// The client `args` name (see the module docs). Reads files, connects to nothing.
pub async fn connect(args: &ConnectionArgs) -> Result<Cluster> {
    let (config, origin) = load(args).await?;
    let url = config.cluster_url.to_string();
    let url = url.strip_suffix('/').unwrap_or(&url).to_owned();
    let client = Client::try_from(config).map_err(|source| Error::Client {
        url: url.clone(),
        source,
    })?;
    Ok(Cluster {
        client,
        url,
        origin,
    })
}

async fn load(args: &ConnectionArgs) -> Result<(Config, String)> {
    let found = match &args.kubeconfig {
        Some(path) => Some((read(path, "--kubeconfig")?, path.display().to_string())),
        None => find()?,
    };
    let Some((kubeconfig, files)) = found else {
        if args.context.is_some() {
            return Err(Error::ContextInCluster);
        }
        let config = Config::incluster().map_err(Error::InCluster)?;
        return Ok((config, "in-cluster service account".to_owned()));
    };
    let available = kubeconfig
        .contexts
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let context = args
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone());
    let origin = match &context {
        Some(name) => format!("kubeconfig {files}, context {name}"),
        None => format!("kubeconfig {files}"),
    };
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| match source {
            KubeconfigError::LoadContext(name) => Error::NoContext {
                name,
                origin: format!("kubeconfig {files}"),
                available,
            },
            KubeconfigError::CurrentContextNotSet => Error::NoCurrentContext {
                origin: format!("kubeconfig {files}"),
                available,
            },
            source => Error::Kubeconfig {
                origin: origin.clone(),
                source,
            },
        })?;
    Ok((config, origin))
}

/// KUBECONFIG's files (those that exist, merged; the first to set a value wins, as in
/// kubectl), else `~/.kube/config`, each with the files' names; else `None` (in-cluster)
/// when in a pod.
fn find() -> Result<Option<(Kubeconfig, String)>> {
    if let Some(value) = std::env::var_os("KUBECONFIG") {
        let listed: Vec<PathBuf> = std::env::split_paths(&value)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !listed.is_empty() {
            let existing: Vec<&PathBuf> = listed.iter().filter(|p| p.exists()).collect();
            if existing.is_empty() {
                return Err(Error::NoListedFile {
                    listed: value.to_string_lossy().into_owned(),
                });
            }
            let mut merged = Kubeconfig::default();
            for path in &existing {
                merged =
                    merged
                        .merge(read(path, "KUBECONFIG")?)
                        .map_err(|source| Error::Invalid {
                            path: path.display().to_string(),
                            from: "KUBECONFIG",
                            source,
                        })?;
            }
            let files = existing
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(":");
            return Ok(Some((merged, files)));
        }
    }
    let default = std::env::home_dir().map(|home| home.join(".kube").join("config"));
    if let Some(path) = default.as_deref().filter(|p| p.exists()) {
        return Ok(Some((
            read(path, "the default")?,
            path.display().to_string(),
        )));
    }
    if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return Ok(None);
    }
    Err(Error::NoConfig {
        default: default.map_or_else(
            || "~/.kube/config (no home directory)".to_owned(),
            |p| p.display().to_string(),
        ),
    })
}

fn read(path: &Path, from: &'static str) -> Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|source| {
        let path = path.display().to_string();
        match source {
            KubeconfigError::ReadConfig(source, _) => Error::Read { path, from, source },
            // The parser's own text quotes the file, which may hold tokens and keys: the
            // position and the category only.
            KubeconfigError::Parse(e) => {
                let (line, column) = e
                    .location()
                    .map_or((1, 1), |l| (l.line() as usize, l.column() as usize));
                let what = crate::policy::file::describe(&e);
                Error::Syntax {
                    path,
                    from,
                    line,
                    column,
                    what,
                }
            }
            source => Error::Invalid { path, from, source },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_unreachable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unreachable(&refused));
        let other = std::io::Error::from(std::io::ErrorKind::InvalidData);
        assert!(!is_unreachable(&other));
        // Found deep in a chain, as `explain` looks for it.
        let wrapped = anyhow::Error::new(refused).context("cannot list projectpolicies");
        assert!(wrapped.chain().any(is_unreachable));
    }
}
