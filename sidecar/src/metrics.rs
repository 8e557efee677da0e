//! The sidecar's Prometheus metrics. Every name, label and bucket is the same as the Python
//! sidecar's: the operator's PromQL, the chart's rules and users' dashboards depend on them.
//!
//! `revision` is the revision the series is about: for requests the one that answered (route
//! `local` or `canary`), for shadow results the shadow, for the guard the canary, for the rest
//! this sidecar's own.

use std::collections::HashMap;
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::compare::Verdict;

pub const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub const LOCAL: &str = "local";
pub const CANARY: &str = "canary";
pub const SHADOW: &str = "shadow";

/// Distinct `field` values of the violations counter; later new ones count as OTHER_FIELD.
pub const CONTRACT_FIELDS_MAX: usize = 50;
pub const OTHER_FIELD: &str = "other";

/// The status a client that went away is counted with (nginx's convention): not the revision's error.
pub const CLIENT_CLOSED: u16 = 499;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Base {
    pub model: String,
    pub namespace: String,
    pub revision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub model: String,
    pub namespace: String,
    pub revision: String,
    pub route: String,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub model: String,
    pub namespace: String,
    pub revision: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub model: String,
    pub namespace: String,
    pub revision: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FieldLabels {
    pub model: String,
    pub namespace: String,
    pub revision: String,
    pub field: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The request series of one (revision, route), resolved once: a label set built and hashed per
/// request costs five allocations and two family lookups. The handles share the families' series.
struct RouteSeries {
    duration: Histogram,
    codes: Vec<(u16, Counter)>,
}

/// Resolved request series by revision, then route. Like the families themselves, it keeps every
/// series ever observed.
#[derive(Default)]
struct RequestSeries(RwLock<HashMap<String, Vec<(&'static str, RouteSeries)>>>);

impl RequestSeries {
    fn read(
        &self,
    ) -> std::sync::RwLockReadGuard<'_, HashMap<String, Vec<(&'static str, RouteSeries)>>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached handles, if this (revision, route, code) was seen before.
    fn get(&self, revision: &str, route: &str, code: u16) -> Option<(Counter, Histogram)> {
        let map = self.read();
        let (_, series) = map.get(revision)?.iter().find(|(r, _)| *r == route)?;
        let (_, counter) = series.codes.iter().find(|(c, _)| *c == code)?;
        Some((counter.clone(), series.duration.clone()))
    }

    fn insert(
        &self,
        revision: &str,
        route: &'static str,
        code: u16,
        counter: &Counter,
        duration: &Histogram,
    ) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        let routes = map.entry(revision.to_string()).or_default();
        let index = match routes.iter().position(|(r, _)| *r == route) {
            Some(i) => i,
            None => {
                routes.push((
                    route,
                    RouteSeries {
                        duration: duration.clone(),
                        codes: Vec::new(),
                    },
                ));
                routes.len() - 1
            }
        };
        let codes = &mut routes[index].1.codes;
        if !codes.iter().any(|(c, _)| *c == code) {
            codes.push((code, counter.clone()));
        }
    }
}

pub struct Metrics {
    model: String,
    namespace: String,
    own: String,
    pub registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
    request_series: RequestSeries,
    pub inflight: Gauge,
    shadow: Family<ResultLabels, Counter>,
    guard_trips: Family<Base, Counter>,
    guard_tripped: Family<Base, Gauge>,
    pub routing_generation: Gauge,
    pub routing_errors: Counter,
    contract_checks: Family<ResultLabels, Counter>,
    contract_violations: Family<FieldLabels, Counter>,
    violation_fields: Mutex<std::collections::HashSet<String>>,
    pub prediction_log_lines: Counter,
    pub prediction_log_dropped: Counter,
    pub prediction_log_pending: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub fn new(model: &str, namespace: &str, revision: &str) -> Self {
        let mut registry = Registry::default();
        let own = Base {
            model: model.into(),
            namespace: namespace.into(),
            revision: revision.into(),
        };
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "modeldeploy_requests",
            "Requests answered, by the revision that answered, route and HTTP status code.",
            requests.clone(),
        );
        let duration: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "modeldeploy_request_duration_seconds",
            "Time from request received to response ready, by answering revision and route.",
            duration.clone(),
        );
        let inflight_family = Family::<Base, Gauge>::default();
        registry.register(
            "modeldeploy_inflight_requests",
            "Requests being handled by this sidecar.",
            inflight_family.clone(),
        );
        let inflight = inflight_family.get_or_create(&own).clone();
        let shadow = Family::<ResultLabels, Counter>::default();
        registry.register(
            "modeldeploy_shadow_requests",
            "Shadow copies by result: match|mismatch with the primary response, error, dropped.",
            shadow.clone(),
        );
        let guard_trips = Family::<Base, Counter>::default();
        registry.register(
            "modeldeploy_guard_trips",
            "Times the fast guard stopped traffic to a failing canary revision.",
            guard_trips.clone(),
        );
        let guard_tripped = Family::<Base, Gauge>::default();
        registry.register(
            "modeldeploy_guard_tripped",
            "1 while the fast guard keeps traffic away from this canary revision.",
            guard_tripped.clone(),
        );
        let generation_family = Family::<Base, Gauge>::default();
        registry.register(
            "modeldeploy_routing_generation",
            "Generation of the routing table in force in this sidecar (-1: none yet).",
            generation_family.clone(),
        );
        let routing_generation = generation_family.get_or_create(&own).clone();
        routing_generation.set(-1);
        let errors_family = Family::<Base, Counter>::default();
        registry.register(
            "modeldeploy_routing_errors",
            "Routing tables rejected (invalid JSON or schema) or watch failures.",
            errors_family.clone(),
        );
        let routing_errors = errors_family.get_or_create(&own).clone();
        let contract_checks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "modeldeploy_contract_checks",
            "Request bodies checked against the data contract, by result: pass or violation.",
            contract_checks.clone(),
        );
        let contract_violations = Family::<FieldLabels, Counter>::default();
        registry.register(
            "modeldeploy_contract_violations",
            format!(
                "Data contract violations by field: the JSON pointer of the failing value, array indices \
                 as *, '/' for the body itself ({CONTRACT_FIELDS_MAX} values at most, then '{OTHER_FIELD}')."
            ),
            contract_violations.clone(),
        );
        let lines_family = Family::<Base, Counter>::default();
        registry.register(
            "modeldeploy_prediction_log_lines",
            "Prediction log lines written.",
            lines_family.clone(),
        );
        let dropped_family = Family::<Base, Counter>::default();
        registry.register(
            "modeldeploy_prediction_log_dropped",
            "Sampled prediction log lines dropped (writer queue full, or the write failed).",
            dropped_family.clone(),
        );
        let pending_family = Family::<Base, Gauge>::default();
        registry.register(
            "modeldeploy_prediction_log_pending",
            "Sampled prediction log lines queued or being written.",
            pending_family.clone(),
        );
        let prediction_log_lines = lines_family.get_or_create(&own).clone();
        let prediction_log_dropped = dropped_family.get_or_create(&own).clone();
        let prediction_log_pending = pending_family.get_or_create(&own).clone();
        Metrics {
            model: model.into(),
            namespace: namespace.into(),
            own: revision.into(),
            requests,
            duration,
            request_series: RequestSeries::default(),
            inflight,
            shadow,
            guard_trips,
            guard_tripped,
            routing_generation,
            routing_errors,
            contract_checks,
            contract_violations,
            violation_fields: Mutex::new(Default::default()),
            prediction_log_lines,
            prediction_log_dropped,
            prediction_log_pending,
            registry,
        }
    }

    fn base(&self, revision: &str) -> Base {
        Base {
            model: self.model.clone(),
            namespace: self.namespace.clone(),
            revision: revision.into(),
        }
    }

    pub fn observe_request(&self, revision: &str, route: &'static str, code: u16, seconds: f64) {
        if let Some((counter, duration)) = self.request_series.get(revision, route, code) {
            counter.inc();
            duration.observe(seconds);
            return;
        }
        let labels = RequestLabels {
            model: self.model.clone(),
            namespace: self.namespace.clone(),
            revision: revision.into(),
            route: route.into(),
            code: code.to_string(),
        };
        let counter = self.requests.get_or_create(&labels).clone();
        let route_labels = RouteLabels {
            model: labels.model,
            namespace: labels.namespace,
            revision: labels.revision,
            route: labels.route,
        };
        let duration = self.duration.get_or_create(&route_labels).clone();
        counter.inc();
        duration.observe(seconds);
        self.request_series
            .insert(revision, route, code, &counter, &duration);
    }

    fn result(&self, revision: &str, result: &str) -> ResultLabels {
        ResultLabels {
            model: self.model.clone(),
            namespace: self.namespace.clone(),
            revision: revision.into(),
            result: result.into(),
        }
    }

    /// Create the contract check series at 0 once a table brings a contract.
    pub fn announce_contract(&self) {
        for result in ["pass", "violation"] {
            let _ = self
                .contract_checks
                .get_or_create(&self.result(&self.own, result));
        }
    }

    /// One contract check of a body served here: None when it passed, else the failing field.
    pub fn observe_contract(&self, violation_field: Option<&str>) {
        let Some(field) = violation_field else {
            self.contract_checks
                .get_or_create(&self.result(&self.own, "pass"))
                .inc();
            return;
        };
        self.contract_checks
            .get_or_create(&self.result(&self.own, "violation"))
            .inc();
        let field = {
            let mut seen = self
                .violation_fields
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.contains(field) {
                field.to_string()
            } else if seen.len() >= CONTRACT_FIELDS_MAX {
                OTHER_FIELD.to_string()
            } else {
                seen.insert(field.to_string());
                field.to_string()
            }
        };
        let labels = FieldLabels {
            model: self.model.clone(),
            namespace: self.namespace.clone(),
            revision: self.own.clone(),
            field,
        };
        self.contract_violations.get_or_create(&labels).inc();
    }

    /// Create the guard series at 0 for a new canary, so rate() and absence checks work.
    pub fn announce_canary(&self, canary: &str) {
        let _ = self.guard_trips.get_or_create(&self.base(canary));
        self.guard_tripped.get_or_create(&self.base(canary)).set(0);
    }

    /// Create the shadow series at 0 for a new shadow revision.
    pub fn announce_shadow(&self, shadow: &str) {
        for verdict in Verdict::ALL {
            let _ = self
                .shadow
                .get_or_create(&self.result(shadow, verdict.as_str()));
        }
    }

    pub fn observe_shadow(&self, shadow: &str, verdict: Verdict) {
        self.shadow
            .get_or_create(&self.result(shadow, verdict.as_str()))
            .inc();
    }

    pub fn observe_guard_trip(&self, canary: &str) {
        self.guard_trips.get_or_create(&self.base(canary)).inc();
        self.guard_tripped.get_or_create(&self.base(canary)).set(1);
    }

    pub fn clear_guard(&self, canary: &str) {
        self.guard_tripped.get_or_create(&self.base(canary)).set(0);
    }

    /// The exposition (OpenMetrics text).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

