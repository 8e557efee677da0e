//! Routing table from the ConfigMap `<model>-routing`, followed by a list + watch on the API
//! server (never a volume mount, whose updates lag by a minute).
//!
//! Hand-rolled on hyper + rustls instead of kube-rs: one GET to list the one ConfigMap
//! (`fieldSelector=metadata.name=…`, so RBAC can be limited with `resourceNames`) and one
//! streaming GET to watch it from the listed resourceVersion are all the sidecar needs; kube +
//! k8s-openapi would add minutes to a clean build and megabytes to the binary (docs/serving.md).
//! Every list re-reads the credentials (the ServiceAccount token rotates); a watch that ends
//! (server timeout), fails or reports 410 Gone is followed by a new list + watch, backing off
//! 0.2 s → 5 s while errors persist. A deleted ConfigMap leaves the last table in force.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use crate::proxy::App;
use crate::routing_source::apply_routing;
use crate::settings::Settings;

const LOG: &str = "modeldeploy.sidecar.routing";
pub const ROUTING_KEY: &str = "routing.json";
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const BACKOFF_START: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the token comes from: read again before every list (it rotates in a pod).
#[derive(Clone, Debug)]
enum Token {
    None,
    Static(String),
    File(PathBuf),
}

/// How to reach the API server.
#[derive(Clone)]
struct Credentials {
    server: Uri,
    tls: Option<TlsConnector>,
    token: Token,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    rustls_pemfile::certs(&mut &pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad certificate: {e}"))
}

fn tls(ca: Option<Vec<u8>>, client: Option<(Vec<u8>, Vec<u8>)>) -> Result<TlsConnector, String> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = ca {
        for cert in certs(&ca)? {
            roots
                .add(cert)
                .map_err(|e| format!("bad CA certificate: {e}"))?;
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &key[..])
                .map_err(|e| format!("bad client key: {e}"))?
                .ok_or("no private key in the client key data")?;
            builder
                .with_client_auth_cert(certs(&cert)?, key)
                .map_err(|e| format!("bad client certificate: {e}"))?
        }
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn in_cluster() -> Result<Credentials, String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST")
        .map_err(|_| "KUBERNETES_SERVICE_HOST is not set")?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let server: Uri = format!("https://{host}:{port}")
        .parse()
        .map_err(|e| format!("bad API server address: {e}"))?;
    let ca = read(&Path::new(SERVICE_ACCOUNT).join("ca.crt"))?;
    Ok(Credentials {
        server,
        tls: Some(tls(Some(ca), None)?),
        token: Token::File(Path::new(SERVICE_ACCOUNT).join("token")),
    })
}

fn data_or_file(
    entry: &serde_yaml::Value,
    data: &str,
    file: &str,
    base: &Path,
) -> Result<Option<Vec<u8>>, String> {
    if let Some(text) = entry.get(data).and_then(|v| v.as_str()) {
        return base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Some)
            .map_err(|e| format!("{data}: not base64 ({e})"));
    }
    if let Some(path) = entry.get(file).and_then(|v| v.as_str()) {
        return read(&base.join(path)).map(Some);
    }
    Ok(None)
}

fn named<'a>(
    config: &'a serde_yaml::Value,
    list: &str,
    key: &str,
    name: &str,
) -> Option<&'a serde_yaml::Value> {
    config
        .get(list)?
        .as_sequence()?
        .iter()
        .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))?
        .get(key)
}

fn from_kubeconfig(path: &Path) -> Result<Credentials, String> {
    let text = read(path)?;
    let config: serde_yaml::Value =
        serde_yaml::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let context_name = config
        .get("current-context")
        .and_then(|c| c.as_str())
        .ok_or("no current-context")?;
    let context =
        named(&config, "contexts", "context", context_name).ok_or("current context not found")?;
    let cluster_name = context
        .get("cluster")
        .and_then(|c| c.as_str())
        .ok_or("context names no cluster")?;
    let user_name = context.get("user").and_then(|c| c.as_str()).unwrap_or("");
    let cluster = named(&config, "clusters", "cluster", cluster_name).ok_or("cluster not found")?;
    let user = named(&config, "users", "user", user_name)
        .cloned()
        .unwrap_or(serde_yaml::Value::Null);
    let server: Uri = cluster
        .get("server")
        .and_then(|s| s.as_str())
        .ok_or("cluster has no server")?
        .parse()
        .map_err(|e| format!("bad server URL: {e}"))?;
    if user.get("exec").is_some() || user.get("auth-provider").is_some() {
        return Err(format!(
            "user {user_name}: exec and auth-provider credentials are not supported"
        ));
    }
    let token = if let Some(t) = user.get("token").and_then(|t| t.as_str()) {
        Token::Static(t.to_string())
    } else if let Some(f) = user.get("tokenFile").and_then(|t| t.as_str()) {
        Token::File(base.join(f))
    } else {
        Token::None
    };
    let tls = if server.scheme_str() == Some("https") {
        if cluster
            .get("insecure-skip-tls-verify")
            .and_then(|v| v.as_bool())
            == Some(true)
        {
            return Err("insecure-skip-tls-verify is not supported: give the cluster's CA".into());
        }
        let ca = data_or_file(
            cluster,
            "certificate-authority-data",
            "certificate-authority",
            base,
        )?;
        let cert = data_or_file(&user, "client-certificate-data", "client-certificate", base)?;
        let key = data_or_file(&user, "client-key-data", "client-key", base)?;
        Some(tls(ca, cert.zip(key))?)
    } else {
        None
    };
    Ok(Credentials { server, tls, token })
}

