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
