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
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
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
                            seen.drain(..end + 4);
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if socket.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (url, accepted)
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
}
