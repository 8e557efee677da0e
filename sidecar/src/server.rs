//! Sidecar lifecycle: the traffic and metrics listeners, the routing source, graceful drain.
//!
//! Traffic port: `/healthz`, `/readyz`, everything else proxied. Metrics port (read-only): GET
//! `/metrics` and `/routing`. Connections without a complete request head within the idle
//! timeout are closed (idle keep-alive and slowloris alike: hyper's header read timeout).
//! On SIGTERM/SIGINT: `/readyz` answers 503 at once, requests are served for `drain_delay`, then
//! the listener closes and in-flight requests get up to `drain_timeout`; exit code 0.
//!
//! Threads: `workers` traffic workers (setting `MODELDEPLOY_WORKERS`), each a current-thread
//! event loop accepting from the same listening socket and serving its connections to the end,
//! with its own connections to the local model server (local_pool.rs): a request never wakes
//! another thread, as in nginx's worker processes (a multi-thread scheduler cost 0.6 futex calls
//! per request). The main thread is worker 0 and also runs the metrics port, the routing source
//! and the drain.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch, Notify};

use crate::data_path::DataPath;
use crate::drift::FeatureHistograms;
use crate::errors::{error_response, full, json_response, Body};
use crate::metrics::{Base, Metrics};
use crate::prediction_log::PredictionLog;
use crate::proxy::{handle, App};
use crate::router::Router;
use crate::routing_source::FileWatcher;
use crate::settings::Settings;
use crate::shadow::ShadowMirror;
use crate::upstream::{describe, Upstreams};

const LOG: &str = "modeldeploy.sidecar";
pub const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Enough buffer for 128 header lines of 8 kB (the limits are checked per request).
const MAX_HEAD_BUFFER: usize = 128 * 8192 + 64 * 1024;
/// More headers than this are refused by the parser (431); up to it, the handler answers 400 JSON.
const PARSER_MAX_HEADERS: usize = 512;

/// One event loop on the calling thread (tokio's current-thread scheduler, timers and I/O on).
pub fn event_loop() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// Build the shared state (no I/O yet).
pub fn build_app(settings: Settings) -> Arc<App> {
    let settings = Arc::new(settings);
    let metrics = Metrics::new(&settings.model, &settings.namespace, &settings.revision);
    let base = Base {
        model: settings.model.clone(),
        namespace: settings.namespace.clone(),
        revision: settings.revision.clone(),
    };
    let drift = FeatureHistograms::new(base);
    let mut metrics = metrics;
    metrics.registry.register_collector(Box::new(drift.clone()));
    let metrics = Arc::new(metrics);
    let predictions = PredictionLog::start(
        settings.model.clone(),
        settings.namespace.clone(),
        metrics.clone(),
        settings.prediction_log_queue,
    );
    let upstreams = Arc::new(Upstreams::new(&settings));
    let shadow = Arc::new(ShadowMirror::new(
        upstreams.clone(),
        metrics.clone(),
        settings.shadow_concurrency,
        settings.shadow_queue,
        settings.shadow_timeout,
        settings.upstream_timeout + Duration::from_secs(1),
        usize::try_from(settings.compare_max_bytes).unwrap_or(usize::MAX),
    ));
    Arc::new(App {
        router: Router::new(settings.clone(), metrics.clone()),
        data_path: DataPath::new(metrics.clone(), drift, predictions),
        settings,
        metrics,
        upstreams,
        shadow,
        draining: AtomicBool::new(false),
    })
}

fn with_revision(mut response: Response<Body>, revision: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(revision) {
        response
            .headers_mut()
            .insert(crate::errors::REVISION_HEADER, v);
    }
    response
}

async fn readyz(app: &App) -> Response<Body> {
    let own = &app.settings.revision;
    if app.draining.load(Ordering::Relaxed) {
        return error_response(
            503,
            "sidecar is draining (shutting down)",
            own,
            Some("draining"),
        );
    }
    let url = format!("{}/readyz", app.settings.upstream);
    let deadline = tokio::time::Instant::now() + READY_PROBE_TIMEOUT;
    let path = PathAndQuery::from_static("/readyz");
    let opened = app
        .upstreams
        .open_local(
            &Method::GET,
            &path,
            HeaderMap::new(),
            Bytes::new(),
            deadline,
        )
        .await;
    let outcome = match opened {
        Err(e) => Err(e.message),
        Ok((response, lease)) => {
            let status = response.status().as_u16();
            let _ = tokio::time::timeout_at(deadline, response.into_body().collect()).await;
            drop(lease);
            Ok(status)
        }
    };
    match outcome {
        Ok(200) => json_response(200, &json!({"status": "ready", "revision": own}), own),
        Ok(status) => error_response(
            503,
            &format!("model server {url} answered {status}"),
            own,
            Some("not_ready"),
        ),
        Err(e) => error_response(
            503,
            &format!("model server {url} unreachable ({e})"),
            own,
            Some("not_ready"),
        ),
    }
}

