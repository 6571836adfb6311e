//! Field-level differences between two JSON values: what plan shows as `before → after`.

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    /// `stages[1].actions[0].configuration.PollForSourceChanges`
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
}

/// Every leaf where `before` and `after` differ. Objects are compared key by key; lists of the
/// same length element by element (so one changed pipeline action shows as that action), lists
/// of different lengths as a whole.
pub fn diff(before: &Value, after: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(String::new(), Some(before), Some(after), &mut out);
    out
}

fn walk(path: String, before: Option<&Value>, after: Option<&Value>, out: &mut Vec<FieldChange>) {
    match (before, after) {
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                walk(child, b.get(key), a.get(key), out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) if b.len() == a.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                walk(format!("{path}[{i}]"), Some(bv), Some(av), out);
            }
        }
        (b, a) if b != a => out.push(FieldChange { path, before: b.cloned(), after: a.cloned() }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_values_have_no_changes_whatever_the_key_order() {
        let a: Value = serde_json::from_str(r#"{"a": 1, "b": {"c": [1, 2]}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b": {"c": [1, 2]}, "a": 1}"#).unwrap();
        assert!(diff(&a, &b).is_empty());
    }

    #[test]
    fn a_changed_leaf_is_named_by_its_path() {
        let before = json!({"stages": [{"actions": [{"configuration": {"Poll": "true"}}]}]});
        let after = json!({"stages": [{"actions": [{"configuration": {"Poll": "false"}}]}]});
        let changes = diff(&before, &after);
        assert_eq!(
            changes,
            vec![FieldChange {
                path: "stages[0].actions[0].configuration.Poll".into(),
                before: Some(json!("true")),
                after: Some(json!("false"))
            }]
        );
    }

    #[test]
    fn added_and_removed_keys_and_resized_lists_show_whole() {
        let changes = diff(&json!({"a": 1, "l": [1]}), &json!({"b": 2, "l": [1, 2]}));
        let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "l"]);
        assert_eq!(changes[0].after, None);
        assert_eq!(changes[1].before, None);
    }
}
