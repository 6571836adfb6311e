//! Checks a document against the JSON Schema generated from the manifest types, and reports
//! every mismatch at once, each with the path of the field it is in.
//!
//! serde stops at the first error of a document and, for an untagged enum, says only "data did
//! not match any variant". The schema knows the same shape (it is generated from the types), so
//! walking the document's value with it finds all the errors serde would, in the user's words:
//! unknown fields with the closest known one, missing fields, wrong types, values out of the
//! ranges AWS allows. The walk understands the keywords schemars emits: `$ref`, `type`,
//! `properties`, `required`, `additionalProperties`, `items`, `minItems`/`maxItems`, `enum`,
//! `const`, `anyOf`/`oneOf`, `minimum`/`maximum` (and the integer `format`s),
//! `minLength`/`maxLength`, `maxProperties`, and `errorMessage` (a field's own message, which
//! editors show too). `pattern` is not evaluated here: names and labels are checked by
//! `validate` with the same rules, with messages that say which character is wrong.
//!
//! A document that passes is then deserialized by serde; should serde still refuse it, its error
//! is reported as before, so a gap here never lets a broken manifest through.

use std::sync::OnceLock;

use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// One mismatch: the keys (and list indices) from the document root, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub path: Vec<Segment>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Key(String),
    Index(usize),
}

impl Mismatch {
    /// The keys of the path, for `locate` (which finds keys, not list items).
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.path
            .iter()
            .map_while(|s| match s {
                Segment::Key(k) => Some(k.as_str()),
                Segment::Index(_) => None,
            })
            .collect()
    }
}

fn schema() -> &'static Json {
    static SCHEMA: OnceLock<Json> = OnceLock::new();
    SCHEMA.get_or_init(|| serde_json::to_value(schemars::schema_for!(super::Pipeline)).expect("a schema is JSON"))
}

/// Every mismatch between a document and the pipeline schema, in document order.
pub(crate) fn check(value: &Value) -> Vec<Mismatch> {
    let mut walk = Walk { root: schema(), path: Vec::new(), out: Vec::new() };
    walk.node(schema(), value);
    walk.out
}

struct Walk<'s> {
    root: &'s Json,
    path: Vec<Segment>,
    out: Vec<Mismatch>,
}

impl<'s> Walk<'s> {
    fn report(&mut self, message: String) {
        self.out.push(Mismatch { path: self.path.clone(), message: format!("{}{message}", self.shown_path()) });
    }

    /// The path as the user writes it, `spec.` left out as the other messages do.
    fn shown_path(&self) -> String {
        let mut text = String::new();
        for segment in &self.path {
            match segment {
                Segment::Key(k) if text.is_empty() => text.push_str(k),
                Segment::Key(k) => {
                    text.push('.');
                    text.push_str(k);
                }
                Segment::Index(i) => text.push_str(&format!("[{i}]")),
            }
        }
        let text = text.strip_prefix("spec.").map(str::to_string).unwrap_or(text);
        if text.is_empty() { text } else { format!("{text}: ") }
    }

    fn resolve(&self, mut schema: &'s Json) -> &'s Json {
        while let Some(reference) = schema.get("$ref").and_then(Json::as_str) {
            let name = reference.trim_start_matches("#/$defs/");
            schema = &self.root["$defs"][name];
        }
        schema
    }

    fn node(&mut self, schema: &'s Json, value: &Value) {
        let schema = self.resolve(schema);
        if let Value::Tagged(tagged) = value {
            return self.report(format!("YAML tags (`{}`) have no meaning in a manifest: remove it", tagged.tag));
        }
        if let Some(branches) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Json::as_array) {
            return self.branches(schema, branches, value);
        }
        if let Some(expected) = schema.get("const") {
            if !same(expected, value) {
                self.report(format!("must be `{}`, not {}", plain(expected), shown(value)));
            }
            return;
        }
        if let Some(values) = schema.get("enum").and_then(Json::as_array) {
            return self.one_of_values(values, value);
        }
        if let Some(kind) = schema.get("type")
            && !type_accepts(kind, value)
        {
            return self.report(format!("expected {}, found {}{}", expected(kind), shown(value), quote_hint(kind, value)));
        }
        match value {
            Value::Mapping(map) => self.mapping(schema, map),
            Value::Sequence(items) => self.sequence(schema, items),
            Value::Number(n) => self.number(schema, n),
            Value::String(s) => self.string(schema, s),
            _ => {}
        }
    }

