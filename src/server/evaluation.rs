//! Where a review runs, and for how long its answer is wanted.
//!
//! Small bodies (nearly every review: a recorded one is 2–8 KiB) are reviewed inline on
//! the async worker: that takes microseconds, less than a hop to another thread. Larger
//! bodies, which a tenant can make as costly as the API server's limits allow, are
//! reviewed on the blocking pool, at most `parallel` at once and `queued` waiting, so the
//! worker that answers `/healthz`, `/readyz`, `/metrics` and the small reviews is never
//! held by one (the chart gives the pod one CPU, so the runtime has one worker thread),
//! and the memory in use for large reviews stays bounded.
//!
//! The API server gives up on a webhook after its `timeout` query parameter (at most
//! 30 s). A large review still waiting or running then is abandoned: its answer is dropped
//! and counted, and the permit it held is returned once its thread finishes (checks are
//! linear in the request, so that is soon).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size are reviewed inline.
pub const INLINE_MAX_BYTES: usize = 64 * 1024;

/// How long an answer is wanted when the request does not say (the API server's maximum
/// webhook timeout).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a large review got no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Abandoned {
    #[error("too many large reviews are in progress; try again")]
    Busy,
    #[error("the review did not finish before the API server's timeout")]
    TimedOut,
}

impl Abandoned {
    /// A bounded label for metrics.
    pub fn reason(self) -> &'static str {
        match self {
            Abandoned::Busy => "busy",
            Abandoned::TimedOut => "timeout",
        }
    }
}

/// The lane large reviews take.
#[derive(Debug)]
pub struct Lane {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

impl Lane {
    /// At most `parallel` large reviews run at once and `queued` more wait.
    pub fn new(parallel: usize, queued: usize) -> Self {
        let parallel = parallel.max(1);
        Self {
            running: Arc::new(Semaphore::new(parallel)),
            admitted: Arc::new(Semaphore::new(parallel + queued)),
        }
    }

    /// One large review per CPU this process may use (cgroup quotas included), and
    /// twice as many waiting.
    pub fn for_this_machine() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(cpus, 2 * cpus)
    }

    /// A place in the lane, or `Busy` when every place is taken. Taken before a large
    /// body is read, so what large bodies hold in memory is bounded by the lane.
    pub fn admit(&self) -> Result<Admitted, Abandoned> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Abandoned::Busy)?;
        Ok(Admitted {
            admitted,
            running: self.running.clone(),
        })
    }

    /// Takes a place and runs `review` (see [`Admitted::run`]).
    pub async fn run<T: Send + 'static>(
        &self,
        deadline: Instant,
        review: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Abandoned> {
        self.admit()?.run(deadline, review).await
    }
}

/// A place in the lane.
#[derive(Debug)]
pub struct Admitted {
    admitted: OwnedSemaphorePermit,
    running: Arc<Semaphore>,
}

impl Admitted {
    /// Runs `review` on the blocking pool once one of the running places is free, and
    /// waits for it until `deadline`.
    pub async fn run<T: Send + 'static>(
        self,
        deadline: Instant,
        review: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Abandoned> {
        let deadline = tokio::time::Instant::from_std(deadline);
        let running = tokio::time::timeout_at(deadline, self.running.clone().acquire_owned())
            .await
            .map_err(|_| Abandoned::TimedOut)?
            .map_err(|_| Abandoned::Busy)?;
        let admitted = self.admitted;
        let task = tokio::task::spawn_blocking(move || {
            // Both permits go with the thread: an abandoned review still holds its place
            // until it has stopped using CPU and memory.
            let _permits = (admitted, running);
            review()
        });
        match tokio::time::timeout_at(deadline, task).await {
            Ok(Ok(answer)) => Ok(answer),
            // A panic in a review: the caller answers as for a timeout (no answer).
            Ok(Err(_)) => Err(Abandoned::TimedOut),
            Err(_) => Err(Abandoned::TimedOut),
        }
    }
}

/// The `timeout` query parameter the API server adds to webhook calls
/// (`?timeout=10s`, a Go duration), if present and sensible.
pub fn requested_timeout(query: Option<&str>) -> Option<Duration> {
    let value = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("timeout="))?;
    // The API server waits at most 30 s; a larger value (or one that would overflow an
    // `Instant`) from another client is cut to that.
    parse_go_duration(value)
        .filter(|d| !d.is_zero())
        .map(|d| d.min(DEFAULT_TIMEOUT))
}

/// Parses the Go durations the API server writes (`10s`, `1m0s`, `500ms`, `1.5s`).
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() || rest.len() > 32 {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_servers_timeout_parameter() {
        let secs = |q: &str| requested_timeout(Some(q)).map(|d| d.as_secs_f64());
        assert_eq!(secs("timeout=10s"), Some(10.0));
        assert_eq!(secs("a=b&timeout=30s"), Some(30.0));
        assert_eq!(secs("timeout=1m0s"), Some(30.0));
        assert_eq!(secs("timeout=4000000000000000h"), Some(30.0));
        assert_eq!(secs("timeout=1.5s"), Some(1.5));
        assert_eq!(secs("timeout=500ms"), Some(0.5));
        assert_eq!(secs("timeout=0s"), None);
        assert_eq!(secs("timeout=10"), None);
        assert_eq!(secs("timeout=ten"), None);
        assert_eq!(secs("other=1s"), None);
        assert_eq!(requested_timeout(None), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_review_past_its_deadline_is_abandoned_and_frees_its_place() {
        let lane = Lane::new(1, 0);
        let soon = Instant::now() + Duration::from_millis(50);
        let slow = lane.run(soon, || std::thread::sleep(Duration::from_millis(300)));
        assert_eq!(slow.await, Err(Abandoned::TimedOut));
        // Its thread still runs: the one place is taken.
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(lane.run(later, || 1).await, Err(Abandoned::Busy));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(lane.run(later, || 2).await, Ok(2));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn the_worker_stays_free_while_large_reviews_run() {
        let lane = Arc::new(Lane::new(1, 1));
        let far = Instant::now() + Duration::from_secs(5);
        let busy = {
            let lane = lane.clone();
            tokio::spawn(async move {
                lane.run(far, || std::thread::sleep(Duration::from_millis(300)))
                    .await
            })
        };
        // The single worker answers at once while the review runs elsewhere.
        let started = Instant::now();
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(started.elapsed() < Duration::from_millis(200));
        assert_eq!(busy.await.expect("join"), Ok(()));
    }
}
