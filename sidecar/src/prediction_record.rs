//! One prediction log line: trace id, redaction, size cap and the JSON line itself (pure).
//!
//! JSON bodies are logged as JSON with every member named in `redact` replaced by "[REDACTED]" at
//! any depth. A body whose (redacted, compact) JSON exceeds `maxBodyBytes` is logged as a string
//! of its first `maxBodyBytes` bytes and the line says `"truncated": true`; redaction happens
//! first, so a cut never exposes a redacted value. Other bodies are logged as text, capped alike.

use std::time::SystemTime;

use serde_json::{Map, Value};

pub const REDACTED: &str = "[REDACTED]";
pub const TOO_DEEP: &str = "[NOT LOGGED: nested too deeply to redact]";
pub const REQUEST_ID_MAX: usize = 200;

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The trace id of a W3C traceparent (None when malformed, version ff or all-zero).
pub fn traceparent_id(value: &str) -> Option<String> {
    let v = value.trim().to_ascii_lowercase();
    let bytes = v.as_bytes();
    if bytes.len() < 55 || v.starts_with("ff") {
        return None;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
    if !dashes
        || ![version, trace, parent, flags]
            .iter()
            .all(|p| is_lower_hex(p))
    {
        return None;
    }
    if trace.bytes().all(|b| b == b'0') {
        return None;
    }
    Some(trace.to_string())
}

/// (trace id, generated?): traceparent's trace-id, else x-request-id, else a new random id.
pub fn trace_id(traceparent: Option<&str>, request_id: Option<&str>) -> (String, bool) {
    if let Some(id) = traceparent.and_then(traceparent_id) {
        return (id, false);
    }
    if let Some(rid) = request_id.map(str::trim).filter(|r| !r.is_empty()) {
        return (rid.chars().take(REQUEST_ID_MAX).collect(), false);
    }
    let id: u128 = rand::random();
    // A version 4 UUID's layout, as 32 hex digits.
    let id = (id & !(0xF << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    (format!("{id:032x}"), true)
}

/// A copy of the JSON value with members named in `names` replaced by REDACTED, at any depth.
pub fn redact(value: &Value, names: &[String]) -> Value {
    if names.is_empty() {
        return value.clone();
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if names.iter().any(|n| n == k) {
                        Value::String(REDACTED.into())
                    } else {
                        redact(v, names)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| redact(i, names)).collect()),
        other => other.clone(),
    }
}

/// The first `limit` bytes as text, not splitting a UTF-8 sequence.
fn cut(data: &[u8], limit: usize) -> String {
    let mut end = limit.min(data.len());
    while end > 0 && std::str::from_utf8(&data[..end]).is_err() {
        end -= 1;
    }
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// (value for the log line, truncated?) for a body (None: not available).
pub fn loggable_body(body: Option<&[u8]>, names: &[String], limit: usize) -> (Value, bool) {
    let Some(body) = body else {
        return (Value::Null, false);
    };
    if body.is_empty() {
        return (Value::String(String::new()), false);
    }
    let document: Value = match serde_json::from_slice(body) {
        Ok(d) => d,
        Err(e) if e.to_string().contains("recursion limit") => {
            return (Value::String(TOO_DEEP.into()), true)
        }
        Err(_) => {
            let text = String::from_utf8_lossy(body).into_owned();
            return if text.len() <= limit {
                (Value::String(text), false)
            } else {
                (Value::String(cut(text.as_bytes(), limit)), true)
            };
        }
    };
    if body.len() <= limit && names.is_empty() {
        return (document, false);
    }
    let cleaned = redact(&document, names);
    let serialised = serde_json::to_vec(&cleaned).unwrap_or_default();
    if serialised.len() <= limit {
        (cleaned, false)
    } else {
        (Value::String(cut(&serialised, limit)), true)
    }
}

/// What the request path hands over; the writer turns it into a line.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub arrived: SystemTime,
    pub revision: String,
    pub route: &'static str,
    pub latency_seconds: f64,
    pub status: u16,
    pub trace_id: String,
    pub request: bytes::Bytes,
    pub response: Option<bytes::Bytes>,
}

/// The JSON line (with its newline) for one sampled prediction.
pub fn format_line(
    p: &Prediction,
    model: &str,
    namespace: &str,
    names: &[String],
    limit: usize,
) -> String {
    let (request, request_cut) = loggable_body(Some(&p.request), names, limit);
    let (response, response_cut) = loggable_body(p.response.as_deref(), names, limit);
    let latency = (p.latency_seconds * 1000.0 * 1000.0).round() / 1000.0;
    let mut m = Map::new();
    m.insert(
        "ts".into(),
        Value::String(crate::timefmt::rfc3339(p.arrived)),
    );
    m.insert("model".into(), Value::String(model.into()));
    m.insert("namespace".into(), Value::String(namespace.into()));
    m.insert("revision".into(), Value::String(p.revision.clone()));
    m.insert("route".into(), Value::String(p.route.into()));
    m.insert(
        "latencyMs".into(),
        serde_json::Number::from_f64(latency)
            .map(Value::Number)
            .unwrap_or(Value::Null),
    );
    m.insert("status".into(), Value::from(p.status));
    m.insert("traceId".into(), Value::String(p.trace_id.clone()));
    m.insert("request".into(), request);
    m.insert("response".into(), response);
    m.insert("truncated".into(), Value::Bool(request_cut || response_cut));
    let mut line = serde_json::to_string(&Value::Object(m)).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn trace_ids() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id(Some(tp), Some("r")),
            ("4bf92f3577b34da6a3ce929d0e0e4736".into(), false)
        );
        assert_eq!(
            trace_id(
                Some("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                Some("r")
            )
            .0,
            "r"
        );
        assert!(
            trace_id(
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                None
            )
            .1
        );
        assert_eq!(
            trace_id(Some("garbage"), Some(&"x".repeat(300))).0.len(),
            200
        );
        let (id, generated) = trace_id(None, None);
        assert!(generated && id.len() == 32 && is_lower_hex(&id));
    }

    #[test]
    fn redaction_happens_before_the_cut() {
        let names = vec!["ssn".to_string()];
        let body = br#"{"ssn": "123-45-6789", "features": [[1, 2, 3, 4]]}"#;
        let (v, cut) = loggable_body(Some(body), &names, 4096);
        assert_eq!(v, json!({"ssn": REDACTED, "features": [[1, 2, 3, 4]]}));
        assert!(!cut);
        let (v, cut) = loggable_body(Some(body), &names, 12);
        assert!(cut);
        // Members are written in sorted order (serde_json's map), the redacted one included.
        assert_eq!(v, json!("{\"features\":"));
        let (v, cut) = loggable_body(Some(body), &names, 40);
        assert!(cut);
        assert_eq!(v, json!("{\"features\":[[1,2,3,4]],\"ssn\":\"[REDACTED"));
        let (v, cut) = loggable_body(Some("é".repeat(10).as_bytes()), &[], 3);
        assert!(cut);
        assert_eq!(v, json!("é"));
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    #[test]
    fn trace_id_sources() {
        let upper = format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase());
        assert_eq!(
            trace_id(Some(&upper), Some("r1")),
            (TRACE.to_string(), false)
        );
        let zero = format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32));
        assert_eq!(trace_id(Some(&zero), Some("r1")), ("r1".into(), false));
        assert_eq!(
            trace_id(Some("garbage"), Some(" r3 ")),
            ("r3".into(), false)
        );
        let first = trace_id(None, None).0;
        assert_ne!(trace_id(None, None).0, first, "generated ids differ");
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn redaction_at_any_depth_names_members_only() {
        let doc = json!({"ssn": "1", "user": {"ssn": "2", "name": "x", "cards": [{"ssn": 3, "pin": 4}]}, "ok": [1, "ssn"]});
        assert_eq!(
            redact(&doc, &names(&["ssn", "pin"])),
            json!({
                "ssn": REDACTED,
                "user": {"ssn": REDACTED, "name": "x", "cards": [{"ssn": REDACTED, "pin": REDACTED}]},
                "ok": [1, "ssn"],
            })
        );
    }

    #[test]
    fn small_bodies_are_logged_as_they_are() {
        assert_eq!(
            loggable_body(Some(br#"{"features": [[1, 2]]}"#), &[], 4096),
            (json!({"features": [[1, 2]]}), false)
        );
        assert_eq!(loggable_body(None, &[], 10), (Value::Null, false));
        assert_eq!(loggable_body(Some(b""), &[], 10), (json!(""), false));
        assert_eq!(
            loggable_body(Some(b"plain text"), &names(&["x"]), 100),
            (json!("plain text"), false)
        );
    }

    #[test]
    fn redaction_can_bring_a_body_under_the_cap() {
        let body = serde_json::to_vec(&json!({"secret": "s".repeat(100)})).unwrap();
        assert_eq!(
            loggable_body(Some(&body), &names(&["secret"]), 40),
            (json!({"secret": REDACTED}), false)
        );
    }

    #[test]
    fn bodies_too_deep_to_redact_are_not_logged() {
        let deep = [
            &br#"{"ssn": "1", "x": "#[..],
            &b"[".repeat(100_000),
            &b"]".repeat(100_000),
            b"}",
        ]
        .concat();
        assert_eq!(
            loggable_body(Some(&deep), &names(&["ssn"]), 4096),
            (json!(TOO_DEEP), true)
        );
    }

    #[test]
    fn a_line_has_the_agreed_fields() {
        let p = Prediction {
            arrived: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(500),
            revision: "bbbb".into(),
            route: "canary",
            latency_seconds: 0.0123456,
            status: 200,
            trace_id: TRACE.into(),
            request: bytes::Bytes::from_static(
                br#"{"features": [[5.1, 3.5, 1.4, 0.2]], "ssn": "123"}"#,
            ),
            response: Some(bytes::Bytes::from_static(br#"["setosa"]"#)),
        };
        let line = format_line(&p, "iris", "ml", &names(&["ssn"]), 4096);
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            parsed,
            json!({
                "ts": "1970-01-01T00:00:00.500Z",
                "model": "iris",
                "namespace": "ml",
                "revision": "bbbb",
                "route": "canary",
                "latencyMs": 12.346,
                "status": 200,
                "traceId": TRACE,
                "request": {"features": [[5.1, 3.5, 1.4, 0.2]], "ssn": REDACTED},
                "response": ["setosa"],
                "truncated": false,
            })
        );
    }

    proptest! {
        #[test]
        fn a_redacted_value_never_appears(secret in "[a-z]{8,16}", limit in 0usize..200, depth in 0usize..4) {
            let mut doc = json!({"ssn": secret.clone(), "x": 1});
            for _ in 0..depth { doc = json!({"inner": [doc], "y": "z"}); }
            let body = serde_json::to_vec(&doc).unwrap();
            let (v, _) = loggable_body(Some(&body), &["ssn".to_string()], limit);
            prop_assert!(!serde_json::to_string(&v).unwrap().contains(&secret));
        }

        #[test]
        fn any_bytes_give_a_line(body in proptest::collection::vec(any::<u8>(), 0..300), limit in 0usize..100) {
            let (v, _) = loggable_body(Some(&body), &["a".to_string()], limit);
            let text = serde_json::to_string(&v).unwrap();
            prop_assert!(text.len() <= 6 * limit + 64 || !matches!(v, Value::String(_)));
        }
    }
}
