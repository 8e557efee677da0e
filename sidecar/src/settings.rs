//! Sidecar configuration from environment variables `MODELDEPLOY_<NAME>` and flags `--<name>`
//! (a flag wins). `load` returns every problem, one line each, naming the variable or flag, in
//! the same words as the Python sidecar did (the operator's docs and tests quote them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use crate::log::Level;

pub const ENV_PREFIX: &str = "MODELDEPLOY_";

#[derive(Debug, Clone)]
pub struct Settings {
    pub model: String,
    pub namespace: String,
    pub revision: String,
    pub upstream: String,
    pub routing_configmap: Option<String>,
    pub routing_file: Option<PathBuf>,
    pub listen_host: String,
    pub port: u16,
    pub metrics_port: u16,
    pub workers: usize,
    pub backend_overrides: BTreeMap<String, String>,
    pub http_proxy: Option<String>,
    pub max_body_bytes: u64,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub upstream_timeout: Duration,
    pub connect_timeout: Duration,
    pub pool_size: usize,
    pub pool_idle_timeout: Duration,
    pub retry_methods: BTreeSet<String>,
    pub shadow_concurrency: usize,
    pub shadow_queue: usize,
    pub shadow_timeout: Duration,
    pub prediction_log_queue: usize,
    pub compare_max_bytes: u64,
    pub drain_delay: Duration,
    pub drain_timeout: Duration,
    pub watch_timeout: u64,
    pub file_poll_interval: Duration,
    pub kubeconfig: Option<PathBuf>,
    pub log_level: Level,
}

impl Settings {
    /// Every setting in force by its field name (durations in seconds): what `--check-config`
    /// prints, so the operator's tests can check the environment they generate against the binary.
    pub fn summary(&self) -> serde_json::Value {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let secs = |d: Duration| d.as_secs_f64();
        serde_json::json!({
            "model": self.model,
            "namespace": self.namespace,
            "revision": self.revision,
            "upstream": self.upstream,
            "routing_configmap": self.routing_configmap,
            "routing_file": path(&self.routing_file),
            "listen_host": self.listen_host,
            "port": self.port,
            "metrics_port": self.metrics_port,
            "workers": self.workers,
            "backend_overrides": self.backend_overrides,
            "http_proxy": self.http_proxy,
            "max_body_bytes": self.max_body_bytes,
            "body_timeout": secs(self.body_timeout),
            "idle_timeout": secs(self.idle_timeout),
            "upstream_timeout": secs(self.upstream_timeout),
            "connect_timeout": secs(self.connect_timeout),
            "pool_size": self.pool_size,
            "pool_idle_timeout": secs(self.pool_idle_timeout),
            "retry_methods": self.retry_methods,
            "shadow_concurrency": self.shadow_concurrency,
            "shadow_queue": self.shadow_queue,
            "shadow_timeout": secs(self.shadow_timeout),
            "prediction_log_queue": self.prediction_log_queue,
            "compare_max_bytes": self.compare_max_bytes,
            "drain_delay": secs(self.drain_delay),
            "drain_timeout": secs(self.drain_timeout),
            "watch_timeout": self.watch_timeout,
            "file_poll_interval": secs(self.file_poll_interval),
            "kubeconfig": path(&self.kubeconfig),
            "log_level": self.log_level.name(),
        })
    }

    /// The URL to reach `revision`: the override if one is configured, else the table's URL.
    pub fn backend_url(&self, revision: &str, url: &str) -> String {
        self.backend_overrides
            .get(revision)
            .cloned()
            .unwrap_or_else(|| url.to_string())
    }
}

