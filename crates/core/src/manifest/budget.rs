//! Input budgets: what one YAML file may cost before slipway refuses to read further.
//!
//! A config repository is input from people and from tools, so a file may be huge, hold
//! thousands of documents, nest thousands of levels deep, or be a "billion laughs" whose aliases
//! expand to gigabytes. Each budget is checked as early as it can be, and going over it is a
//! [`Exceeded`] naming the budget:
//!
//! - the file size, from the file's metadata, before it is read ([`MAX_FILE_BYTES`]);
//! - the number of documents, by counting `---` lines, before any is parsed ([`MAX_DOCUMENTS`]);
//! - nesting depth, nodes and scalar bytes *after alias expansion*, while the document is turned
//!   into a value ([`parse_value`]): aliases are replayed by the deserializer, so counting what
//!   the visitor receives counts the expansion, and the count stops a bomb at the budget instead
//!   of after it has filled memory.
//!
//! Why serde_yaml_ng and not serde-saphyr (whose `Budget` covers the same ground): serde_yaml_ng
//! gives the positions and messages the rest of the loader and its tests are built on, and
//! serde_yaml_ng's own guards (recursion limit 128, alias jumps ≤ 100 × events) are not enough
//! alone (a 1 MiB file can still expand to billions of nodes), but with the file size capped
//! first, a counting visitor is all that is missing — about a hundred lines, instead of a new
//! parser whose errors, value type and duplicate-key handling differ everywhere.

use std::cell::{Cell, RefCell};
use std::fmt;

use serde::de::{DeserializeSeed, EnumAccess, Error as _, MapAccess, SeqAccess, VariantAccess, Visitor};
use serde_yaml_ng::value::{Tag, TaggedValue};
use serde_yaml_ng::{Mapping, Value};

/// The largest YAML file slipway reads (1 MiB). A manifest is a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// The most YAML documents (`---`-separated) one file may hold.
pub const MAX_DOCUMENTS: usize = 100;
/// The deepest nesting of lists and maps in one document. A manifest nests 5 deep.
pub const MAX_DEPTH: usize = 64;
/// The most nodes (scalars, lists, maps) one document may hold, aliases expanded.
pub const MAX_NODES: usize = 100_000;
/// The most scalar bytes one document may hold, aliases expanded.
pub const MAX_SCALAR_BYTES: usize = 2 * MAX_FILE_BYTES as usize;

/// A budget a file or document went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exceeded {
    FileSize { bytes: u64 },
    Documents,
    Depth,
    Nodes,
    ScalarBytes,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exceeded::FileSize { bytes } => {
                write!(f, "the file is {bytes} bytes, over the limit of {MAX_FILE_BYTES} bytes (1 MiB) for a YAML file: not read")
            }
            Exceeded::Documents => write!(f, "the file holds more than {MAX_DOCUMENTS} YAML documents: not read further"),
            Exceeded::Depth => write!(f, "lists and maps nest more than {MAX_DEPTH} levels deep here: not read further"),
            Exceeded::Nodes => {
                write!(
                    f,
                    "the document expands to more than {MAX_NODES} values (aliases counted each time they are used): not read further"
                )
            }
            Exceeded::ScalarBytes => write!(
                f,
                "the document's text expands to more than {MAX_SCALAR_BYTES} bytes (aliases counted each time they are used): not read further"
            ),
        }
    }
}

/// Why a document could not become a value.
#[derive(Debug)]
pub(crate) enum ValueError {
    /// Not YAML (or refused by serde_yaml_ng's own guards).
    Syntax(serde_yaml_ng::Error),
    /// Over a budget, at a 1-based line and column.
    Budget { exceeded: Exceeded, line: usize, column: usize },
    /// A key given twice in one map, at the second one.
    DuplicateKey { key: String, line: usize, column: usize },
}

