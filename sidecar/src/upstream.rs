//! Pooled HTTP clients to the local model, the canary and the shadow, and the header rules.
//!
//! Two pools: one for live traffic (local model and canary), one for shadow copies, so shadow
//! traffic never takes a connection the primary path needs. Hop-by-hop headers are dropped in
//! both directions; bodies pass through as bytes (no decompression). Canary and shadow traffic
//! may go through an HTTP proxy (`MODELDEPLOY_HTTP_PROXY`), the local model never does.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use crate::local_pool::{Lease, LocalPool};
use crate::settings::Settings;

const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
];

fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Headers for the upstream request: incoming minus hop-by-hop, plus forwarding headers.
pub fn request_headers(
    incoming: &HeaderMap,
    extra: &[(&'static str, &str)],
    remote: Option<&str>,
) -> HeaderMap {
    let tokens = connection_tokens(incoming);
    let mut out = HeaderMap::with_capacity(incoming.len() + 3);
    for (name, value) in incoming {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower)
            || lower == "host"
            || lower == "content-length"
            || lower == "expect"
            || tokens.iter().any(|t| t == lower)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(remote) = remote {
        let prior = incoming
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok());
        let value = match prior {
            Some(p) => format!("{p}, {remote}"),
            None => remote.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    out
}

/// Headers for the client response: upstream's minus hop-by-hop and the recomputed length.
pub fn response_headers(upstream: &HeaderMap, keep_length: bool) -> HeaderMap {
    let tokens = connection_tokens(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len() + 2);
    for (name, value) in upstream {
        let lower = name.as_str();
        if HOP_BY_HOP.contains(&lower)
            || (lower == "content-length" && !keep_length)
            || tokens.iter().any(|t| t == lower)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// A TCP connection to the HTTP proxy; requests on it use the absolute form.
pub struct ProxiedStream(TokioIo<TcpStream>);

impl Connection for ProxiedStream {
    fn connected(&self) -> Connected {
        Connected::new().proxy(true)
    }
}

impl hyper::rt::Read for ProxiedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for ProxiedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Connects every request to the proxy's address (the request URI keeps the real target).
#[derive(Clone)]
pub struct ProxyConnector {
    proxy: Uri,
    connect_timeout: Duration,
}

impl tower_service::Service<Uri> for ProxyConnector {
    type Response = ProxiedStream;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ProxiedStream, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _target: Uri) -> Self::Future {
        let host = self
            .proxy
            .host()
            .unwrap_or("127.0.0.1")
            .trim_matches(['[', ']'])
            .to_string();
        let port = self.proxy.port_u16().unwrap_or(80);
        let timeout = self.connect_timeout;
        Box::pin(async move {
            let connect = TcpStream::connect((host.as_str(), port));
            let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to the HTTP proxy timed out",
                )
            })??;
            let _ = stream.set_nodelay(true);
            Ok(ProxiedStream(TokioIo::new(stream)))
        })
    }
}

pub type Direct = Client<HttpConnector, Full<Bytes>>;
pub type Proxied = Client<ProxyConnector, Full<Bytes>>;

/// Why no usable response came: 504 (timeout) or 503 (unreachable).
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub status: u16,
    pub message: String,
    /// No connection could be made (refused, unreachable, connect timeout): the request was never
    /// sent, so trying it elsewhere is safe whatever its method.
    pub not_sent: bool,
}

/// The client pools.
pub struct Upstreams {
    /// The local model server (`MODELDEPLOY_UPSTREAM`), when it is a plain `http://host:port`;
    /// else `live` serves it too.
    local: Option<LocalPool>,
    local_url: String,
    live: Direct,
    shadow: Direct,
    live_proxy: Option<Proxied>,
    shadow_proxy: Option<Proxied>,
}

fn connector(settings: &Settings) -> HttpConnector {
    let mut c = HttpConnector::new();
    c.set_connect_timeout(Some(settings.connect_timeout));
    c.set_nodelay(true);
    c.enforce_http(false);
    c
}

/// `idle`: below the model server's own keep-alive timeout, so the pool never sends a request on
/// a connection the server is closing at that moment (uvicorn, under BentoML, closes after 5 s;
/// a POST lost in that race cannot be retried safely). docs/serving.md, *Settings*.
fn builder(max_idle: usize, idle: Duration) -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(max_idle)
        .retry_canceled_requests(true);
    b
}

