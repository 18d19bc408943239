//! Reads of the files `serve` is pointed at (policy, certificate, key, client CA), off the
//! async runtime and bounded in time.
//!
//! A path whose read blocks (a FIFO, a hung network mount) would otherwise stall a
//! runtime worker, and with it reviews and probes on both ports. Here each read runs on
//! a thread of its own: after [`TIMEOUT`] it is a failure the caller logs and counts,
//! and the server keeps serving with what it had. A read still stuck is never joined by
//! another one of the same files, so a hung mount costs one thread, not one per poll.
//!
//! A plain thread rather than `spawn_blocking`: the runtime waits for its blocking pool
//! when it shuts down, so a read stuck for ever would hang SIGTERM.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long one read of a file (or a certificate and its key) may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is in the message and not a `#[source]`, so that logs (`%e`) and
    // `{:#}` chains both show it exactly once.
    #[error("cannot read {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    /// Refused before opening: a FIFO would block the open, a device could be endless.
    #[error(
        "{path} is not a regular file (a FIFO, device or directory?); the server re-reads \
         it, so give a file or a symlink to one"
    )]
    NotRegular { path: PathBuf },
    #[error("reading {path} did not finish within {timeout:?}")]
    Timeout { path: PathBuf, timeout: Duration },
    #[error("an earlier read of {path} has still not finished; not starting another")]
    Stuck { path: PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The `reason` label of `secretgate_file_read_failures_total`: `timeout` for a read
    /// that did not finish (or an earlier one that still has not), `error` otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Timeout { .. } | Error::Stuck { .. } => "timeout",
            Error::Io { .. } | Error::NotRegular { .. } => "error",
        }
    }
}

/// Files read together, again and again (a policy file; a certificate and its key), with
/// at most one read in flight.
#[derive(Debug)]
pub struct Reader {
    paths: Arc<[PathBuf]>,
    timeout: Duration,
    /// [`read_regular`]; tests put a read that blocks here.
    read_one: fn(&Path) -> Result<Vec<u8>>,
    /// The thread of the last read, kept to tell whether it is still stuck.
    in_flight: Mutex<Option<JoinHandle<()>>>,
}

/// The bytes of each file, in the order of the paths.
pub type Contents = Vec<Vec<u8>>;

impl Reader {
    pub fn new(paths: Vec<PathBuf>, timeout: Duration) -> Self {
        Self::with(paths, timeout, read_regular)
    }

    fn with(
        paths: Vec<PathBuf>,
        timeout: Duration,
        read_one: fn(&Path) -> Result<Vec<u8>>,
    ) -> Self {
        Self {
            paths: paths.into(),
            timeout,
            read_one,
            in_flight: Mutex::new(None),
        }
    }

    /// Reads every file, waiting at most the timeout (for start-up, outside the runtime
    /// or before serving).
    pub fn read_blocking(&self) -> Result<Contents> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let at = self.start(move |result| {
            let _ = tx.send(result);
        })?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => self.finished(result),
            Err(_) => Err(self.timed_out(&at)),
        }
    }

    /// Reads every file on a thread of its own, waiting at most the timeout.
    pub async fn read(&self) -> Result<Contents> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let at = self.start(move |result| {
            let _ = tx.send(result);
        })?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(result)) => self.finished(result),
            // The thread died without an answer (it cannot panic, but a timeout says
            // enough either way).
            Ok(Err(_)) | Err(_) => Err(self.timed_out(&at)),
        }
    }

    /// Starts the reading thread, unless the previous one is still running. Returns the
    /// index of the file being read, for the timeout message.
    fn start(
        &self,
        deliver: impl FnOnce(Result<Contents>) + Send + 'static,
    ) -> Result<Arc<AtomicUsize>> {
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if in_flight.as_ref().is_some_and(|h| !h.is_finished()) {
            return Err(Error::Stuck {
                path: joined(&self.paths),
            });
        }
        let at = Arc::new(AtomicUsize::new(0));
        let (paths, progress, read_one) = (self.paths.clone(), at.clone(), self.read_one);
        let handle = std::thread::Builder::new()
            .name("secretgate-read".to_owned())
            .spawn(move || deliver(read_all(&paths, &progress, read_one)))
            .map_err(|error| Error::Io {
                path: joined(&self.paths),
                error,
            })?;
        *in_flight = Some(handle);
        Ok(at)
    }

    /// The thread has answered and is about to end: the next read need not wait for it.
    fn finished(&self, result: Result<Contents>) -> Result<Contents> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        result
    }

    fn timed_out(&self, at: &AtomicUsize) -> Error {
        let index = at.load(Ordering::Acquire);
        Error::Timeout {
            path: self
                .paths
                .get(index)
                .cloned()
                .unwrap_or_else(|| joined(&self.paths)),
            timeout: self.timeout,
        }
    }
}

fn read_all(
    paths: &[PathBuf],
    at: &AtomicUsize,
    read_one: fn(&Path) -> Result<Vec<u8>>,
) -> Result<Contents> {
    let mut contents = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        at.store(i, Ordering::Release);
        contents.push(read_one(path)?);
    }
    Ok(contents)
}

/// Reads a regular file (symlinks followed: the kubelet mounts ConfigMaps and Secrets as
/// symlinks to regular files).
pub fn read_regular(path: &Path) -> Result<Vec<u8>> {
    let io = |error| Error::Io {
        path: path.to_owned(),
        error,
    };
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(Error::NotRegular {
            path: path.to_owned(),
        });
    }
    std::fs::read(path).map_err(io)
}

/// The paths of a reader as one, for messages about all of them.
fn joined(paths: &[PathBuf]) -> PathBuf {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    PathBuf::from(names.join(" and "))
}

#[cfg(test)]
mod tests;