    /// `anyOf`/`oneOf`: fine when a branch fits. Otherwise the errors of the one branch of the
    /// value's type (an `Option`'s value, a listener's `{loadBalancer, port}`), or one message.
    fn branches(&mut self, schema: &'s Json, branches: &'s [Json], value: &Value) {
        let mut typed = Vec::new();
        for branch in branches {
            let mut trial = Walk { root: self.root, path: self.path.clone(), out: Vec::new() };
            trial.node(branch, value);
            if trial.out.is_empty() {
                return;
            }
            if self.resolve(branch).get("type").is_none_or(|kind| type_accepts(kind, value)) {
                typed.push(trial.out);
            }
        }
        let own = schema.get("errorMessage").and_then(Json::as_str);
        let consts: Vec<Json> = branches.iter().flat_map(|b| self.fixed_values(b)).collect();
        let all_fixed = branches.iter().all(|b| !self.fixed_values(b).is_empty());
        match (own, typed.len()) {
            _ if all_fixed && own.is_none() => self.one_of_values(&consts, value),
            (Some(message), 1) => {
                let first = typed.remove(0).remove(0);
                self.out.push(Mismatch { path: first.path, message: format!("{}{message} ({})", self.shown_path(), first.message) })
            }
            (Some(message), _) => self.report(message.to_string()),
            (None, 1) => self.out.extend(typed.remove(0)),
            (None, _) => self.report(format!("{} does not fit here", shown(value))),
        }
    }

    /// The values a branch allows when it is a `const` or an `enum` (an enum's variants).
    fn fixed_values(&self, branch: &'s Json) -> Vec<Json> {
        let branch = self.resolve(branch);
        match (branch.get("const"), branch.get("enum").and_then(Json::as_array)) {
            (Some(value), _) => vec![value.clone()],
            (None, Some(values)) => values.clone(),
            (None, None) => Vec::new(),
        }
    }

    fn one_of_values(&mut self, values: &[Json], value: &Value) {
        if values.iter().any(|v| same(v, value)) {
            return;
        }
        let names: Vec<String> = values.iter().map(plain).collect();
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let hint = value.as_str().and_then(|v| did_you_mean(v, &names)).map(|b| format!(" (did you mean `{b}`?)")).unwrap_or_default();
        self.report(format!("unknown value {}, expected one of {list}{hint}", shown(value)));
    }

    fn mapping(&mut self, schema: &'s Json, map: &serde_yaml_ng::Mapping) {
        let properties = schema.get("properties").and_then(Json::as_object);
        let known: Vec<String> = properties.map(|p| p.keys().cloned().collect()).unwrap_or_default();
        if let Some(max) = schema.get("maxProperties").and_then(Json::as_u64)
            && map.len() as u64 > max
        {
            self.report(format!("{} entries, at most {max} are allowed", map.len()));
        }
        for (key, value) in map {
            let Some(key) = key.as_str() else {
                self.report(format!("keys must be text, not {}", shown(key)));
                continue;
            };
            let field = properties.and_then(|p| p.get(key));
            let extra = schema.get("additionalProperties");
            let sub = match (field, extra) {
                (Some(field), _) => field,
                (None, Some(Json::Bool(false))) => {
                    let hint = did_you_mean(key, &known).map(|b| format!(" (did you mean field `{b}`?)")).unwrap_or_default();
                    let list = known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                    self.path.push(Segment::Key(key.to_string()));
                    self.report(format!("unknown field `{key}`, expected one of {list}{hint}"));
                    self.path.pop();
                    continue;
                }
                (None, Some(extra)) if extra.is_object() => extra,
                (None, _) => continue,
            };
            self.path.push(Segment::Key(key.to_string()));
            self.node(sub, value);
            self.path.pop();
        }
        for required in schema.get("required").and_then(Json::as_array).into_iter().flatten().filter_map(Json::as_str) {
            if !map.contains_key(required) {
                self.report(format!("missing field `{required}`"));
            }
        }
    }