/// The 1-based line where the document past [`MAX_DOCUMENTS`] starts, if there is one.
pub(crate) fn too_many_documents(text: &str) -> Option<usize> {
    let mut documents = 1;
    for (i, line) in text.lines().enumerate() {
        if super::load::is_separator(line) && i > 0 {
            documents += 1;
            if documents > MAX_DOCUMENTS {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Where flow collections (`[`, `{`) nest deeper than [`MAX_DEPTH`], read off the text before
/// libyaml sees it: libyaml's scanner takes time quadratic in the flow depth (40,000 levels take
/// seconds), so the visitor's depth count would come too late. A bracket opens a collection only
/// where a value starts (line start, after `:`, `-`, `,`, `?` or another bracket), and not in a
/// comment or a quoted scalar, so `a[0]` or `"[["` in a value count nothing.
fn flow_too_deep(doc: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (i, line) in doc.lines().enumerate() {
        // Whether a value may start here (line start, or after an indicator or an opening bracket
        // that counted), and whether the character just before was a space.
        let mut value_starts = true;
        let mut after_space = true;
        let mut quote: Option<char> = None;
        for (column, c) in line.chars().enumerate() {
            let mut opened = false;
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '#') if after_space => break,
                (None, '"' | '\'') if value_starts => quote = Some(c),
                (None, '[' | '{') if value_starts => {
                    opened = true;
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Some((i + 1, column + 1));
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
            after_space = c == ' ' || c == '\t';
            if !after_space {
                value_starts = opened || (quote.is_none() && matches!(c, ':' | '-' | ',' | '?'));
            }
        }
    }
    None
}

/// What one document has used so far, and what stopped it.
#[derive(Default)]
struct Spent {
    nodes: Cell<usize>,
    scalar_bytes: Cell<usize>,
    refused: RefCell<Option<Refusal>>,
}

enum Refusal {
    Budget(Exceeded),
    DuplicateKey(String),
}

/// Parses one document into a value within the budgets.
pub(crate) fn parse_value(doc: &str) -> Result<Value, ValueError> {
    if let Some((line, column)) = flow_too_deep(doc) {
        return Err(ValueError::Budget { exceeded: Exceeded::Depth, line, column });
    }
    let spent = Spent::default();
    let seed = Node { spent: &spent, depth: 0, siblings: None };
    let result = seed.deserialize(serde_yaml_ng::Deserializer::from_str(doc));
    result.map_err(|err| {
        let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((1, 1));
        match spent.refused.take() {
            Some(Refusal::Budget(exceeded)) => ValueError::Budget { exceeded, line, column },
            Some(Refusal::DuplicateKey(key)) => ValueError::DuplicateKey { key, line, column },
            None => ValueError::Syntax(err),
        }
    })
}

/// Builds one node, counting it against the budgets. `siblings` is set for a map key: the map
/// so far, to refuse a key given twice where the second one is.
struct Node<'a> {
    spent: &'a Spent,
    depth: usize,
    siblings: Option<&'a Mapping>,
}

impl<'a> Node<'a> {
    fn refuse<E: serde::de::Error>(&self, refusal: Refusal, message: String) -> E {
        *self.spent.refused.borrow_mut() = Some(refusal);
        E::custom(message)
    }

    fn count<E: serde::de::Error>(&self, scalar_bytes: usize) -> Result<(), E> {
        let nodes = self.spent.nodes.get() + 1;
        let bytes = self.spent.scalar_bytes.get() + scalar_bytes;
        self.spent.nodes.set(nodes);
        self.spent.scalar_bytes.set(bytes);
        if nodes > MAX_NODES {
            return Err(self.refuse(Refusal::Budget(Exceeded::Nodes), Exceeded::Nodes.to_string()));
        }
        if bytes > MAX_SCALAR_BYTES {
            return Err(self.refuse(Refusal::Budget(Exceeded::ScalarBytes), Exceeded::ScalarBytes.to_string()));
        }
        Ok(())
    }

    fn scalar<E: serde::de::Error>(&self, value: Value, bytes: usize) -> Result<Value, E> {
        self.count(bytes)?;
        if let Some(map) = self.siblings
            && map.contains_key(&value)
        {
            let key = serde_yaml_ng::to_string(&value).unwrap_or_default().trim_end().to_string();
            return Err(self.refuse(Refusal::DuplicateKey(key.clone()), format!("duplicate key `{key}`")));
        }
        Ok(value)
    }

    fn child(&self) -> Node<'a> {
        Node { spent: self.spent, depth: self.depth + 1, siblings: None }
    }

    fn enter<E: serde::de::Error>(&self) -> Result<(), E> {
        self.count(0)?;
        if self.depth >= MAX_DEPTH {
            return Err(self.refuse(Refusal::Budget(Exceeded::Depth), Exceeded::Depth.to_string()));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar(Value::Bool(v), 1)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar(Value::Number(v.into()), 8)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Value, E> {
        self.scalar(Value::Number(v.into()), 8)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        self.scalar(Value::Number(v.into()), 8)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Value, E> {
        self.scalar(Value::String(v.to_owned()), v.len())
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Value, E> {
        let bytes = v.len();
        self.scalar(Value::String(v), bytes)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null, 0)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null, 0)
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.child())? {
            items.push(item);
        }
        Ok(Value::Sequence(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.enter()?;
        let mut out = Mapping::new();
        loop {
            let key_seed = Node { spent: self.spent, depth: self.depth + 1, siblings: Some(&out) };
            let Some(key) = map.next_key_seed(key_seed)? else { break };
            let value = map.next_value_seed(self.child())?;
            out.insert(key, value);
        }
        Ok(Value::Mapping(out))
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A YAML tag (`!Ref x`): other tools' YAML uses them, slipway's never does.
        let (tag, contents): (String, _) = data.variant()?;
        let value = contents.newtype_variant_seed(self.child())?;
        if tag.is_empty() {
            return Err(A::Error::custom("empty YAML tag"));
        }
        Ok(Value::Tagged(Box::new(TaggedValue { tag: Tag::new(tag), value })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(doc: &str) -> (Exceeded, usize) {
        match parse_value(doc) {
            Err(ValueError::Budget { exceeded, line, .. }) => (exceeded, line),
            other => panic!("expected a budget error, got {other:?}"),
        }
    }

    #[test]
    fn a_billion_laughs_stops_at_the_node_budget() {
        let mut doc = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            doc.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert_eq!(refused(&doc).0, Exceeded::Nodes);
    }

    #[test]
    fn one_long_string_used_many_times_stops_at_the_byte_budget() {
        let mut doc = format!("big: &big {}\nlist:\n", "x".repeat(100_000));
        doc.push_str(&"  - *big\n".repeat(100));
        assert_eq!(refused(&doc).0, Exceeded::ScalarBytes);
    }

    #[test]
    fn deep_nesting_stops_at_the_depth_budget_on_its_line() {
        let doc = format!("a:\n  b: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(refused(&doc), (Exceeded::Depth, 2));
        let block: String = (0..100).map(|i| format!("{}k{i}:\n", "  ".repeat(i))).collect();
        assert_eq!(refused(&block).0, Exceeded::Depth);
    }

    #[test]
    fn flow_nesting_is_refused_from_the_text_before_libyaml_reads_it() {
        let deep = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(flow_too_deep(&deep), Some((1, 4 + MAX_DEPTH)));
        let ordinary = format!("a: x[0]{}\nb: \"{}\"  # {}\nc: [[1], {{d: [2]}}]\n", "[".repeat(100), "[".repeat(100), "{".repeat(100));
        assert_eq!(flow_too_deep(&ordinary), None);
    }

    #[test]
    fn a_key_given_twice_is_refused_where_it_is_given_again() {
        match parse_value("a: 1\nb:\n  c: 1\n  c: 2\n") {
            Err(ValueError::DuplicateKey { key, line, column }) => assert_eq!((key.as_str(), line, column), ("c", 4, 3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ordinary_yaml_and_other_tools_tags_still_load() {
        let value = parse_value("a: [1, true, x]\nb: !Ref thing\nc: &x {d: 1}\ne: *x\n").unwrap();
        assert_eq!(value["e"]["d"], Value::Number(1.into()));
        assert!(matches!(value["b"], Value::Tagged(_)));
    }

    #[test]
    fn documents_past_the_budget_are_found_by_their_line() {
        let text = "a: 1\n---\n".repeat(MAX_DOCUMENTS);
        assert_eq!(too_many_documents(&text), Some(MAX_DOCUMENTS * 2));
        assert_eq!(too_many_documents("a: 1\n---\nb: 2\n"), None);
    }
}