pub type SharedMetrics = Arc<Metrics>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_field_labels_are_capped() {
        let m = Metrics::new("iris", "ml", "aaaa");
        for i in 0..60 {
            m.observe_contract(Some(&format!("/f{i}")));
        }
        m.observe_contract(Some("/f3"));
        let text = m.encode();
        let fields: std::collections::BTreeMap<String, String> = text
            .lines()
            .filter(|l| l.starts_with("modeldeploy_contract_violations_total{"))
            .map(|l| {
                let field = l
                    .split("field=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap();
                (field.to_string(), l.rsplit(' ').next().unwrap().to_string())
            })
            .collect();
        assert_eq!(fields.len(), CONTRACT_FIELDS_MAX + 1, "{fields:?}");
        assert_eq!(fields.get(OTHER_FIELD).map(String::as_str), Some("10"));
        assert_eq!(fields.get("/f3").map(String::as_str), Some("2"));
        assert!(fields.contains_key("/f49") && !fields.contains_key("/f50"));
    }

    #[test]
    fn names_labels_and_buckets_are_the_python_sidecars() {
        let m = Metrics::new("iris", "ml", "aaaa");
        m.observe_request("aaaa", LOCAL, 200, 0.003);
        m.announce_shadow("cccc");
        m.announce_canary("bbbb");
        m.observe_contract(Some("/features/*/2"));
        let text = m.encode();
        for expected in [
            r#"modeldeploy_requests_total{model="iris",namespace="ml",revision="aaaa",route="local",code="200"} 1"#,
            r#"modeldeploy_request_duration_seconds_bucket{le="0.005",model="iris",namespace="ml",revision="aaaa",route="local"} 1"#,
            r#"modeldeploy_request_duration_seconds_bucket{le="30.0","#,
            r#"modeldeploy_request_duration_seconds_bucket{le="+Inf","#,
            r#"modeldeploy_routing_generation{model="iris",namespace="ml",revision="aaaa"} -1"#,
            r#"modeldeploy_shadow_requests_total{model="iris",namespace="ml",revision="cccc",result="dropped"} 0"#,
            r#"modeldeploy_guard_tripped{model="iris",namespace="ml",revision="bbbb"} 0"#,
            r#"modeldeploy_guard_trips_total{model="iris",namespace="ml",revision="bbbb"} 0"#,
            r#"modeldeploy_contract_violations_total{model="iris",namespace="ml",revision="aaaa",field="/features/*/2"} 1"#,
            "modeldeploy_inflight_requests{",
            "modeldeploy_routing_errors_total{",
            "modeldeploy_prediction_log_lines_total{",
            "modeldeploy_prediction_log_dropped_total{",
            "modeldeploy_prediction_log_pending{",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }

    #[test]
    fn cached_request_series_count_in_the_same_series() {
        let m = Metrics::new("iris", "ml", "aaaa");
        for _ in 0..3 {
            m.observe_request("aaaa", LOCAL, 200, 0.003);
        }
        m.observe_request("aaaa", LOCAL, 503, 0.2);
        m.observe_request("bbbb", CANARY, 200, 0.003);
        m.observe_request("bbbb", CANARY, 200, 0.003);
        let text = m.encode();
        for expected in [
            r#"modeldeploy_requests_total{model="iris",namespace="ml",revision="aaaa",route="local",code="200"} 3"#,
            r#"modeldeploy_requests_total{model="iris",namespace="ml",revision="aaaa",route="local",code="503"} 1"#,
            r#"modeldeploy_requests_total{model="iris",namespace="ml",revision="bbbb",route="canary",code="200"} 2"#,
            r#"modeldeploy_request_duration_seconds_count{model="iris",namespace="ml",revision="aaaa",route="local"} 4"#,
            r#"modeldeploy_request_duration_seconds_count{model="iris",namespace="ml",revision="bbbb",route="canary"} 2"#,
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }
}
