//! The data contract: request bodies checked against a JSON Schema before the model sees them.
//!
//! The schema is compiled once when a table brings it (an invalid schema rejects the table). The
//! dialect is the schema's `$schema`, draft 2020-12 when absent; `format` is an annotation only;
//! remote `$ref`s are never fetched (the crate is built without its HTTP and file resolvers).
//! Of several errors the most relevant is reported, as Python's `best_match` does: the one whose
//! failing value is shallowest in the document (the first such in validation order).

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::json_pointer::{to_pattern, to_pointer, Step};
use crate::routing::{py_str, ContractSettings, Policy};

pub const MESSAGE_LIMIT: usize = 300;

/// Requests of other methods carry no body to check.
pub fn is_body_method(method: &http::Method) -> bool {
    matches!(method.as_str(), "POST" | "PUT" | "PATCH")
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContractError(pub String);

/// Why a body broke the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// JSON pointer of the failing value, "/" for the whole body.
    pub path: String,
    /// The same with array indices as `*`: the metric label.
    pub field: String,
    pub message: String,
    /// JSON pointer of the failing keyword in the schema ("" when the body is not JSON at all).
    pub schema_path: String,
}

/// A parsed body, or why it is not a JSON document.
pub enum Body {
    Json(Value),
    NotJson(String),
}

/// Parse a request body for the contract and the drift histograms.
pub fn parse_body(body: &[u8]) -> Body {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Body::NotJson(
            "request body is empty, the data contract expects a JSON document".into(),
        );
    }
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(_) => {
            return Body::NotJson(
                "request body is not UTF-8 text, the data contract expects a JSON document".into(),
            )
        }
    };
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Body::Json(v),
        Err(e) if e.to_string().contains("recursion limit") => Body::NotJson(
            "request body is nested too deeply to check against the data contract".into(),
        ),
        Err(e) => {
            let reason = json_reason(&e);
            let mut position = char_position(text, e.line(), e.column());
            if reason == "Expecting value" {
                // Python reports where the value starts; serde_json where it noticed the problem.
                let chars: Vec<char> = text.chars().collect();
                while position > 0
                    && chars
                        .get(position - 1)
                        .is_some_and(|c| c.is_ascii_alphabetic())
                {
                    position -= 1;
                }
            }
            Body::NotJson(format!(
                "request body is not valid JSON ({reason} at position {position})"
            ))
        }
    }
}

fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let reason = text.split(" at line ").next().unwrap_or(&text);
    match reason {
        r if r.starts_with("expected value") || r.starts_with("expected ident") => {
            "Expecting value".into()
        }
        r if r.starts_with("EOF while parsing") => "Expecting value".into(),
        r if r.starts_with("trailing characters") => "Extra data".into(),
        r if r.starts_with("key must be a string") => {
            "Expecting property name enclosed in double quotes".into()
        }
        r if r.starts_with("expected `:`") => "Expecting ':' delimiter".into(),
        r if r.starts_with("expected `,`") => "Expecting ',' delimiter".into(),
        r => {
            let mut c = r.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        }
    }
}

/// Character offset of (line, column) as serde_json reports them (both 1-based).
fn char_position(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(l.chars().count());
        }
        offset += l.chars().count() + 1;
    }
    offset
}

pub fn shorten(text: &str) -> String {
    if text.chars().count() <= MESSAGE_LIMIT {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(MESSAGE_LIMIT - 1).collect();
        cut.push('…');
        cut
    }
}

/// Python's repr of a JSON value (the Python sidecar's messages quote values this way).
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => {
            if n.is_f64() {
                n.as_f64()
                    .map(crate::routing::fmt_num)
                    .unwrap_or_else(|| n.to_string())
            } else {
                n.to_string()
            }
        }
        Value::String(s) => py_str(s),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}: {}", py_str(k), py_repr(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The message in the Python jsonschema wording for the common keywords, else the crate's.