fn credentials(kubeconfig: Option<&Path>) -> Result<Credentials, String> {
    if kubeconfig.is_none() && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return in_cluster();
    }
    let path = match kubeconfig {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("KUBECONFIG") {
            Some(k) => PathBuf::from(k),
            None => {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".kube/config")
            }
        },
    };
    from_kubeconfig(&path)
}

/// A failed request; `gone` is a 410 (the resourceVersion is too old: list again).
#[derive(Debug)]
struct WatchError {
    message: String,
}

impl<E: std::fmt::Display> From<E> for WatchError {
    fn from(e: E) -> Self {
        WatchError {
            message: e.to_string(),
        }
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

pub struct ConfigMapWatcher {
    credentials: Credentials,
    namespace: String,
    name: String,
    watch_timeout: u64,
    last: Option<Vec<u8>>,
    pub watches_started: u64,
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl ConfigMapWatcher {
    /// Err when no credentials can be loaded (the sidecar then exits 1).
    pub async fn new(settings: &Settings, name: &str) -> Result<Self, String> {
        let credentials = credentials(settings.kubeconfig.as_deref()).map_err(|e| {
            let from = settings
                .kubeconfig
                .as_ref()
                .map_or("in-cluster config or $KUBECONFIG".to_string(), |p| {
                    format!("kubeconfig {}", p.display())
                });
            format!("cannot load Kubernetes credentials from {from}: {e}")
        })?;
        Ok(ConfigMapWatcher {
            credentials,
            namespace: settings.namespace.clone(),
            name: name.to_string(),
            watch_timeout: settings.watch_timeout,
            last: None,
            watches_started: 0,
        })
    }

    async fn connect(&self) -> Result<Sender, WatchError> {
        let server = &self.credentials.server;
        let host = server
            .host()
            .ok_or("API server URL has no host")?
            .trim_matches(['[', ']'])
            .to_string();
        let https = server.scheme_str() == Some("https");
        let port = server.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| "connecting to the API server timed out")??;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match (&self.credentials.tls, https) {
            (Some(connector), true) => {
                let name = ServerName::try_from(host.clone())
                    .map_err(|e| format!("bad server name {host}: {e}"))?;
                Box::new(connector.connect(name, tcp).await?)
            }
            _ => Box::new(tcp),
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn request(&self, query: &str) -> Result<Request<Empty<Bytes>>, WatchError> {
        let path = format!(
            "/api/v1/namespaces/{}/configmaps?fieldSelector=metadata.name%3D{}{query}",
            self.namespace, self.name
        );
        let authority = self
            .credentials
            .server
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let mut builder = Request::get(path)
            .header("host", authority)
            .header("accept", "application/json");
        let token = match &self.credentials.token {
            Token::None => None,
            Token::Static(t) => Some(t.clone()),
            Token::File(p) => Some(
                String::from_utf8_lossy(&read(p).map_err(|e| WatchError { message: e })?)
                    .trim()
                    .to_string(),
            ),
        };
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        Ok(builder.body(Empty::new())?)
    }

    fn post(&mut self, app: &App, object: &Value, how: &str) {
        let text = object
            .get("data")
            .and_then(|d| d.get(ROUTING_KEY))
            .and_then(|t| t.as_str());
        let Some(text) = text else {
            problem(
                app,
                &format!(
                    "ConfigMap {}/{} has no key '{ROUTING_KEY}'",
                    self.namespace, self.name
                ),
            );
            return;
        };
        if self.last.as_deref() == Some(text.as_bytes()) {
            return;
        }
        self.last = Some(text.as_bytes().to_vec());
        apply_routing(
            app,
            text.as_bytes(),
            &format!("ConfigMap {}/{} ({how})", self.namespace, self.name),
        );
    }

    /// One list and one watch; Ok when the watch ended normally or asked for a new list.
    async fn list_and_watch(
        &mut self,
        app: &App,
        backoff: &mut Duration,
    ) -> Result<(), WatchError> {
        let mut sender = self.connect().await?;
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(self.request("")?))
                .await
                .map_err(|_| "list timed out")??;
        let status = response.status();
        let body = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| "list timed out")??
            .to_bytes();
        if !status.is_success() {
            return Err(WatchError {
                message: format!(
                    "list answered {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ),
            });
        }
        let listed: Value = serde_json::from_slice(&body)?;
        let version = listed
            .pointer("/metadata/resourceVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        match listed
            .get("items")
            .and_then(|i| i.as_array())
            .and_then(|i| i.first())
        {
            Some(item) => self.post(app, item, "list"),
            None => problem(
                app,
                &format!(
                    "ConfigMap {}/{} not found; waiting for it",
                    self.namespace, self.name
                ),
            ),
        }
        self.watches_started += 1;
        crate::debug!(
            LOG,
            "watching ConfigMap {}/{} from resourceVersion {version} (watch #{})",
            self.namespace,
            self.name,
            self.watches_started
        );
        let query = format!(
            "&watch=1&resourceVersion={version}&timeoutSeconds={}&allowWatchBookmarks=true",
            self.watch_timeout
        );
        let mut sender = self.connect().await?;
        let response =
            tokio::time::timeout(REQUEST_TIMEOUT, sender.send_request(self.request(&query)?))
                .await
                .map_err(|_| "watch request timed out")??;
        if !response.status().is_success() {
            return Err(WatchError {
                message: format!("watch answered {}", response.status()),
            });
        }
        let mut body = response.into_body();
        let mut buffer = BytesMut::new();
        let idle = Duration::from_secs(self.watch_timeout) + REQUEST_TIMEOUT;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => return Err("watch went silent".into()),
                Ok(None) => return Ok(()),
                Ok(Some(frame)) => frame?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line = buffer.split_to(end + 1);
                let line = &line[..line.len() - 1];
                if line.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                *backoff = BACKOFF_START;
                let event: Value = serde_json::from_slice(line)?;
                let object = event.get("object").cloned().unwrap_or(Value::Null);
                match event.get("type").and_then(|t| t.as_str()) {
                    Some("ADDED") | Some("MODIFIED") => self.post(app, &object, "watch"),
                    Some("DELETED") => {
                        problem(
                            app,
                            &format!(
                                "ConfigMap {}/{} was deleted; keeping the table in force",
                                self.namespace, self.name
                            ),
                        );
                        self.last = None;
                    }
                    Some("ERROR") => {
                        let code = object.get("code").and_then(|c| c.as_u64()).unwrap_or(0);
                        if code == 410 {
                            crate::debug!(
                                LOG,
                                "watch of ConfigMap {}/{}: 410 Gone, listing again",
                                self.namespace,
                                self.name
                            );
                            return Ok(());
                        }
                        return Err(WatchError {
                            message: format!("watch error event: {object}"),
                        });
                    }
                    _ => {} // BOOKMARK
                }
            }
            if buffer.remaining() > 16 * 1024 * 1024 {
                return Err("watch event larger than 16 MiB".into());
            }
        }
    }

    pub async fn run(mut self, app: Arc<App>) {
        let mut backoff = BACKOFF_START;
        loop {
            match self.list_and_watch(&app, &mut backoff).await {
                Ok(()) => {}
                Err(e) => {
                    problem(
                        &app,
                        &format!(
                            "watch of ConfigMap {}/{} failed: {}",
                            self.namespace, self.name, e.message
                        ),
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

fn problem(app: &App, message: &str) {
    app.metrics.routing_errors.inc();
    crate::warn!(LOG, "{message}");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::routing::RoutingTable;
    use crate::routing_source::tests::{app, good};

    #[test]
    fn only_the_routing_key_reaches_the_sidecar_and_garbage_never_replaces_the_table() {
        let app = app();
        let mut watcher = ConfigMapWatcher {
            credentials: Credentials {
                server: Uri::from_static("http://127.0.0.1:1"),
                tls: None,
                token: Token::None,
            },
            namespace: "ml".into(),
            name: "iris-routing".into(),
            watch_timeout: 5,
            last: None,
            watches_started: 0,
        };
        let good_text = good().to_string();
        let mut other_model = good();
        other_model["model"] = json!("other");
        let mut heavy = good();
        heavy["canary"]["weight"] = json!(250);
        for data in [
            json!({ROUTING_KEY: good_text}),
            json!(null),
            json!({}),
            json!({"other.json": good_text}),
            json!({ROUTING_KEY: ""}),
            json!({ROUTING_KEY: "{not json"}),
            json!({ROUTING_KEY: other_model.to_string()}),
            json!({ROUTING_KEY: heavy.to_string()}),
            json!({ROUTING_KEY: heavy.to_string()}), // the same bytes again: not re-applied
        ] {
            watcher.post(&app, &json!({"data": data}), "watch");
        }
        let expected = RoutingTable::from_json(good_text.as_bytes()).unwrap();
        assert_eq!(app.router.table().as_deref(), Some(&expected));
        // Three deliveries without the key, four rejected tables.
        assert_eq!(app.metrics.routing_errors.get(), 3 + 4);
    }
}
