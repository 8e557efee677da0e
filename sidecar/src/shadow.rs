//! Shadow copies: sent in parallel with the primary, bounded, dropped when saturated, compared.
//!
//! At most `concurrency` copies are in flight and `queue` more wait; a copy that finds both full
//! is dropped at once (`try_acquire`, never waiting). A copy gets the primary's (status, body)
//! through a oneshot channel when it is ready; `None` (the primary failed or streamed too much)
//! means the copy is not counted.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::{BodyExt, Limited};
use tokio::sync::{oneshot, Semaphore};

use crate::compare::{compare_responses, Verdict};
use crate::metrics::Metrics;
use crate::router::Target;
use crate::routing::Comparison;
use crate::upstream::{build_request, Upstreams};

pub type PrimaryResult = Option<(u16, Bytes)>;

pub struct ShadowCopy {
    pub target: Target,
    pub method: Method,
    pub path_qs: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub comparison: Comparison,
    pub primary: oneshot::Receiver<PrimaryResult>,
}

pub struct ShadowMirror {
    upstreams: Arc<Upstreams>,
    metrics: Arc<Metrics>,
    admission: Arc<Semaphore>,
    slots: Arc<Semaphore>,
    capacity: usize,
    timeout: Duration,
    primary_wait: Duration,
    compare_max_bytes: usize,
}

impl ShadowMirror {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        upstreams: Arc<Upstreams>,
        metrics: Arc<Metrics>,
        concurrency: usize,
        queue: usize,
        timeout: Duration,
        primary_wait: Duration,
        compare_max_bytes: usize,
    ) -> Self {
        ShadowMirror {
            upstreams,
            metrics,
            admission: Arc::new(Semaphore::new(concurrency + queue)),
            slots: Arc::new(Semaphore::new(concurrency)),
            capacity: concurrency + queue,
            timeout,
            primary_wait,
            compare_max_bytes,
        }
    }

    /// Copies in flight or waiting.
    pub fn pending(&self) -> usize {
        self.capacity - self.admission.available_permits()
    }

    /// Start a copy if there is room, else count it dropped. Never waits.
    pub fn submit(self: &Arc<Self>, copy: ShadowCopy) -> bool {
        let Ok(admitted) = self.admission.clone().try_acquire_owned() else {
            self.metrics
                .observe_shadow(&copy.target.revision, Verdict::Dropped);
            return false;
        };
        let mirror = self.clone();
        tokio::spawn(async move {
            let _admitted = admitted;
            mirror.run(copy).await;
        });
        true
    }

    async fn run(&self, copy: ShadowCopy) {
        let shadow = {
            let Ok(_slot) = self.slots.acquire().await else {
                return;
            };
            self.send(&copy).await
        };
        let Some((status, body)) = shadow else {
            self.metrics
                .observe_shadow(&copy.target.revision, Verdict::Error);
            return;
        };
        let primary = match tokio::time::timeout(self.primary_wait, copy.primary).await {
            Ok(Ok(Some(p))) => p,
            _ => {
                crate::debug!(
                    "modeldeploy.sidecar.shadow",
                    "shadow copy of {} not compared: no comparable primary response",
                    copy.path_qs
                );
                return;
            }
        };
        let verdict = compare_responses(
            (primary.0, &primary.1),
            (status, &body),
            copy.comparison.mode,
            copy.comparison.tolerance,
        );
        self.metrics.observe_shadow(&copy.target.revision, verdict);
    }

    async fn send(&self, copy: &ShadowCopy) -> Option<(u16, Bytes)> {
        let url = format!("{}{}", copy.target.url, copy.path_qs);
        let request =
            build_request(&copy.method, &url, copy.headers.clone(), copy.body.clone()).ok()?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let response = match self.upstreams.open(true, true, request, deadline).await {
            Ok(r) => r,
            Err(e) => {
                crate::debug!(
                    "modeldeploy.sidecar.shadow",
                    "shadow {} failed: {}",
                    copy.target.revision,
                    e.message
                );
                return None;
            }
        };
        let status = response.status().as_u16();
        if status >= 500 {
            return None;
        }
        let limited = Limited::new(response.into_body(), self.compare_max_bytes);
        match tokio::time::timeout_at(deadline, limited.collect()).await {
            Ok(Ok(collected)) => Some((status, collected.to_bytes())),
            _ => None,
        }
    }

    /// Let running copies finish for up to `grace`.
    pub async fn close(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