/// (field, description) in the order of `--help`.
pub const FIELDS: &[(&str, &str)] = &[
    ("model", "ModelDeployment name (metric label `model`)."),
    ("namespace", "Namespace (metric label `namespace`)."),
    ("revision", "This pod's revision hash."),
    (
        "upstream",
        "URL of the local BentoML server, e.g. http://127.0.0.1:3000.",
    ),
    ("routing_configmap", "ConfigMap holding the routing table."),
    ("routing_file", "Routing table file (local runs, tests)."),
    ("listen_host", "Address to listen on (default 0.0.0.0)."),
    ("port", "Traffic port (default 8080)."),
    ("metrics_port", "Port of /metrics (default 9090)."),
    (
        "workers",
        "Traffic threads, each with its own event loop (default: one per CPU the process may use).",
    ),
    (
        "backend_overrides",
        "revision -> URL replacing the table's URL (JSON object).",
    ),
    (
        "http_proxy",
        "HTTP proxy for canary/shadow traffic (never for the local upstream).",
    ),
    (
        "max_body_bytes",
        "Larger request bodies get 413 (default 10 MiB).",
    ),
    (
        "body_timeout",
        "Seconds a client may take to send a request body (then 408; default 60).",
    ),
    (
        "idle_timeout",
        "Seconds a connection may go without a complete request (default 75).",
    ),
    (
        "upstream_timeout",
        "Seconds per upstream request (504; default 30).",
    ),
    (
        "connect_timeout",
        "Seconds to connect upstream (503; default 2).",
    ),
    ("pool_size", "Pooled upstream connections (default 256)."),
    (
        "pool_idle_timeout",
        "Seconds a pooled upstream connection may idle before it is closed (default 4).",
    ),
    (
        "retry_methods",
        "Methods retried on the local revision when the canary fails.",
    ),
    (
        "shadow_concurrency",
        "Shadow requests in flight at most (default 8).",
    ),
    (
        "shadow_queue",
        "Shadow copies waiting; more are dropped (default 64).",
    ),
    ("shadow_timeout", "Seconds per shadow request (default 10)."),
    (
        "prediction_log_queue",
        "Sampled log lines waiting for the writer (default 1024).",
    ),
    (
        "compare_max_bytes",
        "Largest body compared (default 1 MiB).",
    ),
    (
        "drain_delay",
        "Seconds to keep serving after SIGTERM (default 0).",
    ),
    (
        "drain_timeout",
        "Seconds to let in-flight requests end (default 25).",
    ),
    (
        "watch_timeout",
        "Server-side timeout of one ConfigMap watch (default 300).",
    ),
    (
        "file_poll_interval",
        "Routing file check period in seconds (default 0.2).",
    ),
    ("kubeconfig", "Kubeconfig outside a cluster."),
    ("log_level", "DEBUG, INFO, WARNING or ERROR (default INFO)."),
];

/// What `load` decided: settings, a help text to print (exit 0), or problems (exit 2).
#[derive(Debug)]
pub enum Loaded {
    Ready(Box<Settings>),
    Help(String),
    Invalid(Vec<String>),
}

pub fn help() -> String {
    let mut text = String::from(
        "usage: modeldeploy-sidecar [--<name> VALUE ...]\n\n\
         modeldeploy serving sidecar: canary split, shadow copies, fast guard, metrics. \
         Every flag --x-y can also be given as environment variable MODELDEPLOY_X_Y.\n\noptions:\n\
         \x20 --check-config           Print the settings in force as JSON and exit (2: invalid).\n",
    );
    for (name, description) in FIELDS {
        text.push_str(&format!(
            "  --{:<22} {} [env {}{}]\n",
            name.replace('_', "-"),
            description,
            ENV_PREFIX,
            name.to_ascii_uppercase()
        ));
    }
    text
}

fn http_url(value: &str, what: &str) -> Result<String, String> {
    let Some(rest) = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
    else {
        return Err(format!(
            "{what} must be an http:// or https:// URL, got {}",
            crate::routing::py_str(value)
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority
        .rsplit('@')
        .next()
        .unwrap_or("")
        .split(':')
        .next()
        .unwrap_or("");
    if host.is_empty() {
        return Err(format!(
            "{what} must name a host, got {}",
            crate::routing::py_str(value)
        ));
    }
    Ok(value.trim_end_matches('/').to_string())
}

struct Raw {
    values: HashMap<String, String>,
    origin: HashMap<String, String>,
    problems: Vec<String>,
}

impl Raw {
    fn where_(&self, name: &str) -> String {
        self.origin
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()))
    }

    fn problem(&mut self, name: &str, message: impl std::fmt::Display) {
        let w = self.where_(name);
        self.problems.push(format!("{w}: {message}"));
    }

    fn text(&mut self, name: &str, required: bool) -> Option<String> {
        match self.values.get(name) {
            Some(v) => Some(v.clone()),
            None => {
                if required {
                    self.problem(name, "Field required");
                }
                None
            }
        }
    }

    fn int(&mut self, name: &str, default: i64, lo: i64, hi: i64) -> i64 {
        let Some(text) = self.values.get(name).cloned() else {
            return default;
        };
        match text.trim().parse::<i64>() {
            Err(_) => {
                self.problem(
                    name,
                    "Input should be a valid integer, unable to parse string as an integer",
                );
                default
            }
            Ok(v) if v < lo => {
                self.problem(
                    name,
                    format!("Input should be greater than or equal to {lo}"),
                );
                default
            }
            Ok(v) if v > hi => {
                self.problem(name, format!("Input should be less than or equal to {hi}"));
                default
            }
            Ok(v) => v,
        }
    }

    /// Seconds; `strict` means > 0, else >= 0.
    fn seconds(&mut self, name: &str, default: f64, strict: bool) -> Duration {
        let Some(text) = self.values.get(name).cloned() else {
            return Duration::from_secs_f64(default);
        };
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v < 1e9 => {
                if strict && v <= 0.0 {
                    self.problem(name, "Input should be greater than 0");
                    Duration::from_secs_f64(default)
                } else if v < 0.0 {
                    self.problem(name, "Input should be greater than or equal to 0");
                    Duration::from_secs_f64(default)
                } else {
                    Duration::from_secs_f64(v)
                }
            }
            _ => {
                self.problem(
                    name,
                    "Input should be a valid number, unable to parse string as a number",
                );
                Duration::from_secs_f64(default)
            }
        }
    }
}

