//! The routing table in force and the per-request decision: local or canary, shadow copy or not.
//!
//! Only the sidecar of the *stable* revision splits traffic. Other sidecars (canary, shadow, a
//! replaced stable) serve everything locally, and so does any sidecar for a request another
//! sidecar already forwarded (loop prevention), or before the first table arrives.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::guard::CanaryGuard;
use crate::metrics::{Metrics, CANARY, LOCAL, SHADOW};
use crate::routing::{Comparison, RoutingTable};
use crate::settings::Settings;
use crate::split::{choose_canary, choose_shadow};

/// Set on requests a sidecar sends to a canary or shadow; the value is the sending revision.
pub const FORWARDED_HEADER: &str = "x-modeldeploy-forwarded";
/// "1" on shadow copies.
pub const SHADOW_HEADER: &str = "x-modeldeploy-shadow";

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub revision: String,
    pub url: String,
    pub route: &'static str,
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub primary: Target,
    pub shadow: Option<Target>,
    pub comparison: Comparison,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TableRejected(pub String);

#[derive(Default)]
struct State {
    table: Option<Arc<RoutingTable>>,
    guard: Option<CanaryGuard>,
    guarded: Option<String>,
}

pub struct Router {
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    pub local: Target,
}

impl Router {
    pub fn new(settings: Arc<Settings>, metrics: Arc<Metrics>) -> Self {
        let local = Target {
            revision: settings.revision.clone(),
            url: settings.upstream.clone(),
            route: LOCAL,
        };
        Router {
            settings,
            metrics,
            state: Mutex::default(),
            local,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn table(&self) -> Option<Arc<RoutingTable>> {
        self.lock().table.clone()
    }

    /// TableRejected if `table` is for another model or namespace.
    pub fn check(&self, table: &RoutingTable) -> Result<(), TableRejected> {
        if table.model != self.settings.model || table.namespace != self.settings.namespace {
            return Err(TableRejected(format!(
                "routing table is for {}/{}, this sidecar serves {}/{}",
                table.namespace, table.model, self.settings.namespace, self.settings.model
            )));
        }
        Ok(())
    }

    pub fn apply(&self, table: RoutingTable) {
        let mut state = self.lock();
        if state.table.as_deref() == Some(&table) {
            return;
        }
        let canary = table.canary.as_ref().map(|c| c.revision.clone());
        if canary != state.guarded {
            if let Some(old) = &state.guarded {
                self.metrics.clear_guard(old);
            }
            state.guard = canary
                .as_ref()
                .map(|_| CanaryGuard::new(table.guard.clone()));
            if let Some(c) = &canary {
                self.metrics.announce_canary(c);
            }
            state.guarded = canary.clone();
        } else if let Some(g) = state.guard.as_mut() {
            g.reconfigure(table.guard.clone());
        }
        if let Some(shadow) = &table.shadow {
            if state.table.as_ref().and_then(|t| t.shadow.as_ref()) != Some(shadow) {
                self.metrics.announce_shadow(&shadow.revision);
            }
        }
        self.metrics.routing_generation.set(table.generation as i64);
        let is_stable = table.stable.revision == self.settings.revision;
        crate::info!(
            "modeldeploy.sidecar.router",
            "routing generation {} in force: stable={} canary={} weight={} shadow={} percent={}{}",
            table.generation,
            table.stable.revision,
            canary.as_deref().unwrap_or("None"),
            table.canary.as_ref().map_or(0.0, |c| c.weight),
            table
                .shadow
                .as_ref()
                .map_or("None", |s| s.revision.as_str()),
            table.shadow.as_ref().map_or(0.0, |s| s.percent),
            if is_stable {
                String::new()
            } else {
                format!(
                    " (this sidecar is {}: serving locally only)",
                    self.settings.revision
                )
            }
        );
        state.table = Some(Arc::new(table));
    }

    /// Where this request goes. `header` looks a request header up by lower-case name.
    pub fn decide<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h [u8]>,
        random: impl Fn() -> f64,
    ) -> Decision {
        let state = self.lock();
        let Some(table) = state.table.as_ref() else {
            return Decision {
                primary: self.local.clone(),
                shadow: None,
                comparison: Comparison::default(),
            };
        };
        let comparison = table.comparison.clone();
        if table.stable.revision != self.settings.revision || header(FORWARDED_HEADER).is_some() {
            return Decision {
                primary: self.local.clone(),
                shadow: None,
                comparison,
            };
        }
        let mut primary = None;
        if let Some(canary) = &table.canary {
            if !state.guard.as_ref().is_some_and(|g| g.tripped()) {
                let key = table.sticky_header.as_deref().and_then(&header);
                if choose_canary(canary.weight, key, &random) {
                    primary = Some(Target {
                        revision: canary.revision.clone(),
                        url: self.settings.backend_url(&canary.revision, &canary.url),
                        route: CANARY,
                    });
                }
            }
        }
        // Shadow answers are compared with stable's, so only requests served locally are copied.
        let mut shadow = None;
        if primary.is_none() {
            if let Some(route) = &table.shadow {
                if route.revision != self.settings.revision && choose_shadow(route.percent, &random)
                {
                    shadow = Some(Target {
                        revision: route.revision.clone(),
                        url: self.settings.backend_url(&route.revision, &route.url),
                        route: SHADOW,
                    });
                }
            }
        }
        Decision {
            primary: primary.unwrap_or_else(|| self.local.clone()),
            shadow,
            comparison,
        }
    }

    /// Feed one canary outcome to the guard; true when it trips (counted in the metrics).
    pub fn record_canary(&self, revision: &str, failed: bool) -> bool {
        let mut state = self.lock();
        if state.guarded.as_deref() != Some(revision) {
            return false;
        }
        let Some(guard) = state.guard.as_mut() else {
            return false;
        };
        let tripped = guard.record(failed);
        if tripped {
            self.metrics.observe_guard_trip(revision);
            crate::warn!(
                "modeldeploy.sidecar.router",
                "fast guard tripped for canary {revision}: {} of the last {} forwarded requests failed \
                 (limit {:.0}%); serving locally until the canary changes",
                guard.failures(),
                guard.observed(),
                guard.settings().max_error_ratio * 100.0
            );
        }
        tripped
    }

    /// The state shown at GET /routing on the metrics port.
    pub fn snapshot(&self) -> Value {
        let state = self.lock();
        let is_stable = state
            .table
            .as_ref()
            .is_some_and(|t| t.stable.revision == self.settings.revision);
        json!({
            "revision": self.settings.revision,
            "isStable": is_stable,
            "table": state.table.as_deref(),
            "guard": state.guard.as_ref().map(|g| json!({
                "canaryRevision": state.guarded,
                "tripped": g.tripped(),
                "observed": g.observed(),
                "failures": g.failures(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::{load, Loaded};

    fn router(revision: &str) -> (Router, Arc<Metrics>) {
        let env: HashMap<String, String> = [
            ("MODELDEPLOY_MODEL", "iris"),
            ("MODELDEPLOY_NAMESPACE", "ml"),
            ("MODELDEPLOY_REVISION", revision),
            ("MODELDEPLOY_UPSTREAM", "http://127.0.0.1:3000"),
            ("MODELDEPLOY_ROUTING_FILE", "/nonexistent"),
            (
                "MODELDEPLOY_BACKEND_OVERRIDES",
                r#"{"bbbb": "http://127.0.0.1:9001"}"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let Loaded::Ready(settings) = load(&[], &env) else {
            panic!("settings refused")
        };
        let metrics = Arc::new(Metrics::new("iris", "ml", revision));
        (Router::new(Arc::new(*settings), metrics.clone()), metrics)
    }

    fn table(extra: Value) -> RoutingTable {
        let mut doc = json!({
            "model": "iris", "namespace": "ml",
            "stable": {"revision": "aaaa", "url": "http://iris-aaaa.ml.svc:8080"},
            "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 100},
            "shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 0},
        });
        for (k, v) in extra.as_object().unwrap() {
            doc[k] = v.clone();
        }
        RoutingTable::from_json(doc.to_string().as_bytes()).unwrap()
    }

    fn no_headers(_: &str) -> Option<&'static [u8]> {
        None
    }

    fn sample(metrics: &Metrics, series: &str) -> Option<String> {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(series))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
    }

    #[test]
    fn no_table_means_local() {
        let (r, _) = router("aaaa");
        assert_eq!(r.decide(no_headers, || 0.0).primary, r.local);
    }

    #[test]
    fn the_stable_sidecar_splits_with_the_overridden_url() {
        let (r, metrics) = router("aaaa");
        r.apply(table(json!({"shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 100}, "generation": 3})));
        let d = r.decide(no_headers, || 0.5);
        assert_eq!(d.primary.route, CANARY);
        assert_eq!(d.primary.url, "http://127.0.0.1:9001");
        assert_eq!(
            sample(
                &metrics,
                r#"modeldeploy_routing_generation{model="iris",namespace="ml",revision="aaaa"}"#
            )
            .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn only_requests_served_by_stable_are_shadowed() {
        // Shadow answers are compared with stable's: requests sent to the canary are not copied.
        let (r, _) = router("aaaa");
        r.apply(table(json!({
            "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 30},
            "shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 100},
        })));
        let canary = r.decide(no_headers, || 0.1);
        assert_eq!(canary.primary.route, CANARY);
        assert!(canary.shadow.is_none());
        let local = r.decide(no_headers, || 0.9);
        assert_eq!(local.primary.route, LOCAL);
        let shadow = local.shadow.expect("a local request is copied at 100%");
        assert_eq!(
            (shadow.revision.as_str(), shadow.url.as_str(), shadow.route),
            ("cccc", "http://iris-cccc.ml.svc:8080", SHADOW)
        );
    }

    #[test]
    fn non_stable_sidecars_serve_locally() {
        for revision in ["bbbb", "cccc"] {
            let (r, _) = router(revision);
            r.apply(table(json!({"shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 100}})));
            let d = r.decide(no_headers, || 0.0);
            assert_eq!(d.primary.route, LOCAL, "{revision}");
            assert_eq!(d.primary.revision, revision);
            assert!(d.shadow.is_none(), "{revision}");
        }
    }

    #[test]
    fn forwarded_requests_are_never_forwarded_again() {
        let (r, _) = router("aaaa");
        r.apply(table(json!({"shadow": {"revision": "cccc", "url": "http://iris-cccc.ml.svc:8080", "percent": 100}})));
        let d = r.decide(
            |name| (name == FORWARDED_HEADER).then_some(b"aaaa".as_slice()),
            || 0.0,
        );
        assert_eq!(d.primary.route, LOCAL);
        assert!(d.shadow.is_none());
    }

    #[test]
    fn a_table_for_another_model_is_refused() {
        let (r, _) = router("aaaa");
        let other = table(json!({"model": "other"}));
        let err = r.check(&other).unwrap_err();
        assert!(err.0.contains("ml/other"), "{}", err.0);
        assert!(r.table().is_none());
    }

    #[test]
    fn the_guard_latches_until_the_canary_changes() {
        let (r, metrics) = router("aaaa");
        let guard = json!({"window": 4, "maxErrorRatio": 0.5, "minRequests": 2});
        r.apply(table(json!({"guard": guard})));
        assert!(!r.record_canary("bbbb", true));
        assert!(r.record_canary("bbbb", true));
        assert_eq!(r.decide(no_headers, || 0.0).primary.route, LOCAL);
        let trips = r#"modeldeploy_guard_trips_total{model="iris",namespace="ml",revision="bbbb"}"#;
        let tripped = r#"modeldeploy_guard_tripped{model="iris",namespace="ml",revision="bbbb"}"#;
        assert_eq!(sample(&metrics, trips).as_deref(), Some("1"));
        assert_eq!(sample(&metrics, tripped).as_deref(), Some("1"));
        // Same canary, new generation and weight: still cut off.
        r.apply(table(json!({
            "guard": guard, "generation": 2,
            "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 50},
        })));
        assert!((0..50).all(|_| r.decide(no_headers, || 0.0).primary.route == LOCAL));
        // The operator removes the canary, then a new canary revision gets a fresh guard.
        r.apply(table(json!({"canary": null, "generation": 3})));
        assert_eq!(sample(&metrics, tripped).as_deref(), Some("0"));
        r.apply(table(json!({
            "generation": 4,
            "canary": {"revision": "dddd", "url": "http://iris-dddd.ml.svc:8080", "weight": 100},
        })));
        assert_eq!(r.decide(no_headers, || 0.0).primary.revision, "dddd");
        assert!(
            !r.record_canary("bbbb", true),
            "outcomes of an old canary are ignored"
        );
    }

    #[test]
    fn the_sticky_header_pins_a_key_whatever_the_random_draw() {
        let (r, _) = router("aaaa");
        r.apply(table(json!({
            "stickyHeader": "X-User",
            "canary": {"revision": "bbbb", "url": "http://iris-bbbb.ml.svc:8080", "weight": 50},
        })));
        let mut routes = std::collections::BTreeSet::new();
        for i in 0..40 {
            let user = format!("user-{i}");
            // The router looks headers up by lower-case name.
            let header = |name: &str| (name == "x-user").then_some(user.as_bytes());
            let first = r.decide(header, || 0.0).primary.route;
            for draw in [0.0, 0.3, 0.99] {
                assert_eq!(r.decide(header, || draw).primary.route, first, "{user}");
            }
            routes.insert(first);
        }
        assert_eq!(routes.len(), 2, "40 keys at 50% land on both revisions");
    }
}