async fn traffic(app: Arc<App>, request: Request<Incoming>, remote: String) -> Response<Body> {
    let readable = matches!(*request.method(), Method::GET | Method::HEAD);
    match request.uri().path() {
        "/healthz" if readable => {
            let own = &app.settings.revision;
            let draining = app.draining.load(Ordering::Relaxed);
            json_response(
                200,
                &json!({"status": "ok", "revision": own, "draining": draining}),
                own,
            )
        }
        "/readyz" if readable => readyz(&app).await,
        _ => handle(app, request, remote).await,
    }
}

fn metrics_port(app: &App, request: &Request<Incoming>) -> Response<Body> {
    let own = &app.settings.revision;
    let path = request.uri().path();
    if path != "/metrics" && path != "/routing" {
        return error_response(
            404,
            &format!("Not Found: {} {}", request.method(), path),
            own,
            Some("not_found"),
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = error_response(
            405,
            &format!("Method Not Allowed: {} {}", request.method(), path),
            own,
            Some("method_not_allowed"),
        );
        response
            .headers_mut()
            .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    if path == "/routing" {
        return json_response(200, &app.router.snapshot(), own);
    }
    let mut response = Response::new(full(app.metrics.encode()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    with_revision(response, own)
}

/// Open connections, for the drain.
#[derive(Default)]
struct Connections {
    open: AtomicUsize,
    idle: Notify,
}

struct ConnectionGuard(Arc<Connections>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

fn http1(settings: &Settings) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(settings.idle_timeout)
        .keep_alive(true)
        .max_headers(PARSER_MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BUFFER);
    builder
}

enum Port {
    Traffic,
    Metrics,
}

async fn accept_loop(
    app: Arc<App>,
    listener: TcpListener,
    port: Port,
    mut stop: watch::Receiver<bool>,
    connections: Arc<Connections>,
) {
    let builder = http1(&app.settings);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                crate::warn!(LOG, "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.open.fetch_add(1, Ordering::AcqRel);
        let guard = ConnectionGuard(connections.clone());
        let app = app.clone();
        let builder = builder.clone();
        let mut stop = stop.clone();
        let is_traffic = matches!(port, Port::Traffic);
        tokio::spawn(async move {
            let _guard = guard;
            let remote_ip = remote.ip().to_string();
            let service = service_fn(move |request: Request<Incoming>| {
                let app = app.clone();
                let remote_ip = remote_ip.clone();
                async move {
                    let response = if is_traffic {
                        traffic(app, request, remote_ip).await
                    } else {
                        metrics_port(&app, &request)
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop.changed() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                if e.is_parse() || e.is_parse_too_large() || e.is_timeout() {
                    crate::info!(LOG, "request from {remote} refused: {e}");
                } else {
                    crate::debug!(LOG, "connection from {remote} ended: {}", describe(&e));
                }
            }
        });
    }
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, String> {
    let address = format!("{host}:{port}");
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&address)
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    let addr = addrs
        .first()
        .ok_or_else(|| format!("cannot resolve {address}"))?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(|e| e.to_string())?;
    socket.set_reuseaddr(true).map_err(|e| e.to_string())?;
    let lower = |e: std::io::Error| {
        let text = e.to_string();
        format!(
            "error while attempting to bind on address {address}: {}",
            text.to_lowercase()
        )
    };
    socket.bind(*addr).map_err(lower)?;
    socket.listen(1024).map_err(lower)
}

/// Start traffic workers 1.. (worker 0 is the caller's): each a thread with its own event loop
/// accepting from a duplicate of `listener`'s socket. The receivers say when each one's accept
/// loop has ended (after `stop`). Returns the caller's listener with them.
fn start_workers(
    app: &Arc<App>,
    listener: TcpListener,
    stop: &watch::Receiver<bool>,
    connections: &Arc<Connections>,
) -> Result<(TcpListener, Vec<oneshot::Receiver<()>>), String> {
    let workers = app.settings.workers;
    if workers <= 1 {
        return Ok((listener, Vec::new()));
    }
    let shared = listener.into_std().map_err(|e| e.to_string())?;
    let mut ended = Vec::new();
    for index in 1..workers {
        let socket = shared
            .try_clone()
            .map_err(|e| format!("traffic worker {index}: {e}"))?;
        let runtime = event_loop().map_err(|e| format!("traffic worker {index}: {e}"))?;
        let listener = {
            let _inside = runtime.enter();
            TcpListener::from_std(socket).map_err(|e| format!("traffic worker {index}: {e}"))?
        };
        let (app, stop, connections) = (app.clone(), stop.clone(), connections.clone());
        let (done, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("traffic-{index}"))
            .spawn(move || {
                crate::local_pool::set_worker(index);
                runtime.block_on(async move {
                    accept_loop(app, listener, Port::Traffic, stop, connections).await;
                    let _ = done.send(());
                    // Its connections and shadow copies go on until the process exits.
                    std::future::pending::<()>().await;
                });
            })
            .map_err(|e| format!("traffic worker {index}: {e}"))?;
        ended.push(done_rx);
    }
    Ok((
        TcpListener::from_std(shared).map_err(|e| e.to_string())?,
        ended,
    ))
}

async fn signal_received() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

/// Run until SIGTERM/SIGINT, then drain. Err is a reason not to start (exit 1).
pub async fn run(app: Arc<App>) -> Result<(), String> {
    let settings = app.settings.clone();
    let traffic_listener = bind(&settings.listen_host, settings.port).await?;
    let metrics_listener = bind(&settings.listen_host, settings.metrics_port).await?;
    let mut background = Vec::new();
    if let Some(path) = &settings.routing_file {
        let mut watcher = FileWatcher::new(path.clone());
        watcher.check(&app); // the table is in force before the first request when the file exists
        background.push(tokio::spawn(
            watcher.run(app.clone(), settings.file_poll_interval),
        ));
    } else if let Some(name) = &settings.routing_configmap {
        let watcher = crate::configmap::ConfigMapWatcher::new(&settings, name).await?;
        background.push(tokio::spawn(watcher.run(app.clone())));
    }
    let (stop_traffic, stop_traffic_rx) = watch::channel(false);
    let (stop_metrics, stop_metrics_rx) = watch::channel(false);
    let traffic_connections = Arc::new(Connections::default());
    let (traffic_listener, workers_ended) = start_workers(
        &app,
        traffic_listener,
        &stop_traffic_rx,
        &traffic_connections,
    )?;
    let traffic_task = tokio::spawn(accept_loop(
        app.clone(),
        traffic_listener,
        Port::Traffic,
        stop_traffic_rx,
        traffic_connections.clone(),
    ));
    let metrics_task = tokio::spawn(accept_loop(
        app.clone(),
        metrics_listener,
        Port::Metrics,
        stop_metrics_rx,
        Arc::new(Connections::default()),
    ));
    crate::info!(
        LOG,
        "sidecar for {}/{} revision {}: traffic on {}:{} ({} worker{}), metrics on :{}, upstream {}, routing from {}",
        settings.namespace,
        settings.model,
        settings.revision,
        settings.listen_host,
        settings.port,
        settings.workers,
        if settings.workers == 1 { "" } else { "s" },
        settings.metrics_port,
        settings.upstream,
        settings.routing_file.as_ref().map_or_else(
            || format!("ConfigMap {}/{}", settings.namespace, settings.routing_configmap.as_deref().unwrap_or("")),
            |p| p.display().to_string()
        )
    );

    signal_received().await;
    crate::info!(LOG, "stop requested: draining");
    app.draining.store(true, Ordering::Relaxed);
    if !settings.drain_delay.is_zero() {
        tokio::time::sleep(settings.drain_delay).await;
    }
    let _ = stop_traffic.send(true);
    let _ = traffic_task.await;
    for ended in workers_ended {
        let _ = ended.await;
    }
    let drained = async {
        loop {
            let notified = traffic_connections.idle.notified();
            if traffic_connections.open.load(Ordering::Acquire) == 0 {
                break;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(settings.drain_timeout, drained)
        .await
        .is_err()
    {
        crate::warn!(
            LOG,
            "{} connections still open after the drain timeout of {:?}; closing them",
            traffic_connections.open.load(Ordering::Acquire),
            settings.drain_timeout
        );
    }
    app.shadow.close(Duration::from_secs(1)).await;
    let _ = stop_metrics.send(true);
    let _ = metrics_task.await;
    for task in background {
        task.abort();
    }
    let app2 = app.clone();
    let _ = tokio::task::spawn_blocking(move || {
        app2.data_path.predictions.close(Duration::from_secs(2))
    })
    .await;
    crate::info!(LOG, "sidecar stopped");
    Ok(())
}