impl Upstreams {
    pub fn new(settings: &Settings) -> Self {
        let proxy = settings
            .http_proxy
            .as_ref()
            .and_then(|p| p.parse::<Uri>().ok());
        let idle = settings.pool_idle_timeout;
        let proxied = |max: usize| {
            proxy.clone().map(|proxy| {
                builder(max, settings.pool_idle_timeout).build(ProxyConnector {
                    proxy,
                    connect_timeout: settings.connect_timeout,
                })
            })
        };
        Upstreams {
            local: LocalPool::for_url(
                &settings.upstream,
                connector(settings),
                idle,
                settings.pool_size,
                settings.workers,
            ),
            local_url: settings.upstream.clone(),
            live: builder(settings.pool_size, idle).build(connector(settings)),
            shadow: builder(settings.shadow_concurrency, idle).build(connector(settings)),
            live_proxy: proxied(settings.pool_size),
            shadow_proxy: proxied(settings.shadow_concurrency),
        }
    }

    /// Send the request; the response with its headers read, or an UpstreamError.
    pub async fn open(
        &self,
        shadow_pool: bool,
        via_proxy: bool,
        request: Request<Full<Bytes>>,
        deadline: tokio::time::Instant,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let url = request.uri().to_string();
        let future = match (shadow_pool, via_proxy) {
            (false, true) if self.live_proxy.is_some() => self
                .live_proxy
                .as_ref()
                .map(|c| c.request(request))
                .map(Either::B),
            (true, true) if self.shadow_proxy.is_some() => self
                .shadow_proxy
                .as_ref()
                .map(|c| c.request(request))
                .map(Either::B),
            (false, _) => Some(Either::A(self.live.request(request))),
            (true, _) => Some(Either::A(self.shadow.request(request))),
        };
        let Some(future) = future else {
            return Err(UpstreamError {
                status: 503,
                message: format!("upstream {url} unavailable (no client)"),
                not_sent: true,
            });
        };
        let result = match future {
            Either::A(f) => tokio::time::timeout_at(deadline, f).await,
            Either::B(f) => tokio::time::timeout_at(deadline, f).await,
        };
        match result {
            Err(_) => Err(UpstreamError {
                status: 504,
                message: format!("upstream {url} did not answer in time (TimeoutError)"),
                not_sent: false,
            }),
            Ok(Err(e)) => Err(UpstreamError {
                status: 503,
                message: format!("upstream {url} unavailable ({})", describe(&e)),
                not_sent: e.is_connect(),
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Send a request to the local model server: `path` is the request target (origin-form). The
    /// response with its headers read, and the pooled connection to drop once its body has been
    /// read (None when the request went through hyper-util's client).
    pub async fn open_local(
        &self,
        method: &Method,
        path: &PathAndQuery,
        headers: HeaderMap,
        body: Bytes,
        deadline: tokio::time::Instant,
    ) -> Result<(http::Response<Incoming>, Option<Lease>), UpstreamError> {
        let pool = match &self.local {
            // CONNECT is sent in authority-form, which hyper-util's client does.
            Some(pool) if *method != Method::CONNECT => pool,
            _ => {
                let url = format!("{}{}", self.local_url, path.as_str());
                let request = build_request(method, &url, headers, body)?;
                let response = self.open(false, false, request, deadline).await?;
                return Ok((response, None));
            }
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method.clone();
        *request.uri_mut() = Uri::from(path.clone());
        *request.headers_mut() = headers;
        let url = || format!("{}{}", self.local_url, path.as_str());
        match tokio::time::timeout_at(deadline, pool.send(request)).await {
            Err(_) => Err(UpstreamError {
                status: 504,
                message: format!("upstream {} did not answer in time (TimeoutError)", url()),
                not_sent: false,
            }),
            Ok(Err(e)) => Err(UpstreamError {
                status: 503,
                message: format!("upstream {} unavailable ({})", url(), describe(&e)),
                not_sent: e.is_connect(),
            }),
            Ok(Ok((response, lease))) => Ok((response, Some(lease))),
        }
    }

    /// The local pool, when the local model server has one (tests).
    pub fn local_pool(&self) -> Option<&LocalPool> {
        self.local.as_ref()
    }
}

enum Either<A, B> {
    A(A),
    B(B),
}

/// An error and its causes, one line.
pub fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Build the upstream request.
pub fn build_request(
    method: &http::Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let uri: Uri = url.parse().map_err(|e| UpstreamError {
        status: 503,
        message: format!("upstream {url} unavailable (invalid URL: {e})"),
        not_sent: true,
    })?;
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::settings::{load, Loaded};

    /// A keep-alive HTTP/1.1 server that answers every request with 200 and counts connections.
    async fn counting_server() -> (String, Arc<AtomicUsize>) {
        let server = TestServer::start(false).await;
        (format!("{}/", server.url), server.accepted)
    }

    /// An HTTP/1.1 server answering 200 "ok" to every request: counts connections, keeps the
    /// request heads it read, and with `close_after_answer` closes each connection right after
    /// its first answer (without saying so: a broken keep-alive connection).
    struct TestServer {
        url: String,
        accepted: Arc<AtomicUsize>,
        heads: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl TestServer {
        async fn start(close_after_answer: bool) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let accepted = Arc::new(AtomicUsize::new(0));
            let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
            let (count, seen_heads) = (accepted.clone(), heads.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    let seen_heads = seen_heads.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 4096];
                        let mut seen = Vec::new();
                        loop {
                            let Ok(n) = socket.read(&mut buf).await else {
                                return;
                            };
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                            while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                                let head = String::from_utf8_lossy(&seen[..end]).into_owned();
                                seen_heads.lock().unwrap().push(head);
                                seen.drain(..end + 4);
                                let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                                if socket.write_all(answer).await.is_err() || close_after_answer {
                                    return;
                                }
                            }
                        }
                    });
                }
            });
            TestServer {
                url,
                accepted,
                heads,
            }
        }

