//! JSON pointers (RFC 6901) with a `*` wildcard segment, and the pointer of an instance path.
//!
//! `/features/*/0` selects the first item of every row of `features`: a `*` segment stands for
//! every item of an array or every value of an object. Missing members select nothing.

use serde_json::Value;

pub const WILDCARD: &str = "*";

#[derive(Debug, Clone, PartialEq)]
pub struct PointerError(pub String);

/// The unescaped segments of `pointer` ("" is the whole document, otherwise it starts with /).
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, PointerError> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(PointerError(format!(
            "a JSON pointer starts with '/', got {}",
            crate::routing::py_str(pointer)
        )));
    };
    let mut out = Vec::new();
    for segment in rest.split('/') {
        if segment.replace("~0", "").replace("~1", "").contains('~') {
            return Err(PointerError(format!(
                "JSON pointer {}: '~' must be followed by 0 or 1 in {}",
                crate::routing::py_str(pointer),
                crate::routing::py_str(segment)
            )));
        }
        out.push(segment.replace("~1", "/").replace("~0", "~"));
    }
    Ok(out)
}

fn array_index(segment: &str, length: usize) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if segment.len() > 1 && segment.starts_with('0') {
        return None;
    }
    let index: usize = segment.parse().ok()?;
    (index < length).then_some(index)
}

/// Every value the parsed pointer selects in `document`, in document order.
pub fn select<'a>(document: &'a Value, segments: &[String], out: &mut Vec<&'a Value>) {
    let Some((head, rest)) = segments.split_first() else {
        out.push(document);
        return;
    };
    match document {
        Value::Object(map) => {
            if head == WILDCARD {
                for value in map.values() {
                    select(value, rest, out);
                }
            } else if let Some(value) = map.get(head) {
                select(value, rest, out);
            }
        }
        Value::Array(items) => {
            if head == WILDCARD {
                for item in items {
                    select(item, rest, out);
                }
            } else if let Some(i) = array_index(head, items.len()) {
                select(&items[i], rest, out);
            }
        }
        _ => {}
    }
}

/// One step of an instance path: an object member or an array index.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Key(String),
    Index(usize),
}

pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The JSON pointer of an instance path; "/" for the root.
pub fn to_pointer(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        text.push('/');
        match step {
            Step::Key(k) => text.push_str(&escape_segment(k)),
            Step::Index(i) => text.push_str(&i.to_string()),
        }
    }
    if text.is_empty() {
        "/".to_string()
    } else {
        text
    }
}

/// Like `to_pointer`, with every array index replaced by `*` (bounded metric label values).
pub fn to_pattern(path: &[Step]) -> String {
    let mut text = String::new();
    for step in path {
        text.push('/');
        match step {
            Step::Key(k) => text.push_str(&escape_segment(k)),
            Step::Index(_) => text.push_str(WILDCARD),
        }
    }
    if text.is_empty() {
        "/".to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn wildcards_select_every_item() {
        let doc = json!({"features": [[1, 2], [3, 4]], "a/b": {"~": 5}});
        let mut out = Vec::new();
        select(&doc, &parse_pointer("/features/*/0").unwrap(), &mut out);
        assert_eq!(out, vec![&json!(1), &json!(3)]);
        out.clear();
        select(&doc, &parse_pointer("/a~1b/~0").unwrap(), &mut out);
        assert_eq!(out, vec![&json!(5)]);
        out.clear();
        select(&doc, &parse_pointer("/features/01").unwrap(), &mut out);
        assert!(out.is_empty());
        assert!(parse_pointer("features").is_err());
        assert!(parse_pointer("/a~2").is_err());
    }

    #[test]
    fn pointers_and_patterns() {
        let path = [Step::Key("features".into()), Step::Index(1), Step::Index(2)];
        assert_eq!(to_pointer(&path), "/features/1/2");
        assert_eq!(to_pattern(&path), "/features/*/*");
        assert_eq!(to_pointer(&[]), "/");
    }

    proptest! {
        #[test]
        fn escaping_round_trips(keys in proptest::collection::vec("[a-z/~*0-9]{1,6}", 1..5)) {
            let path: Vec<Step> = keys.iter().cloned().map(Step::Key).collect();
            let parsed = parse_pointer(&to_pointer(&path)).unwrap();
            prop_assert_eq!(parsed, keys);
        }

        #[test]
        fn any_string_parses_or_errors_without_panic(s in ".*") {
            let _ = parse_pointer(&s);
        }
    }
}
