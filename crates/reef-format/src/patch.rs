//! RFC 7396 JSON Merge Patch over `Document`s.
//!
//! A patch is itself a document: each attribute replaces the target's, a
//! `null` removes it, and an object value is merged recursively into an
//! object target (a non-object target is first replaced by `{}`). Arrays
//! are replaced whole, as the RFC says.

use crate::value::{Document, Value};

/// Applies `patch` to `target` in place.
pub fn merge_patch(target: &mut Document, patch: &Document) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(sub_patch) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Document::new()));
                if !matches!(slot, Value::Object(_)) {
                    *slot = Value::Object(Document::new());
                }
                if let Value::Object(sub_target) = slot {
                    merge_patch(sub_target, sub_patch);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{document_from_json, document_to_json};
    use serde_json::{Value as Json, json};

    /// The worked examples of RFC 7396 Appendix A whose target and patch are
    /// objects (a document is always an object).
    #[test]
    fn rfc7396_appendix_a() {
        let cases: [(Json, Json, Json); 10] = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, expected) in cases {
            let mut doc = document_from_json(&target, "target").unwrap();
            merge_patch(&mut doc, &document_from_json(&patch, "patch").unwrap());
            assert_eq!(document_to_json(&doc), expected, "{target} + {patch}");
        }
    }

    #[test]
    fn object_patch_replaces_scalar_target() {
        let mut doc = document_from_json(&json!({"a": 1}), "t").unwrap();
        merge_patch(
            &mut doc,
            &document_from_json(&json!({"a": {"b": 2}}), "p").unwrap(),
        );
        assert_eq!(document_to_json(&doc), json!({"a": {"b": 2}}));
    }
}
