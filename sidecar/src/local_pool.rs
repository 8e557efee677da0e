//! Connections to the local model server: a small pool of HTTP/1 connections the sidecar owns.
//!
//! hyper-util's pooled client costs, per request, a pool key built from the URL, a checkout raced
//! against a lazily built connect future, and a spawned task that puts the connection back once
//! its response body has been read. The local model server is one fixed address, so a stack of
//! idle connections under a mutex does: a request takes the most recently used ready one (or
//! connects), and gives it back when its response body has been read.
//!
//! The rules are those of the pooled client it replaces for this address (docs/serving.md,
//! *Settings*): a connection idle for `MODELDEPLOY_POOL_IDLE_TIMEOUT` is never used again and is
//! closed within another such period; at most `MODELDEPLOY_POOL_SIZE` idle connections are kept;
//! a request that a reused connection refused before sending it (the server closed it meanwhile)
//! is sent again on a new connection; a connection that could not be made is a `Connect` error
//! (the request never left). Errors read as hyper-util's do ("client error (Connect)", ...).
//!
//! With several traffic worker threads (server.rs), each keeps its own stack of idle connections:
//! a connection's task runs on the runtime of the thread that opened it, so a request served by
//! one thread over another thread's connection would wake that thread twice per request. The
//! pool size bounds the idle connections of all stacks together.

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;
use tower_service::Service;

type Sender = SendRequest<Full<Bytes>>;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// Mark the calling thread as traffic worker `index` (0, the default, is the main thread): its
/// requests take and return connections on the idle stack of that index.
pub fn set_worker(index: usize) {
    WORKER.with(|w| w.set(index));
}

fn worker() -> usize {
    WORKER.with(Cell::get)
}
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What went wrong, named as hyper-util's client names it (its `Display` is the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// No connection could be made: the request was never sent.
    Connect,
    /// A new connection refused the request before sending it.
    Canceled,
    /// The request failed on the connection.
    SendRequest,
}

#[derive(Debug)]
pub struct PoolError {
    kind: Kind,
    source: BoxError,
}

impl PoolError {
    fn new(kind: Kind, source: impl Into<BoxError>) -> Self {
        PoolError {
            kind,
            source: source.into(),
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }
}

impl fmt::Display for PoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client error ({:?})", self.kind)
    }
}

impl std::error::Error for PoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

struct Inner {
    connector: HttpConnector,
    /// `http://authority/`: where the connector connects.
    address: Uri,
    /// The Host header hyper-util's client would set for this address.
    host: HeaderValue,
    idle_timeout: Duration,
    max_idle: usize,
    /// One stack of idle connections per traffic worker.
    stacks: Vec<Mutex<Vec<Idle>>>,
    /// Idle connections in all stacks.
    idle_total: AtomicUsize,
    reaper: AtomicBool,
}

impl Inner {
    /// The stack of the calling thread's worker.
    fn stack_index(&self) -> usize {
        worker() % self.stacks.len()
    }

    fn stack(&self, index: usize) -> MutexGuard<'_, Vec<Idle>> {
        self.stacks[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn removed(&self, count: usize) {
        if count > 0 {
            self.idle_total.fetch_sub(count, Ordering::AcqRel);
        }
    }

    /// The most recently used ready connection of `stack`; closed and expired ones are dropped on
    /// the way.
    fn checkout(&self, stack: usize) -> Option<Sender> {
        let now = Instant::now();
        let mut idle = self.stack(stack);
        let mut i = idle.len();
        let mut dropped = 0;
        let mut found = None;
        while i > 0 {
            i -= 1;
            let entry = &idle[i];
            if entry.sender.is_closed() || now.duration_since(entry.since) > self.idle_timeout {
                idle.swap_remove(i);
                dropped += 1;
            } else if entry.sender.is_ready() {
                found = Some(idle.swap_remove(i).sender);
                dropped += 1;
                break;
            }
            // Else still busy with its last response body: it becomes ready or closed.
        }
        self.removed(dropped);
        found
    }

    fn check_in(&self, stack: usize, sender: Sender) {
        if sender.is_closed() || self.idle_timeout.is_zero() {
            return;
        }
        let mut idle = self.stack(stack);
        if self.idle_total.fetch_add(1, Ordering::AcqRel) < self.max_idle {
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        } else {
            self.removed(1);
        }
    }

    /// Drop (and so close) connections idle for the idle timeout or closed by the server.
    fn reap(&self) {
        let now = Instant::now();
        for index in 0..self.stacks.len() {
            let mut idle = self.stack(index);
            let before = idle.len();
            idle.retain(|entry| {
                !entry.sender.is_closed() && now.duration_since(entry.since) <= self.idle_timeout
            });
            self.removed(before - idle.len());
        }
    }
}

/// A pooled connection in use; it goes back to the pool when dropped, which should be once its
/// response body has been read (until then the next request cannot use it).
pub struct Lease {
    sender: Option<Sender>,
    pool: Arc<Inner>,
    stack: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.check_in(self.stack, sender);
        }
    }
}