/// Settings from `environ` and flags `argv` (without the program name).
pub fn load(argv: &[String], environ: &HashMap<String, String>) -> Loaded {
    let known: BTreeSet<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
    let mut raw = Raw {
        values: HashMap::new(),
        origin: HashMap::new(),
        problems: Vec::new(),
    };
    for name in &known {
        let env = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
        if let Some(v) = environ.get(&env) {
            if !v.is_empty() {
                raw.values.insert(name.to_string(), v.clone());
                raw.origin.insert(name.to_string(), env);
            }
        }
    }
    let mut args = argv.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Loaded::Help(help());
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Loaded::Invalid(vec![format!("unrecognized arguments: {arg}")]);
        };
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (flag, None),
        };
        let name = flag.replace('-', "_");
        if !known.contains(name.as_str()) {
            return Loaded::Invalid(vec![format!("unrecognized arguments: {arg}")]);
        }
        let value = match inline.or_else(|| args.next().cloned()) {
            Some(v) => v,
            None => {
                return Loaded::Invalid(vec![format!("argument --{flag}: expected one argument")])
            }
        };
        raw.values.insert(name.clone(), value);
        raw.origin.insert(name, format!("--{flag}"));
    }

    let model = raw.text("model", true).filter(|v| !v.is_empty());
    let namespace = raw.text("namespace", true);
    let revision = raw.text("revision", true);
    let upstream = match raw.text("upstream", true) {
        Some(u) => match http_url(&u, "upstream") {
            Ok(u) => Some(u),
            Err(e) => {
                raw.problem("upstream", e);
                None
            }
        },
        None => None,
    };
    let routing_configmap = raw.text("routing_configmap", false);
    let routing_file = raw.text("routing_file", false).map(PathBuf::from);
    let listen_host = raw
        .text("listen_host", false)
        .unwrap_or_else(|| "0.0.0.0".to_string());
    let port = raw.int("port", 8080, 1, 65535) as u16;
    let metrics_port = raw.int("metrics_port", 9090, 1, 65535) as u16;
    let workers = raw.int("workers", default_workers() as i64, 1, MAX_WORKERS) as usize;
    let mut backend_overrides = BTreeMap::new();
    if let Some(text) = raw.text("backend_overrides", false) {
        match serde_json::from_str::<serde_json::Value>(&text) {
            Err(e) => raw.problem("backend_overrides", format!("not valid JSON ({e})")),
            Ok(serde_json::Value::Object(map)) => {
                for (rev, url) in map {
                    match url
                        .as_str()
                        .map(|u| http_url(u, &format!("backend_overrides['{rev}']")))
                    {
                        Some(Ok(u)) => {
                            backend_overrides.insert(rev, u);
                        }
                        Some(Err(e)) => raw.problem("backend_overrides", e),
                        None => raw.problem("backend_overrides", "Input should be a valid string"),
                    }
                }
            }
            Ok(_) => raw.problem("backend_overrides", "Input should be a valid dictionary"),
        }
    }
    let http_proxy = match raw.text("http_proxy", false) {
        Some(p) => match http_url(&p, "http_proxy") {
            Ok(p) => Some(p),
            Err(e) => {
                raw.problem("http_proxy", e);
                None
            }
        },
        None => None,
    };
    let max_body_bytes = raw.int("max_body_bytes", 10 * 1024 * 1024, 1, i64::MAX) as u64;
    let body_timeout = raw.seconds("body_timeout", 60.0, true);
    let idle_timeout = raw.seconds("idle_timeout", 75.0, true);
    let upstream_timeout = raw.seconds("upstream_timeout", 30.0, true);
    let connect_timeout = raw.seconds("connect_timeout", 2.0, true);
    let pool_size = raw.int("pool_size", 256, 1, 1 << 20) as usize;
    let pool_idle_timeout = raw.seconds("pool_idle_timeout", 4.0, true);
    let retry_methods = match raw.text("retry_methods", false) {
        Some(text) => text
            .replace(' ', ",")
            .split(',')
            .filter(|m| !m.is_empty())
            .map(|m| m.to_ascii_uppercase())
            .collect(),
        None => ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"]
            .iter()
            .map(|m| m.to_string())
            .collect(),
    };
    let shadow_concurrency = raw.int("shadow_concurrency", 8, 1, 1 << 20) as usize;
    let shadow_queue = raw.int("shadow_queue", 64, 0, 1 << 20) as usize;
    let shadow_timeout = raw.seconds("shadow_timeout", 10.0, true);
    let prediction_log_queue = raw.int("prediction_log_queue", 1024, 1, 1 << 24) as usize;
    let compare_max_bytes = raw.int("compare_max_bytes", 1024 * 1024, 0, i64::MAX) as u64;
    let drain_delay = raw.seconds("drain_delay", 0.0, false);
    let drain_timeout = raw.seconds("drain_timeout", 25.0, false);
    let watch_timeout = raw.int("watch_timeout", 300, 1, 1 << 31) as u64;
    let file_poll_interval = raw.seconds("file_poll_interval", 0.2, true);
    let kubeconfig = raw.text("kubeconfig", false).map(PathBuf::from);
    let log_level = match raw.text("log_level", false) {
        Some(l) => Level::parse(&l).unwrap_or_else(|| {
            raw.problem(
                "log_level",
                format!(
                    "log_level must be DEBUG, INFO, WARNING or ERROR, got {}",
                    crate::routing::py_str(&l)
                ),
            );
            Level::Info
        }),
        None => Level::Info,
    };
    if raw.values.get("model").is_some_and(|v| v.is_empty()) {
        raw.problem("model", "String should have at least 1 character");
    }
    if !raw.problems.is_empty() {
        return Loaded::Invalid(raw.problems);
    }
    if routing_configmap.is_none() == routing_file.is_none() {
        return Loaded::Invalid(vec![
            "configuration: exactly one routing source is required: MODELDEPLOY_ROUTING_CONFIGMAP (in a cluster) \
             or MODELDEPLOY_ROUTING_FILE (local runs)"
                .to_string(),
        ]);
    }
    if port == metrics_port {
        return Loaded::Invalid(vec![format!(
            "configuration: port and metrics_port must differ (both {port})"
        )]);
    }
    let (Some(model), Some(namespace), Some(revision), Some(upstream)) =
        (model, namespace, revision, upstream)
    else {
        return Loaded::Invalid(vec!["configuration: incomplete".to_string()]);
    };
    Loaded::Ready(Box::new(Settings {
        model,
        namespace,
        revision,
        upstream,
        routing_configmap,
        routing_file,
        listen_host,
        port,
        metrics_port,
        workers,
        backend_overrides,
        http_proxy,
        max_body_bytes,
        body_timeout,
        idle_timeout,
        upstream_timeout,
        connect_timeout,
        pool_size,
        pool_idle_timeout,
        retry_methods,
        shadow_concurrency,
        shadow_queue,
        shadow_timeout,
        prediction_log_queue,
        compare_max_bytes,
        drain_delay,
        drain_timeout,
        watch_timeout,
        file_poll_interval,
        kubeconfig,
        log_level,
    }))
}