    fn sequence(&mut self, schema: &'s Json, items: &[Value]) {
        let (min, max) = (schema.get("minItems").and_then(Json::as_u64), schema.get("maxItems").and_then(Json::as_u64));
        let n = items.len() as u64;
        match (min, max) {
            (Some(min), Some(max)) if min == max && n != min => self.report(format!("must list exactly {min} items, not {n}")),
            (Some(min), _) if n < min => self.report(format!("must list at least {min} items, not {n}")),
            (_, Some(max)) if n > max => self.report(format!("must list at most {max} items, not {n}")),
            _ => {}
        }
        if let Some(item) = schema.get("items") {
            for (i, value) in items.iter().enumerate() {
                self.path.push(Segment::Index(i));
                self.node(item, value);
                self.path.pop();
            }
        }
    }

    fn number(&mut self, schema: &'s Json, n: &serde_yaml_ng::Number) {
        let Some(v) = n.as_f64() else { return };
        let format_max = match schema.get("format").and_then(Json::as_str) {
            Some("uint8") => Some(u8::MAX as f64),
            Some("uint16") => Some(u16::MAX as f64),
            Some("uint32") => Some(u32::MAX as f64),
            _ => None,
        };
        let max = schema.get("maximum").and_then(Json::as_f64).or(format_max);
        let min = schema.get("minimum").and_then(Json::as_f64);
        match (min, max) {
            (Some(min), Some(max)) if v < min || v > max => self.report(format!("must be between {min} and {max}, not {n}")),
            (Some(min), None) if v < min => self.report(format!("must be at least {min}, not {n}")),
            (None, Some(max)) if v > max => self.report(format!("must be at most {max}, not {n}")),
            _ => {}
        }
    }

    fn string(&mut self, schema: &'s Json, s: &str) {
        let length = s.chars().count() as u64;
        let min = schema.get("minLength").and_then(Json::as_u64);
        let max = schema.get("maxLength").and_then(Json::as_u64);
        match (min, max) {
            (Some(min), Some(max)) if length < min || length > max => {
                self.report(format!("must be {min} to {max} characters, this one has {length}"))
            }
            (Some(min), None) if length < min => self.report(format!("must be at least {min} characters, this one has {length}")),
            (None, Some(max)) if length > max => self.report(format!("must be at most {max} characters, this one has {length}")),
            _ => {}
        }
    }
}

/// The closest of `candidates` to `unknown`, when it is close enough to be a typo of it.
pub(crate) fn did_you_mean<'c>(unknown: &str, candidates: &'c [String]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(unknown, c), c.as_str()))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

fn type_accepts(kind: &Json, value: &Value) -> bool {
    match kind {
        Json::Array(kinds) => kinds.iter().any(|k| type_accepts(k, value)),
        Json::String(kind) => match (kind.as_str(), value) {
            ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("string", Value::String(_)) => true,
            ("array", Value::Sequence(_)) | ("object", Value::Mapping(_)) | ("number", Value::Number(_)) => true,
            ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
            _ => false,
        },
        _ => true,
    }
}

fn expected(kind: &Json) -> String {
    let one = |k: &str| match k {
        "null" => "nothing",
        "boolean" => "true or false",
        "string" => "text",
        "array" => "a list",
        "object" => "a map of fields",
        "integer" => "a whole number",
        "number" => "a number",
        _ => "something else",
    };
    match kind {
        Json::Array(kinds) => kinds.iter().filter_map(Json::as_str).map(one).collect::<Vec<_>>().join(" or "),
        Json::String(k) => one(k).to_string(),
        _ => "something else".into(),
    }
}