#[derive(Clone)]
pub struct LocalPool {
    inner: Arc<Inner>,
}

impl LocalPool {
    /// A pool for `url` when it is a plain `http://host[:port]` (no path, no user info), else
    /// None (the caller keeps hyper-util's client for it); one idle stack per traffic worker.
    pub fn for_url(
        url: &str,
        connector: HttpConnector,
        idle_timeout: Duration,
        max_idle: usize,
        workers: usize,
    ) -> Option<LocalPool> {
        let uri: Uri = url.parse().ok()?;
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?;
        if authority.as_str().contains('@') || !matches!(uri.path(), "" | "/") {
            return None;
        }
        if uri.query().is_some() {
            return None;
        }
        let host = match authority.port_u16() {
            Some(80) | None => authority.host().to_string(),
            Some(port) => format!("{}:{port}", authority.host()),
        };
        let host = HeaderValue::from_str(&host).ok()?;
        let address = Uri::builder()
            .scheme("http")
            .authority(authority.clone())
            .path_and_query("/")
            .build()
            .ok()?;
        let inner = Arc::new(Inner {
            connector,
            address,
            host,
            idle_timeout,
            max_idle,
            stacks: (0..workers.max(1))
                .map(|_| Mutex::new(Vec::new()))
                .collect(),
            idle_total: AtomicUsize::new(0),
            reaper: AtomicBool::new(false),
        });
        Some(LocalPool { inner })
    }

    /// Idle connections kept now (tests).
    pub fn idle_count(&self) -> usize {
        (0..self.inner.stacks.len())
            .map(|i| self.inner.stack(i).len())
            .sum()
    }

    /// Send `request` (origin-form URI); the response with its headers read and the connection it
    /// came on.
    pub async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), PoolError> {
        request
            .headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| self.inner.host.clone());
        let stack = self.inner.stack_index();
        loop {
            let (mut sender, reused) = match self.inner.checkout(stack) {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let lease = Lease {
                        sender: Some(sender),
                        pool: self.inner.clone(),
                        stack,
                    };
                    return Ok((response, lease));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the server closed the idle connection meanwhile. Safe to send
                    // again, on a new connection once no idle one is left.
                    Some(unsent) if reused => request = unsent,
                    Some(_) => return Err(PoolError::new(Kind::Canceled, e.into_error())),
                    None => return Err(PoolError::new(Kind::SendRequest, e.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Sender, PoolError> {
        self.start_reaper();
        let mut connector = self.inner.connector.clone();
        let io = connector
            .call(self.inner.address.clone())
            .await
            .map_err(|e| PoolError::new(Kind::Connect, e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| PoolError::new(Kind::SendRequest, e))?;
        let (error_tx, error_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                let _ = error_tx.send(e);
            }
        });
        match sender.ready().await {
            Ok(()) => Ok(sender),
            // The connection ended before it was ready: its own error says why.
            Err(e) if e.is_closed() => match error_rx.await {
                Ok(cause) => Err(PoolError::new(Kind::SendRequest, cause)),
                Err(_) => Err(PoolError::new(Kind::SendRequest, e)),
            },
            Err(e) => Err(PoolError::new(Kind::SendRequest, e)),
        }
    }

    /// Close idle connections past the idle timeout every idle timeout (hyper-util's pool does
    /// the same), so an idle sidecar holds no connection the server is about to close.
    fn start_reaper(&self) {
        let every = self.inner.idle_timeout;
        if every.is_zero() || self.inner.reaper.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + every, every);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                pool.reap();
            }
        });
    }
}
