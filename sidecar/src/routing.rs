//! The routing table (`routing.json` in ConfigMap `<model>-routing`), parsed and validated.
//!
//! The table is defined once, by the pydantic model `RoutingTable` in Python; this module reads
//! the same JSON with the same rules: camelCase keys (snake_case accepted too), unknown keys
//! ignored, and every problem reported with its dotted field path (`canary.weight: ...`), as
//! pydantic does, so a refused table says why in the log.

use serde::Serialize;
use serde_json::{Map, Value};

/// The largest guard window (outcomes kept in memory per sidecar), as in the contract.
pub const MAX_GUARD_WINDOW: u64 = 10_000;

/// A backend's revision, URL and the rest of its object (for fields only some roles have).
type BackendFields<'v> = (String, String, Option<&'v Map<String, Value>>);

/// One problem in a routing table: the dotted field path and the message.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in one table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableError(pub Vec<FieldError>);

impl std::fmt::Display for TableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lines: Vec<String> = self
            .0
            .iter()
            .map(|e| {
                if e.field.is_empty() {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect();
        write!(f, "{}", lines.join("; "))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backend {
    pub revision: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CanaryRoute {
    pub revision: String,
    pub url: String,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShadowRoute {
    pub revision: String,
    pub url: String,
    pub percent: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareMode {
    Exact,
    Numeric,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub mode: CompareMode,
    pub tolerance: f64,
}

impl Default for Comparison {
    fn default() -> Self {
        Comparison {
            mode: CompareMode::Numeric,
            tolerance: 1e-6,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuardSettings {
    pub window: u64,
    pub max_error_ratio: f64,
    pub min_requests: u64,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            window: 20,
            max_error_ratio: 0.5,
            min_requests: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Reject,
    Observe,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContractSettings {
    pub schema: Map<String, Value>,
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Stdout,
    File,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PredictionLogSettings {
    pub sample_rate: f64,
    pub sink: SinkKind,
    pub path: Option<String>,
    pub max_body_bytes: u64,
    pub redact: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftFeature {
    pub name: String,
    pub path: String,
    pub buckets: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftSettings {
    pub features: Vec<DriftFeature>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataPathSettings {
    pub contract: Option<ContractSettings>,
    pub prediction_log: Option<PredictionLogSettings>,
    pub drift: Option<DriftSettings>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutingTable {
    pub model: String,
    pub namespace: String,
    pub stable: Backend,
    pub canary: Option<CanaryRoute>,
    pub shadow: Option<ShadowRoute>,
    pub sticky_header: Option<String>,
    pub comparison: Comparison,
    pub guard: GuardSettings,
    pub generation: u64,
    pub data_path: DataPathSettings,
}

impl RoutingTable {
    /// Parse the ConfigMap form; every problem is reported with its field path.
    pub fn from_json(text: &[u8]) -> Result<RoutingTable, TableError> {
        let value: Value = serde_json::from_slice(text).map_err(|e| {
            TableError(vec![FieldError {
                field: String::new(),
                message: format!("Invalid JSON: {e}"),
            }])
        })?;
        Self::from_value(&value)
    }

    pub fn from_value(value: &Value) -> Result<RoutingTable, TableError> {
        let mut r = Reader::default();
        let table = r.table(value);
        match table {
            Some(t) if r.errors.is_empty() => Ok(t),
            _ => Err(TableError(r.errors)),
        }
    }
}

/// Collects errors while reading a JSON value into the table types.
#[derive(Default)]
struct Reader {
    errors: Vec<FieldError>,
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn snake(camel: &str) -> String {
    let mut out = String::new();
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A JSON number as f64 (pydantic's float accepts ints and numeric strings in lax mode; the
/// operator writes numbers, so strings are refused here).
fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

fn as_int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i)
            } else {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
            }
        }
        _ => None,
    }
}

fn valid_url(value: &str) -> Result<String, String> {
    let rest = value
        .strip_prefix("http://")
        .or_else(|| value.strip_prefix("https://"))
        .ok_or_else(|| {
            format!(
                "url must start with http:// or https://, got {}",
                py_str(value)
            )
        })?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = authority.rsplit('@').next().unwrap_or("");
    let host = if let Some(stripped) = hostport.strip_prefix('[') {
        stripped.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host.is_empty() {
        return Err(format!("url must name a host, got {}", py_str(value)));
    }
    Ok(value.trim_end_matches('/').to_string())
}

/// Python's repr of a string (single quotes unless the text holds one and no double quote).
pub fn py_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl Reader {
    fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            _ => {
                self.err(
                    path,
                    "Input should be a valid dictionary or instance of the model",
                );
                None
            }
        }
    }

    /// The member `name` (camelCase) or its snake_case alias; None when absent.
    fn member<'v>(m: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
        m.get(name).or_else(|| m.get(&snake(name)))
    }

    fn required<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        name: &str,
        path: &str,
    ) -> Option<&'v Value> {
        let v = Self::member(m, name);
        if v.is_none() {
            self.err(&join(path, name), "Field required");
        }
        v
    }

    fn string(&mut self, v: &Value, path: &str, min_len: usize) -> Option<String> {
        match v {
            Value::String(s) => {
                if s.chars().count() < min_len {
                    self.err(
                        path,
                        format!("String should have at least {min_len} character"),
                    );
                    None
                } else {
                    Some(s.clone())
                }
            }
            _ => {
                self.err(path, "Input should be a valid string");
                None
            }
        }
    }

    fn number(&mut self, v: &Value, path: &str, lo: Option<f64>, hi: Option<f64>) -> Option<f64> {
        let Some(x) = as_number(v) else {
            self.err(path, "Input should be a valid number");
            return None;
        };
        if let Some(lo) = lo {
            if x < lo {
                self.err(
                    path,
                    format!("Input should be greater than or equal to {}", fmt_num(lo)),
                );
                return None;
            }
        }
        if let Some(hi) = hi {
            if x > hi {
                self.err(
                    path,
                    format!("Input should be less than or equal to {}", fmt_num(hi)),
                );
                return None;
            }
        }
        Some(x)
    }

    fn integer(&mut self, v: &Value, path: &str, lo: i64) -> Option<u64> {
        let Some(x) = as_int(v) else {
            self.err(path, "Input should be a valid integer");
            return None;
        };
        if x < lo {
            self.err(
                path,
                format!("Input should be greater than or equal to {lo}"),
            );
            return None;
        }
        Some(x as u64)
    }

    fn opt<'v>(m: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
        match Self::member(m, name) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    fn backend<'v>(&mut self, v: &'v Value, path: &str) -> Option<BackendFields<'v>> {
        let m = self.object(v, path)?;
        let revision = self
            .required(m, "revision", path)
            .and_then(|r| self.string(r, &join(path, "revision"), 1));
        let url = self.required(m, "url", path).and_then(|u| {
            let s = self.string(u, &join(path, "url"), 0)?;
            match valid_url(&s) {
                Ok(url) => Some(url),
                Err(e) => {
                    self.err(&join(path, "url"), e);
                    None
                }
            }
        });
        Some((revision?, url?, Some(m)))
    }

    fn table(&mut self, v: &Value) -> Option<RoutingTable> {
        let m = self.object(v, "")?;
        let model = self
            .required(m, "model", "")
            .and_then(|v| self.string(v, "model", 1));
        let namespace = self
            .required(m, "namespace", "")
            .and_then(|v| self.string(v, "namespace", 1));
        let stable = self
            .required(m, "stable", "")
            .and_then(|v| self.backend(v, "stable"))
            .map(|(revision, url, _)| Backend { revision, url });
        let mut canary = None;
        let mut canary_ok = true;
        if let Some(c) = Self::opt(m, "canary") {
            canary_ok = false;
            if let Some((revision, url, Some(cm))) = self.backend(c, "canary") {
                if let Some(w) = self.required(cm, "weight", "canary") {
                    if let Some(weight) = self.number(w, "canary.weight", Some(0.0), Some(100.0)) {
                        canary = Some(CanaryRoute {
                            revision,
                            url,
                            weight,
                        });
                        canary_ok = true;
                    }
                }
            } else if let Some(cm) = c.as_object() {
                if let Some(w) = Self::member(cm, "weight") {
                    self.number(w, "canary.weight", Some(0.0), Some(100.0));
                } else {
                    self.err("canary.weight", "Field required");
                }
            }
        }
        let mut shadow = None;
        let mut shadow_ok = true;
        if let Some(s) = Self::opt(m, "shadow") {
            shadow_ok = false;
            if let Some((revision, url, Some(sm))) = self.backend(s, "shadow") {
                if let Some(p) = self.required(sm, "percent", "shadow") {
                    if let Some(percent) = self.number(p, "shadow.percent", Some(0.0), Some(100.0))
                    {
                        shadow = Some(ShadowRoute {
                            revision,
                            url,
                            percent,
                        });
                        shadow_ok = true;
                    }
                }
            } else if let Some(sm) = s.as_object() {
                if let Some(p) = Self::member(sm, "percent") {
                    self.number(p, "shadow.percent", Some(0.0), Some(100.0));
                } else {
                    self.err("shadow.percent", "Field required");
                }
            }
        }
        let mut sticky_header = None;
        let mut sticky_ok = true;
        if let Some(h) = Self::opt(m, "stickyHeader") {
            sticky_ok = false;
            if let Some(s) = self.string(h, "stickyHeader", 0) {
                let stripped = s.trim_matches(|c: char| c.is_whitespace());
                if stripped.is_empty()
                    || stripped.contains([' ', ':', '\t', '\r', '\n'])
                    || http::HeaderName::from_bytes(stripped.as_bytes()).is_err()
                {
                    self.err(
                        "stickyHeader",
                        format!(
                            "stickyHeader must be a plain HTTP header name, got {}",
                            py_str(&s)
                        ),
                    );
                } else {
                    sticky_header = Some(stripped.to_ascii_lowercase());
                    sticky_ok = true;
                }
            }
        }
        let comparison = match Self::opt(m, "comparison") {
            None => Some(Comparison::default()),
            Some(c) => self.comparison(c),
        };
        let guard = match Self::opt(m, "guard") {
            None => Some(GuardSettings::default()),
            Some(g) => self.guard(g),
        };
        let generation = match Self::opt(m, "generation") {
            None => Some(0),
            Some(g) => self.integer(g, "generation", 0),
        };
        let data_path = match Self::opt(m, "dataPath") {
            None => Some(DataPathSettings::default()),
            Some(d) => self.data_path(d),
        };
        let (model, namespace, stable) = (model?, namespace?, stable?);
        if !(canary_ok && shadow_ok && sticky_ok) {
            return None;
        }
        if let Some(c) = &canary {
            if c.revision == stable.revision {
                self.err(
                    "canary.revision",
                    format!(
                        "canary revision {} is the stable revision",
                        py_str(&c.revision)
                    ),
                );
                return None;
            }
        }
        Some(RoutingTable {
            model,
            namespace,
            stable,
            canary,
            shadow,
            sticky_header,
            comparison: comparison?,
            guard: guard?,
            generation: generation?,
            data_path: data_path?,
        })
    }

    fn comparison(&mut self, v: &Value) -> Option<Comparison> {
        let m = self.object(v, "comparison")?;
        let mode = match Self::opt(m, "mode") {
            None => Some(CompareMode::Numeric),
            Some(Value::String(s)) if s == "exact" => Some(CompareMode::Exact),
            Some(Value::String(s)) if s == "numeric" => Some(CompareMode::Numeric),
            Some(_) => {
                self.err("comparison.mode", "Input should be 'exact' or 'numeric'");
                None
            }
        };
        let tolerance = match Self::opt(m, "tolerance") {
            None => Some(1e-6),
            Some(t) => self.number(t, "comparison.tolerance", Some(0.0), None),
        };
        Some(Comparison {
            mode: mode?,
            tolerance: tolerance?,
        })
    }

    fn guard(&mut self, v: &Value) -> Option<GuardSettings> {
        let m = self.object(v, "guard")?;
        let window = match Self::opt(m, "window") {
            None => Some(20),
            Some(w) => self.integer(w, "guard.window", 1).and_then(|w| {
                if w > MAX_GUARD_WINDOW {
                    self.err(
                        "guard.window",
                        format!("Input should be less than or equal to {MAX_GUARD_WINDOW}"),
                    );
                    None
                } else {
                    Some(w)
                }
            }),
        };
        let ratio = match Self::opt(m, "maxErrorRatio") {
            None => Some(0.5),
            Some(r) => self.number(r, "guard.maxErrorRatio", Some(0.0), Some(1.0)),
        };
        let min = match Self::opt(m, "minRequests") {
            None => Some(5),
            Some(r) => self.integer(r, "guard.minRequests", 1),
        };
        let (window, max_error_ratio, min_requests) = (window?, ratio?, min?);
        if min_requests > window {
            self.err(
                "guard.minRequests",
                format!("minRequests ({min_requests}) must not exceed window ({window})"),
            );
            return None;
        }
        Some(GuardSettings {
            window,
            max_error_ratio,
            min_requests,
        })
    }

    fn data_path(&mut self, v: &Value) -> Option<DataPathSettings> {
        let m = self.object(v, "dataPath")?;
        let mut ok = true;
        let mut out = DataPathSettings::default();
        if let Some(c) = Self::opt(m, "contract") {
            out.contract = self.contract(c);
            ok &= out.contract.is_some();
        }
        if let Some(p) = Self::opt(m, "predictionLog") {
            out.prediction_log = self.prediction_log(p);
            ok &= out.prediction_log.is_some();
        }
        if let Some(d) = Self::opt(m, "drift") {
            out.drift = self.drift(d);
            ok &= out.drift.is_some();
        }
        ok.then_some(out)
    }

    fn contract(&mut self, v: &Value) -> Option<ContractSettings> {
        let path = "dataPath.contract";
        let m = self.object(v, path)?;
        let schema = match self.required(m, "schema", path)? {
            Value::Object(s) => Some(s.clone()),
            _ => {
                self.err(&join(path, "schema"), "Input should be a valid dictionary");
                None
            }
        };
        let policy = match Self::opt(m, "policy") {
            None => Some(Policy::Observe),
            Some(Value::String(s)) if s == "reject" => Some(Policy::Reject),
            Some(Value::String(s)) if s == "observe" => Some(Policy::Observe),
            Some(_) => {
                self.err(
                    &join(path, "policy"),
                    "Input should be 'reject' or 'observe'",
                );
                None
            }
        };
        let settings = ContractSettings {
            schema: schema?,
            policy: policy?,
        };
        // A schema that is not valid JSON Schema refuses the whole table (never a silent no-check).
        if let Err(e) = crate::contract::Contract::new(settings.clone()) {
            self.err(&join(path, "schema"), e.0);
            return None;
        }
        Some(settings)
    }

    fn prediction_log(&mut self, v: &Value) -> Option<PredictionLogSettings> {
        let path = "dataPath.predictionLog";
        let m = self.object(v, path)?;
        let rate = self
            .required(m, "sampleRate", path)
            .and_then(|r| self.number(r, &join(path, "sampleRate"), Some(0.0), Some(1.0)));
        let sink = match Self::opt(m, "sink") {
            None => Some(SinkKind::Stdout),
            Some(Value::String(s)) if s == "stdout" => Some(SinkKind::Stdout),
            Some(Value::String(s)) if s == "file" => Some(SinkKind::File),
            Some(_) => {
                self.err(&join(path, "sink"), "Input should be 'stdout' or 'file'");
                None
            }
        };
        let file = match Self::opt(m, "path") {
            None => Some(None),
            Some(p) => self.string(p, &join(path, "path"), 0).map(Some),
        };
        let max = match Self::opt(m, "maxBodyBytes") {
            None => Some(4096),
            Some(b) => self.integer(b, &join(path, "maxBodyBytes"), 0),
        };
        let redact = match Self::opt(m, "redact") {
            None => Some(Vec::new()),
            Some(Value::Array(items)) => {
                let mut names = Vec::new();
                let mut good = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(item, &format!("{path}.redact.{i}"), 0) {
                        Some(s) => names.push(s),
                        None => good = false,
                    }
                }
                good.then_some(names)
            }
            Some(_) => {
                self.err(&join(path, "redact"), "Input should be a valid tuple");
                None
            }
        };
        let (sample_rate, sink, file, max_body_bytes, redact) =
            (rate?, sink?, file?, max?, redact?);
        if sink == SinkKind::File && file.as_deref().unwrap_or("").is_empty() {
            self.err(
                &join(path, "path"),
                "predictionLog.path is required when sink is file",
            );
            return None;
        }
        Some(PredictionLogSettings {
            sample_rate,
            sink,
            path: file,
            max_body_bytes,
            redact,
        })
    }

    fn drift(&mut self, v: &Value) -> Option<DriftSettings> {
        let path = "dataPath.drift";
        let m = self.object(v, path)?;
        let items = match self.required(m, "features", path)? {
            Value::Array(items) => items,
            _ => {
                self.err(&join(path, "features"), "Input should be a valid tuple");
                return None;
            }
        };
        if items.is_empty() {
            self.err(
                &join(path, "features"),
                "Tuple should have at least 1 item after validation, not 0",
            );
            return None;
        }
        let mut features: Vec<DriftFeature> = Vec::new();
        let mut good = true;
        for (i, item) in items.iter().enumerate() {
            let fpath = format!("{path}.features.{i}");
            match self.feature(item, &fpath) {
                Some(f) if features.iter().any(|seen| seen.name == f.name) => {
                    self.err(
                        &join(&fpath, "name"),
                        format!("feature name {} appears twice", py_str(&f.name)),
                    );
                    good = false;
                }
                Some(f) => features.push(f),
                None => good = false,
            }
        }
        good.then_some(DriftSettings { features })
    }

    fn feature(&mut self, v: &Value, path: &str) -> Option<DriftFeature> {
        let m = self.object(v, path)?;
        let name = self
            .required(m, "name", path)
            .and_then(|n| self.string(n, &join(path, "name"), 1));
        let pointer = self
            .required(m, "path", path)
            .and_then(|p| self.string(p, &join(path, "path"), 1))
            .and_then(|p| match crate::json_pointer::parse_pointer(&p) {
                Ok(_) => Some(p),
                Err(e) => {
                    self.err(&join(path, "path"), e.0);
                    None
                }
            });
        let bpath = join(path, "buckets");
        let buckets = match self.required(m, "buckets", path) {
            None => None,
            Some(Value::Array(items)) if !items.is_empty() => {
                let values: Option<Vec<f64>> = items.iter().map(as_number).collect();
                match values {
                    None => {
                        self.err(&bpath, "Input should be a valid number");
                        None
                    }
                    Some(values) => {
                        let shown = format!(
                            "[{}]",
                            values
                                .iter()
                                .map(|b| fmt_num(*b))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        if values.iter().any(|b| !b.is_finite()) {
                            self.err(
                                &bpath,
                                format!(
                                    "buckets must be finite numbers (+Inf is implied), got {shown}"
                                ),
                            );
                            None
                        } else if values.windows(2).any(|w| w[1] <= w[0]) {
                            self.err(
                                &bpath,
                                format!("buckets must be strictly increasing, got {shown}"),
                            );
                            None
                        } else {
                            Some(values)
                        }
                    }
                }
            }
            Some(Value::Array(_)) => {
                self.err(
                    &bpath,
                    "Tuple should have at least 1 item after validation, not 0",
                );
                None
            }
            Some(_) => {
                self.err(&bpath, "Input should be a valid tuple");
                None
            }
        };
        Some(DriftFeature {
            name: name?,
            path: pointer?,
            buckets: buckets?,
        })
    }
}

/// A float the way Python prints it (`10.0`, `0.5`, `1e-06`).
pub fn fmt_num(x: f64) -> String {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RoutingTable, TableError> {
        RoutingTable::from_json(text.as_bytes())
    }

    const BASE: &str =
        r#"{"model":"iris","namespace":"ml","stable":{"revision":"a","url":"http://a:8080/"}"#;

    #[test]
    fn minimal_table_gets_the_defaults() {
        let t = parse(&format!("{BASE}}}")).unwrap();
        assert_eq!(t.stable.url, "http://a:8080");
        assert_eq!(t.guard, GuardSettings::default());
        assert_eq!(t.generation, 0);
        assert!(t.canary.is_none());
    }

    #[test]
    fn unknown_keys_are_ignored_and_snake_case_accepted() {
        let t = parse(&format!(r#"{BASE},"future":1,"sticky_header":"X-Key"}}"#)).unwrap();
        assert_eq!(t.sticky_header.as_deref(), Some("x-key"));
    }

    #[test]
    fn errors_name_their_field() {
        let e = parse(&format!(
            r#"{BASE},"canary":{{"revision":"b","url":"http://b","weight":101}}}}"#
        ))
        .unwrap_err();
        assert_eq!(e.0[0].field, "canary.weight");
        let e = parse(&format!(
            r#"{BASE},"canary":{{"revision":"a","url":"http://b","weight":1}}}}"#
        ))
        .unwrap_err();
        assert!(e.to_string().contains("is the stable revision"));
        let e = parse(&format!(
            r#"{BASE},"guard":{{"window":3,"minRequests":4}}}}"#
        ))
        .unwrap_err();
        assert_eq!(e.0[0].field, "guard.minRequests");
        let e = parse(&format!(r#"{BASE},"stickyHeader":"a b"}}"#)).unwrap_err();
        assert_eq!(e.0[0].field, "stickyHeader");
        let e = parse(r#"{"model":"iris","stable":{"revision":"a","url":"ftp://x"}}"#).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["namespace", "stable.url"]);
    }
}