fn message(error: &jsonschema::ValidationError<'_>) -> String {
    let instance = error.instance.as_ref();
    match &error.kind {
        ValidationErrorKind::Type { kind } => match kind {
            jsonschema::error::TypeKind::Single(t) => {
                format!(
                    "{} is not of type {}",
                    py_repr(instance),
                    py_str(&t.to_string())
                )
            }
            jsonschema::error::TypeKind::Multiple(_) => error.to_string(),
        },
        ValidationErrorKind::Required { property } => {
            format!("{} is a required property", py_repr(property))
        }
        ValidationErrorKind::Minimum { limit } => {
            format!(
                "{} is less than the minimum of {}",
                py_repr(instance),
                py_repr(limit)
            )
        }
        ValidationErrorKind::Maximum { limit } => {
            format!(
                "{} is greater than the maximum of {}",
                py_repr(instance),
                py_repr(limit)
            )
        }
        ValidationErrorKind::MinItems { limit } if *limit == 1 => {
            format!("{} should be non-empty", py_repr(instance))
        }
        ValidationErrorKind::MinItems { .. } => format!("{} is too short", py_repr(instance)),
        ValidationErrorKind::MaxItems { .. } => format!("{} is too long", py_repr(instance)),
        ValidationErrorKind::Enum { options } => {
            format!("{} is not one of {}", py_repr(instance), py_repr(options))
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let names: Vec<String> = unexpected.iter().map(|u| py_str(u)).collect();
            let verb = if names.len() == 1 { "was" } else { "were" };
            format!(
                "Additional properties are not allowed ({} {verb} unexpected)",
                names.join(", ")
            )
        }
        _ => error.to_string(),
    }
}

/// A compiled contract.
pub struct Contract {
    pub settings: ContractSettings,
    validator: Validator,
}

impl std::fmt::Debug for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contract")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Contract {
    pub fn new(settings: ContractSettings) -> Result<Contract, ContractError> {
        let schema = Value::Object(settings.schema.clone());
        let validator = jsonschema::options()
            .should_validate_formats(false)
            .build(&schema)
            .map_err(|e| {
                let at = if e.instance_path.as_str().is_empty() {
                    "/"
                } else {
                    e.instance_path.as_str()
                };
                ContractError(format!(
                    "dataPath.contract.schema is not a valid JSON Schema at {at}: {}",
                    shorten(&e.to_string())
                ))
            })?;
        Ok(Contract {
            settings,
            validator,
        })
    }

    pub fn policy(&self) -> Policy {
        self.settings.policy
    }

    /// None when `body` satisfies the schema.
    pub fn check(&self, body: &Body) -> Option<Violation> {
        let document = match body {
            Body::NotJson(reason) => {
                return Some(Violation {
                    path: "/".into(),
                    field: "/".into(),
                    message: reason.clone(),
                    schema_path: String::new(),
                })
            }
            Body::Json(v) => v,
        };
        let mut best: Option<(usize, jsonschema::ValidationError<'_>)> = None;
        for error in self.validator.iter_errors(document) {
            let depth = error.instance_path.as_str().matches('/').count();
            if best.as_ref().is_none_or(|(d, _)| depth < *d) {
                best = Some((depth, error));
            }
        }
        let (_, error) = best?;
        let steps = steps(document, error.instance_path.as_str());
        let schema_path = error.schema_path.as_str().to_string();
        Some(Violation {
            path: to_pointer(&steps),
            field: to_pattern(&steps),
            message: shorten(&message(&error)),
            schema_path: if schema_path == "/" {
                String::new()
            } else {
                schema_path
            },
        })
    }
}

/// The instance path as steps, deciding index vs key by walking the document.
fn steps(document: &Value, pointer: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut current = Some(document);
    for raw in pointer.split('/').skip(1) {
        let segment = raw.replace("~1", "/").replace("~0", "~");
        match current {
            Some(Value::Array(items)) => match segment.parse::<usize>() {
                Ok(i) => {
                    current = items.get(i);
                    out.push(Step::Index(i));
                }
                Err(_) => {
                    current = None;
                    out.push(Step::Key(segment));
                }
            },
            Some(Value::Object(map)) => {
                current = map.get(&segment);
                out.push(Step::Key(segment));
            }
            _ => {
                current = None;
                out.push(Step::Key(segment));
            }
        }
    }
    out
}