        fn accepted(&self) -> usize {
            self.accepted.load(Ordering::SeqCst)
        }
    }

    fn settings(extra: &[(&str, &str)]) -> Settings {
        let base = [
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_NAMESPACE", "ml"),
            ("MODELDEPLOY_REVISION", "aaaa"),
            ("MODELDEPLOY_UPSTREAM", "http://127.0.0.1:3000"),
            ("MODELDEPLOY_ROUTING_FILE", "/nonexistent/routing.json"),
        ];
        let environ: HashMap<String, String> = base
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match load(&[], &environ) {
            Loaded::Ready(s) => *s,
            other => panic!("refused: {other:?}"),
        }
    }

    async fn get(upstreams: &Upstreams, url: &str) {
        let request =
            build_request(&http::Method::GET, url, HeaderMap::new(), Bytes::new()).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let response = upstreams
            .open(false, false, request, deadline)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_pooled_connection_is_reused_until_it_has_idled_for_the_pool_idle_timeout() {
        let (url, accepted) = counting_server().await;
        let upstreams = Upstreams::new(&settings(&[("MODELDEPLOY_POOL_IDLE_TIMEOUT", "1")]));
        get(&upstreams, &url).await;
        get(&upstreams, &url).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the second request reuses the connection"
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        get(&upstreams, &url).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "an idle connection is not reused"
        );
    }

    #[test]
    fn the_default_pool_idle_timeout_is_below_uvicorns_keep_alive() {
        // uvicorn (BentoML's server) closes a keep-alive connection after 5 s idle.
        assert_eq!(settings(&[]).pool_idle_timeout, Duration::from_secs(4));
    }

    fn local_settings(upstream: &str, idle_seconds: &str) -> Settings {
        settings(&[
            ("MODELDEPLOY_UPSTREAM", upstream),
            ("MODELDEPLOY_POOL_IDLE_TIMEOUT", idle_seconds),
        ])
    }

    async fn local_get(upstreams: &Upstreams, path: &'static str) -> Result<String, UpstreamError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let path = PathAndQuery::from_static(path);
        let (response, lease) = upstreams
            .open_local(
                &Method::GET,
                &path,
                HeaderMap::new(),
                Bytes::new(),
                deadline,
            )
            .await?;
        assert!(lease.is_some(), "served by the local pool");
        assert_eq!(response.status(), 200);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn the_local_pool_reuses_a_connection_within_the_idle_timeout_and_not_after() {
        let server = TestServer::start(false).await;
        let upstreams = Upstreams::new(&local_settings(&server.url, "1"));
        for _ in 0..3 {
            assert_eq!(local_get(&upstreams, "/p").await.unwrap(), "ok");
        }
        assert_eq!(
            server.accepted(),
            1,
            "requests in turn share one connection"
        );
        let pool = upstreams
            .local_pool()
            .expect("a plain http:// upstream has a pool");
        assert_eq!(pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(
            pool.idle_count(),
            0,
            "the reaper closed the idle connection"
        );
        local_get(&upstreams, "/p").await.unwrap();
        assert_eq!(server.accepted(), 2, "an idle connection is not reused");
    }

    #[tokio::test]
    async fn each_worker_reuses_its_own_connections_and_the_pool_size_bounds_them_all() {
        let server = TestServer::start(false).await;
        let upstreams = Upstreams::new(&settings(&[
            ("MODELDEPLOY_UPSTREAM", &server.url),
            ("MODELDEPLOY_WORKERS", "2"),
            ("MODELDEPLOY_POOL_SIZE", "1"),
        ]));
        let pool = upstreams.local_pool().expect("a pool");
        local_get(&upstreams, "/p").await.unwrap();
        assert_eq!((server.accepted(), pool.idle_count()), (1, 1));
        crate::local_pool::set_worker(1);
        local_get(&upstreams, "/p").await.unwrap();
        assert_eq!(
            server.accepted(),
            2,
            "worker 1 does not take worker 0's connection"
        );
        assert_eq!(
            pool.idle_count(),
            1,
            "worker 1's connection is closed: the pool already keeps its size"
        );
        local_get(&upstreams, "/p").await.unwrap();
        assert_eq!(server.accepted(), 3);
        crate::local_pool::set_worker(0);
        local_get(&upstreams, "/p").await.unwrap();
        assert_eq!(
            (server.accepted(), pool.idle_count()),
            (3, 1),
            "worker 0 reuses its own"
        );
    }

    #[tokio::test]
    async fn the_local_pool_does_not_reuse_a_connection_the_server_closed() {
        let server = TestServer::start(true).await;
        let upstreams = Upstreams::new(&local_settings(&server.url, "4"));
        for _ in 0..3 {
            assert_eq!(local_get(&upstreams, "/p").await.unwrap(), "ok");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(server.accepted(), 3);
    }

    #[tokio::test]
    async fn the_local_pool_resends_a_request_a_reused_connection_never_sent() {
        // The server closes each connection after its answer; the next request, sent at once, may
        // find the closed connection still in the pool: it must be sent again, not fail.
        let server = TestServer::start(true).await;
        let upstreams = Upstreams::new(&local_settings(&server.url, "4"));
        for _ in 0..20 {
            assert_eq!(local_get(&upstreams, "/p").await.unwrap(), "ok");
        }
    }

    #[tokio::test]
    async fn a_local_connect_error_is_flagged_not_sent_and_reads_as_the_pooled_clients() {
        let unused = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", unused.local_addr().unwrap());
        drop(unused);
        let upstreams = Upstreams::new(&local_settings(&url, "4"));
        let err = local_get(&upstreams, "/predict").await.unwrap_err();
        assert_eq!(err.status, 503);
        assert!(err.not_sent, "{}", err.message);
        let request = build_request(
            &Method::GET,
            &format!("{url}/predict"),
            HeaderMap::new(),
            Bytes::new(),
        )
        .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let legacy = upstreams
            .open(false, false, request, deadline)
            .await
            .unwrap_err();
        assert_eq!(err.message, legacy.message);
        assert!(
            err.message.starts_with(&format!(
                "upstream {url}/predict unavailable (client error (Connect): "
            )),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn the_local_pool_sends_the_request_head_the_pooled_client_sent() {
        let server = TestServer::start(false).await;
        let upstreams = Upstreams::new(&local_settings(&server.url, "4"));
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-request-id", HeaderValue::from_static("abc"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let path = PathAndQuery::from_static("/predict?x=1");
        let body = Bytes::from_static(b"[1]");
        let (response, _lease) = upstreams
            .open_local(
                &Method::POST,
                &path,
                headers.clone(),
                body.clone(),
                deadline,
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let url = format!("{}/predict?x=1", server.url);
        let request = build_request(&Method::POST, &url, headers, body).unwrap();
        let legacy = upstreams
            .open(false, false, request, deadline)
            .await
            .unwrap();
        assert_eq!(legacy.status(), 200);
        let heads = server.heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        assert_eq!(heads[0], heads[1]);
        let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
        assert!(
            heads[0].starts_with("POST /predict?x=1 HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[0].contains(&format!("host: 127.0.0.1:{port}")),
            "{}",
            heads[0]
        );
    }

    #[test]
    fn only_a_plain_http_upstream_gets_the_local_pool() {
        let pooled = |url: &str| {
            LocalPool::for_url(url, HttpConnector::new(), Duration::from_secs(4), 8, 1).is_some()
        };
        assert!(pooled("http://127.0.0.1:3000"));
        assert!(pooled("http://localhost"));
        assert!(!pooled("https://127.0.0.1:3000"));
        assert!(!pooled("http://127.0.0.1:3000/prefix"));
        assert!(!pooled("http://user:pw@127.0.0.1:3000"));
    }
}