const MAX_WORKERS: i64 = 1024;

/// One traffic worker per CPU the process may use (its affinity and cgroup CPU quota count).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Seconds the way Python's `{:g}` prints them (`1.5`, `60`).
pub fn fmt_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        let text = format!("{s:.6}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_problem_is_named() {
        let e = env(&[
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_UPSTREAM", "localhost:3000"),
            ("MODELDEPLOY_PORT", "99999"),
        ]);
        let Loaded::Invalid(lines) = load(&[], &e) else {
            panic!("accepted")
        };
        let text = lines.join("\n");
        assert!(
            text.contains("MODELDEPLOY_NAMESPACE: Field required"),
            "{text}"
        );
        assert!(
            text.contains("MODELDEPLOY_UPSTREAM: upstream must be an http:// or https:// URL"),
            "{text}"
        );
        assert!(
            text.contains("MODELDEPLOY_PORT: Input should be less than or equal to 65535"),
            "{text}"
        );
    }

    fn base(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut e = env(&[
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_NAMESPACE", "ml"),
            ("MODELDEPLOY_REVISION", "aaaa"),
            ("MODELDEPLOY_UPSTREAM", "http://127.0.0.1:3000"),
            ("MODELDEPLOY_ROUTING_CONFIGMAP", "iris-routing"),
        ]);
        e.extend(env(extra));
        e
    }

    fn problems(e: &HashMap<String, String>) -> String {
        match load(&[], e) {
            Loaded::Invalid(lines) => lines.join("\n"),
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn the_environment_the_operator_sets() {
        let e = base(&[(
            "MODELDEPLOY_BACKEND_OVERRIDES",
            r#"{"bbbb": "http://127.0.0.1:9001/"}"#,
        )]);
        let Loaded::Ready(s) = load(&[], &e) else {
            panic!("refused")
        };
        assert_eq!(
            (
                s.model.as_str(),
                s.namespace.as_str(),
                s.revision.as_str(),
                s.port,
                s.metrics_port
            ),
            ("iris", "ml", "aaaa", 8080, 9090)
        );
        assert_eq!(
            s.backend_url("bbbb", "http://iris-bbbb.ml.svc:8080"),
            "http://127.0.0.1:9001"
        );
        assert_eq!(
            s.backend_url("cccc", "http://iris-cccc.ml.svc:8080"),
            "http://iris-cccc.ml.svc:8080"
        );
        assert!(!s.retry_methods.contains("POST"), "{:?}", s.retry_methods);
    }

    #[test]
    fn the_summary_names_every_field() {
        let Loaded::Ready(s) = load(&[], &base(&[])) else {
            panic!("refused")
        };
        let summary = s.summary();
        let names: BTreeSet<&str> = summary
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let fields: BTreeSet<&str> = FIELDS.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, fields);
        assert_eq!(summary["port"], 8080);
        assert_eq!(summary["routing_configmap"], "iris-routing");
        assert_eq!(summary["body_timeout"], 60.0);
        assert_eq!(summary["log_level"], "INFO");
    }

    #[test]
    fn exactly_one_routing_source() {
        let both = base(&[("MODELDEPLOY_ROUTING_FILE", "/tmp/r.json")]);
        assert!(problems(&both).contains("exactly one routing source"));
        let mut neither = base(&[]);
        neither.remove("MODELDEPLOY_ROUTING_CONFIGMAP");
        assert!(problems(&neither).contains("exactly one routing source"));
    }

    #[test]
    fn overrides_must_be_a_json_object_of_urls() {
        let text = problems(&base(&[("MODELDEPLOY_BACKEND_OVERRIDES", "{bbbb: 1")]));
        assert!(
            text.contains("MODELDEPLOY_BACKEND_OVERRIDES: not valid JSON"),
            "{text}"
        );
        let text = problems(&base(&[(
            "MODELDEPLOY_BACKEND_OVERRIDES",
            r#"{"bbbb": "127.0.0.1:1"}"#,
        )]));
        assert!(
            text.contains("backend_overrides['bbbb'] must be an http"),
            "{text}"
        );
    }

    #[test]
    fn flags_win_and_defaults_apply() {
        let e = env(&[
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_NAMESPACE", "ml"),
            ("MODELDEPLOY_REVISION", "a"),
            ("MODELDEPLOY_UPSTREAM", "http://127.0.0.1:3000/"),
            ("MODELDEPLOY_ROUTING_FILE", "/tmp/x"),
            ("MODELDEPLOY_PORT", "8081"),
        ]);
        let Loaded::Ready(s) = load(
            &[
                "--port".into(),
                "8082".into(),
                "--retry-methods=post,get".into(),
            ],
            &e,
        ) else {
            panic!("refused")
        };
        assert_eq!(s.port, 8082);
        assert_eq!(s.upstream, "http://127.0.0.1:3000");
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert!(s.retry_methods.contains("POST"));
        assert_eq!(s.file_poll_interval, Duration::from_millis(200));
    }
}