/// The 422 body for a violation.
pub fn violation_json(v: &Violation, revision: &str) -> Value {
    let mut m = Map::new();
    m.insert("error".into(), Value::String("contract violation".into()));
    m.insert("path".into(), Value::String(v.path.clone()));
    m.insert("message".into(), Value::String(v.message.clone()));
    m.insert("schemaPath".into(), Value::String(v.schema_path.clone()));
    m.insert("revision".into(), Value::String(revision.into()));
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn contract(schema: Value) -> Contract {
        let Value::Object(schema) = schema else {
            unreachable!()
        };
        Contract::new(ContractSettings {
            schema,
            policy: Policy::Reject,
        })
        .unwrap()
    }

    fn iris() -> Contract {
        contract(json!({
            "type": "object", "required": ["features"],
            "properties": {"features": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}
        }))
    }

    #[test]
    fn violations_say_where_and_why_like_python() {
        let v = iris()
            .check(&Body::Json(json!({"features": [[1, 2, 3], [1, 2, "x"]]})))
            .unwrap();
        assert_eq!(v.path, "/features/1/2");
        assert_eq!(v.field, "/features/*/*");
        assert_eq!(v.message, "'x' is not of type 'number'");
        assert_eq!(v.schema_path, "/properties/features/items/items/type");
        let v = iris().check(&Body::Json(json!({}))).unwrap();
        assert_eq!(
            (v.path.as_str(), v.message.as_str()),
            ("/", "'features' is a required property")
        );
        assert!(iris()
            .check(&Body::Json(json!({"features": [[1.5]]})))
            .is_none());
    }

    #[test]
    fn bodies_that_are_not_json() {
        let Body::NotJson(reason) = parse_body(b"") else {
            panic!()
        };
        assert!(reason.starts_with("request body is empty"));
        let Body::NotJson(reason) = parse_body(b"nope") else {
            panic!()
        };
        assert_eq!(
            reason,
            "request body is not valid JSON (Expecting value at position 0)"
        );
        let Body::NotJson(reason) = parse_body(b"\xff") else {
            panic!()
        };
        assert!(reason.contains("UTF-8"));
        let deep = "[".repeat(100_000);
        assert!(matches!(parse_body(deep.as_bytes()), Body::NotJson(_)));
    }

    fn not_json_reason(body: &[u8]) -> String {
        let violation = iris().check(&parse_body(body)).expect("a violation");
        assert_eq!(
            (violation.path.as_str(), violation.field.as_str()),
            ("/", "/")
        );
        assert_eq!(violation.schema_path, "");
        violation.message
    }

    #[test]
    fn bodies_that_are_not_json_violate_at_the_root_with_the_reason() {
        for (body, reason) in [
            (&b""[..], "request body is empty"),
            (b"  \n", "request body is empty"),
            (
                b"{not json",
                "request body is not valid JSON (Expecting property name enclosed in double quotes at position 1)",
            ),
            (b"\xff\xfe", "request body is not UTF-8 text"),
            (
                br#"{"a" 1}"#,
                "request body is not valid JSON (Expecting ':' delimiter",
            ),
            (
                b"[1 2]",
                "request body is not valid JSON (Expecting ',' delimiter",
            ),
        ] {
            let message = not_json_reason(body);
            assert!(message.starts_with(reason), "{body:?}: {message}");
        }
        let deep = [
            &b"{\"features\": "[..],
            &b"[".repeat(100_000),
            &b"]".repeat(100_000),
            b"}",
        ]
        .concat();
        assert!(not_json_reason(&deep).starts_with("request body is nested too deeply"));
    }

    #[test]
    fn long_messages_are_shortened() {
        let body = format!(r#"{{"features": "{}"}}"#, "y".repeat(5000));
        let v = iris().check(&parse_body(body.as_bytes())).unwrap();
        assert_eq!(v.path, "/features");
        assert_eq!(v.message.chars().count(), MESSAGE_LIMIT);
        assert!(v.message.ends_with('…'), "{}", v.message);
    }

    #[test]
    fn the_schema_dialect_follows_dollar_schema() {
        // draft 4: exclusiveMaximum is a boolean modifier of maximum (a number in 2020-12)
        let draft4 = contract(json!({
            "$schema": "http://json-schema.org/draft-04/schema#",
            "maximum": 5, "exclusiveMaximum": true
        }));
        assert!(draft4.check(&Body::Json(json!(5))).is_some());
        assert!(draft4.check(&Body::Json(json!(4))).is_none());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        let Value::Object(schema) = json!({"type": 12}) else {
            unreachable!()
        };
        assert!(Contract::new(ContractSettings {
            schema,
            policy: Policy::Observe
        })
        .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]
        #[test]
        fn any_body_is_checked_without_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let c = iris();
            let _ = c.check(&parse_body(&body));
        }

        #[test]
        fn any_json_text_is_checked_without_panic(text in "[\\[\\]{}\",:0-9a-z. -]{0,80}") {
            let c = iris();
            let _ = c.check(&parse_body(text.as_bytes()));
        }
    }
}