fn shown(value: &Value) -> String {
    match value {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("`{b}`"),
        Value::Number(n) => format!("the number `{n}`"),
        Value::String(s) => format!("`{s}`"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a map".into(),
        Value::Tagged(t) => format!("a value tagged `{}`", t.tag),
    }
}

/// YAML reads `80`, `true`, `1.10` as numbers and booleans: quoting keeps them text.
fn quote_hint(kind: &Json, value: &Value) -> &'static str {
    let wants_text = kind.as_str() == Some("string");
    if wants_text && matches!(value, Value::Number(_) | Value::Bool(_)) { " (quote it to make it text)" } else { "" }
}

fn same(expected: &Json, value: &Value) -> bool {
    match (expected, value) {
        (Json::String(e), Value::String(v)) => e == v,
        (Json::Bool(e), Value::Bool(v)) => e == v,
        (Json::Number(e), Value::Number(v)) => e.as_f64() == v.as_f64(),
        _ => false,
    }
}

fn plain(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::manifest::TEST_MANIFEST as MANIFEST;

    fn messages(doc: &str) -> Vec<String> {
        check(&serde_yaml_ng::from_str(doc).unwrap()).into_iter().map(|m| m.message).collect()
    }

    #[test]
    fn a_valid_manifest_fits_the_schema() {
        assert_eq!(messages(MANIFEST), Vec::<String>::new());
    }

    #[test]
    fn every_mismatch_of_a_document_is_reported_in_the_users_words() {
        let doc = MANIFEST
            .replace("slipway.dev/v1alpha1", "slipway.dev/v1")
            .replace("    repository: demo-web", "    repositry: demo-web\n    scanOnPush: yes\n    tagMutability: MUTABEL")
            .replace("port: 80", "port: 70000")
            .replace(
                "    service: web\n",
                "    service: web\n    terminationWaitMinutes: 3000\n    autoRollbackOn: [DEPLOYMENT_FAILURE, ON_ALARM]\n",
            );
        let got = messages(&doc);
        let expected = [
            "apiVersion: must be `slipway.dev/v1alpha1`, not `slipway.dev/v1`",
            "image.repositry: unknown field `repositry`, expected one of",
            "image.scanOnPush: expected true or false, found `yes`",
            "image.tagMutability: unknown value `MUTABEL`, expected one of `IMMUTABLE`, `MUTABLE` (did you mean `MUTABLE`?)",
            "image: missing field `repository`",
            "deploy.terminationWaitMinutes: must be between 0 and 2880, not 3000",
            "deploy.autoRollbackOn[1]: unknown value `ON_ALARM`",
            "deploy.prodListener: expected a listener ARN or `{loadBalancer, port}`; port must be 1–65535 (deploy.prodListener.port: must be between 1 and 65535, not 70000)",
        ];
        assert_eq!(got.len(), expected.len(), "{got:#?}");
        for (got, expected) in got.iter().zip(expected) {
            assert!(got.starts_with(expected), "{got}\n  expected to start with\n{expected}");
        }
    }

    #[test]
    fn a_field_in_a_list_has_its_index_and_the_keys_above_it() {
        let doc = MANIFEST.replace("[blue, green]", "[blue, green, red]");
        let found = check(&serde_yaml_ng::from_str(&doc).unwrap());
        assert_eq!(found[0].message, "deploy.targetGroups: must list exactly 2 items, not 3");
        assert_eq!(found[0].keys(), ["spec", "deploy", "targetGroups"]);
        let doc = MANIFEST.replace("  name: web\n", "  name: web\n  labels: {team: 5}\n");
        assert_eq!(messages(&doc), ["metadata.labels.team: expected text, found the number `5` (quote it to make it text)"]);
    }
}
