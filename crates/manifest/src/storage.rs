//! `storage.entities`: the entities a plugin keeps with `@ones-op/sdk`
//! (`storage.entity(name)`), their typed attributes and indexes, and the
//! rules a value must follow to be written (ONES's: required attributes
//! present, defaults on create, stored values kept on update).

use std::collections::BTreeMap;

use marked_yaml::Node;

use crate::parse::{present, Cx};

/// Largest declared `length` of a string attribute, and of all of an
/// entity's string attributes together (bytes).
pub const MAX_STRING_BYTES: u64 = 2048;
/// Largest `text` value (bytes).
pub const MAX_TEXT_BYTES: usize = 32768;
/// Longest entity key (bytes); ONES's own limit is not published.
pub const MAX_KEY_BYTES: usize = 255;

/// One declared entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub name: String,
    pub attributes: BTreeMap<String, Attribute>,
    pub indexes: Vec<EntityIndex>,
}

/// One attribute of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribute {
    pub kind: AttributeType,
    /// Bytes, for `string` (required there).
    pub length: Option<u64>,
    pub required: bool,
    pub default: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttributeType {
    Boolean,
    Integer,
    Float,
    String,
    Text,
}

impl AttributeType {
    fn parse(s: &str) -> Option<AttributeType> {
        Some(match s {
            "boolean" => AttributeType::Boolean,
            "integer" => AttributeType::Integer,
            "float" => AttributeType::Float,
            "string" => AttributeType::String,
            "text" => AttributeType::Text,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AttributeType::Boolean => "boolean",
            AttributeType::Integer => "integer",
            AttributeType::Float => "float",
            AttributeType::String => "string",
            AttributeType::Text => "text",
        }
    }
}

/// An index: records ordered by one attribute, within the records that
/// share the values of the `partition` attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityIndex {
    pub name: String,
    pub range_attribute: String,
    pub partition: Vec<String>,
}

/// Where a record sorts in an index: by number (boolean, integer, float)
/// or by text (string).
#[derive(Debug, Clone, PartialEq)]
pub enum RangeValue {
    Number(f64),
    Text(String),
}

impl Entity {
    /// The declared index `name`.
    pub fn index(&self, name: &str) -> Result<&EntityIndex, String> {
        self.indexes.iter().find(|i| i.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.indexes.iter().map(|i| i.name.as_str()).collect();
            format!(
                "entity {:?} has no index {name:?} ({})",
                self.name,
                if known.is_empty() {
                    "it declares none".to_string()
                } else {
                    format!("declared: {}", known.join(", "))
                }
            )
        })
    }

    /// The value to store for `key`, given what is stored (`old`) and what
    /// the plugin sets (`new`): every attribute checked against its
    /// declaration; on create, missing attributes take their defaults; on
    /// update, missing attributes keep their stored values; `null` removes
    /// an attribute that is not required.
    pub fn merge(
        &self,
        old: Option<&serde_json::Map<String, serde_json::Value>>,
        new: &serde_json::Value,
    ) -> Result<serde_json::Map<String, serde_json::Value>, String> {
        let serde_json::Value::Object(new) = new else {
            return Err(format!("the value of an {:?} record must be an object, not {}", self.name, kind_of(new)));
        };
        let mut out = match old {
            Some(old) => old.clone(),
            None => serde_json::Map::new(),
        };
        for (name, value) in new {
            let Some(attr) = self.attributes.get(name) else {
                let known: Vec<&str> = self.attributes.keys().map(String::as_str).collect();
                return Err(format!(
                    "entity {:?} declares no attribute {name:?} (declared: {})",
                    self.name,
                    known.join(", ")
                ));
            };
            if value.is_null() {
                out.remove(name);
                continue;
            }
            attr.check(value).map_err(|why| format!("attribute {name:?} of entity {:?}: {why}", self.name))?;
            out.insert(name.clone(), value.clone());
        }
        for (name, attr) in &self.attributes {
            if out.contains_key(name) {
                continue;
            }
            match (&attr.default, old) {
                (Some(d), None) => {
                    out.insert(name.clone(), d.clone());
                }
                _ if attr.required => {
                    return Err(format!(
                        "attribute {name:?} of entity {:?} is required ({})",
                        self.name,
                        attr.kind.as_str()
                    ))
                }
                _ => {}
            }
        }
        // Required attributes must be given on update too (ONES's rule),
        // unless they have a default, whose stored value is kept.
        if old.is_some() {
            if let Some((name, _)) =
                self.attributes.iter().find(|(n, a)| a.required && a.default.is_none() && !new.contains_key(*n))
            {
                return Err(format!("attribute {name:?} of entity {:?} is required, on update too", self.name));
            }
        }
        Ok(out)
    }

    /// Where `value` sorts in `index`, and the partition it is in (the
    /// partition attributes' values as a JSON array); `None` when the value
    /// lacks one of them (it is then not in that index).
    pub fn index_entry(
        &self,
        index: &EntityIndex,
        value: &serde_json::Map<String, serde_json::Value>,
    ) -> Option<(String, RangeValue)> {
        let mut partition = Vec::with_capacity(index.partition.len());
        for p in &index.partition {
            partition.push(value.get(p)?.clone());
        }
        let range = range_value(value.get(&index.range_attribute)?)?;
        Some((serde_json::Value::Array(partition).to_string(), range))
    }

    /// Check values given for an index's partition, in declaration order,
    /// and render them as stored.
    pub fn partition_of(&self, index: &EntityIndex, values: &[serde_json::Value]) -> Result<String, String> {
        if values.len() != index.partition.len() {
            return Err(format!(
                "index {:?} of entity {:?} is partitioned by [{}]: give {} partition value(s), not {}",
                index.name,
                self.name,
                index.partition.join(", "),
                index.partition.len(),
                values.len()
            ));
        }
        for (name, v) in index.partition.iter().zip(values) {
            self.attributes[name].check(v).map_err(|why| format!("partition value for {name:?}: {why}"))?;
        }
        Ok(serde_json::Value::Array(values.to_vec()).to_string())
    }
}

/// A JSON value as an index sorts it.
pub fn range_value(v: &serde_json::Value) -> Option<RangeValue> {
    match v {
        serde_json::Value::Bool(b) => Some(RangeValue::Number(if *b { 1.0 } else { 0.0 })),
        serde_json::Value::Number(n) => n.as_f64().map(RangeValue::Number),
        serde_json::Value::String(s) => Some(RangeValue::Text(s.clone())),
        _ => None,
    }
}

impl Attribute {
    /// Whether `v` may be stored in this attribute.
    pub fn check(&self, v: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        let ok = match (self.kind, v) {
            (AttributeType::Boolean, Value::Bool(_)) => true,
            (AttributeType::Integer, Value::Number(n)) => {
                n.is_i64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            }
            (AttributeType::Float, Value::Number(_)) => true,
            (AttributeType::String, Value::String(s)) => {
                let max = self.length.unwrap_or(MAX_STRING_BYTES);
                if s.len() as u64 > max {
                    return Err(format!("{} bytes, longer than its declared length {max}", s.len()));
                }
                true
            }
            (AttributeType::Text, Value::String(s)) => {
                if s.len() > MAX_TEXT_BYTES {
                    return Err(format!("{} bytes, more than a text attribute holds ({MAX_TEXT_BYTES})", s.len()));
                }
                true
            }
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("expected {}, found {}", self.kind.as_str(), kind_of(v)))
        }
    }
}

fn kind_of(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("{b}"),
        Value::Number(n) if n.is_i64() || n.is_u64() => format!("the integer {n}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() > 40 => "a string".into(),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// A key a record may have: a non-empty string of at most
/// [`MAX_KEY_BYTES`] bytes without control characters.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("an entity key must not be empty".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("entity key of {} bytes: at most {MAX_KEY_BYTES}", key.len()));
    }
    if key.chars().any(char::is_control) {
        return Err(format!("entity key {key:?} holds a control character"));
    }
    Ok(())
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

/// The `storage` section: `entities`, each checked.
pub(crate) fn parse(cx: &mut Cx<'_>, node: &Node) -> Vec<Entity> {
    let Node::Mapping(map) = node else {
        cx.error(node.span(), "storage", "must be a mapping with `entities`");
        return Vec::new();
    };
    for (k, _) in map.iter() {
        if k.as_str() != "entities" {
            cx.warn(k.span(), &format!("storage.{}", k.as_str()), "unknown key, ignored (known: entities)");
        }
    }
    let seq = match present(map.get_node("entities")) {
        None => return Vec::new(),
        Some(Node::Sequence(seq)) => seq,
        Some(other) => {
            cx.error(other.span(), "storage.entities", "must be a list of entities (name, attributes, indexes)");
            return Vec::new();
        }
    };
    let mut out: Vec<Entity> = Vec::new();
    for (i, item) in seq.iter().enumerate() {
        let key = format!("storage.entities[{i}]");
        if let Some(e) = parse_entity(cx, item, &key) {
            if out.iter().any(|o| o.name == e.name) {
                cx.error(item.span(), &format!("{key}.name"), format!("entity {:?} is declared twice", e.name));
                continue;
            }
            out.push(e);
        }
    }
    out
}

fn parse_entity(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<Entity> {
    let Node::Mapping(map) = node else {
        cx.error(node.span(), key, "must be a mapping with `name` and `attributes`");
        return None;
    };
    let name = cx.required_string(map, "name", &format!("{key}.name"));
    if let (Some(n), Some(node)) = (&name, map.get_node("name")) {
        if !is_name(n) {
            cx.error(
                node.span(),
                &format!("{key}.name"),
                format!("{n:?} is not an entity name (a letter, then letters, digits, '_' or '-'; at most 64)"),
            );
        }
    }
    let mut attributes = BTreeMap::new();
    match present(map.get_node("attributes")) {
        None => cx.error(map.span(), &format!("{key}.attributes"), "missing required key `attributes`"),
        Some(Node::Mapping(attrs)) => {
            for (k, v) in attrs.iter() {
                let akey = format!("{key}.attributes.{}", k.as_str());
                if !is_name(k.as_str()) {
                    cx.error(k.span(), &akey, format!("{:?} is not an attribute name", k.as_str()));
                    continue;
                }
                if let Some(a) = parse_attribute(cx, v, &akey) {
                    attributes.insert(k.as_str().to_string(), a);
                }
            }
            if attrs.is_empty() {
                cx.error(attrs.span(), &format!("{key}.attributes"), "an entity needs at least one attribute");
            }
        }
        Some(other) => cx.error(other.span(), &format!("{key}.attributes"), "must be a mapping of name: {type, …}"),
    }
    let strings: u64 = attributes.values().filter_map(|a| a.length).sum();
    if strings > MAX_STRING_BYTES {
        cx.error(
            map.span(),
            &format!("{key}.attributes"),
            format!("its string attributes' lengths add up to {strings} bytes; at most {MAX_STRING_BYTES}"),
        );
    }
    let mut indexes: Vec<EntityIndex> = Vec::new();
    match present(map.get_node("indexes")) {
        None => {}
        Some(Node::Sequence(seq)) => {
            for (i, item) in seq.iter().enumerate() {
                let ikey = format!("{key}.indexes[{i}]");
                if let Some(ix) = parse_index(cx, item, &ikey, &attributes) {
                    if indexes.iter().any(|o| o.name == ix.name) {
                        cx.error(item.span(), &ikey, format!("index {:?} is declared twice", ix.name));
                    }
                    indexes.push(ix);
                }
            }
        }
        Some(other) => {
            cx.error(other.span(), &format!("{key}.indexes"), "must be a list of {name, range_attribute, partition}")
        }
    }
    for (k, _) in map.iter() {
        if !matches!(k.as_str(), "name" | "attributes" | "indexes") {
            cx.warn(
                k.span(),
                &format!("{key}.{}", k.as_str()),
                "unknown key, ignored (known: name, attributes, indexes)",
            );
        }
    }
    Some(Entity { name: name?, attributes, indexes })
}

fn parse_attribute(cx: &mut Cx<'_>, node: &Node, key: &str) -> Option<Attribute> {
    let Node::Mapping(map) = node else {
        cx.error(node.span(), key, "must be a mapping with `type`");
        return None;
    };
    let kind = cx.required_string(map, "type", &format!("{key}.type")).and_then(|t| {
        let parsed = AttributeType::parse(&t);
        if parsed.is_none() {
            let span = map.get_node("type").map(|n| *n.span()).unwrap_or(*map.span());
            cx.error(
                &span,
                &format!("{key}.type"),
                format!("unknown type {t:?} (boolean, integer, float, string, text)"),
            );
        }
        parsed
    })?;
    let length = match present(map.get_node("length")) {
        None => None,
        Some(n) => {
            let l = cx.integer(n, &format!("{key}.length"))?;
            if kind != AttributeType::String {
                cx.error(
                    n.span(),
                    &format!("{key}.length"),
                    format!("only string attributes have a length, not {}", kind.as_str()),
                );
            } else if !(1..=MAX_STRING_BYTES as i64).contains(&l) {
                cx.error(n.span(), &format!("{key}.length"), format!("{l} is outside 1..{MAX_STRING_BYTES}"));
            }
            Some(l.max(0) as u64)
        }
    };
    if kind == AttributeType::String && length.is_none() {
        cx.error(map.span(), &format!("{key}.length"), "a string attribute needs a `length` (1..2048 bytes)");
    }
    let required = cx.flag(map, "required", key, false);
    let mut attr = Attribute { kind, length, required, default: None };
    if let Some(n) = present(map.get_node("default")) {
        let value = crate::parse::to_json(n);
        // A YAML `default: "12"` for an integer attribute is the number 12.
        let value = match (kind, &value) {
            (AttributeType::String | AttributeType::Text, v) if !v.is_string() => serde_json::Value::String(match n {
                Node::Scalar(s) => s.as_str().to_string(),
                _ => v.to_string(),
            }),
            (AttributeType::Float, serde_json::Value::String(s)) => {
                s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Into::into).unwrap_or(value)
            }
            _ => value,
        };
        match attr.check(&value) {
            Ok(()) => attr.default = Some(value),
            Err(why) => cx.error(n.span(), &format!("{key}.default"), why),
        }
    }
    for (k, _) in map.iter() {
        if !matches!(k.as_str(), "type" | "length" | "required" | "default") {
            cx.warn(
                k.span(),
                &format!("{key}.{}", k.as_str()),
                "unknown key, ignored (known: type, length, required, default)",
            );
        }
    }
    Some(attr)
}

fn parse_index(
    cx: &mut Cx<'_>,
    node: &Node,
    key: &str,
    attributes: &BTreeMap<String, Attribute>,
) -> Option<EntityIndex> {
    let Node::Mapping(map) = node else {
        cx.error(node.span(), key, "must be a mapping with `name` and `range_attribute`");
        return None;
    };
    let name = cx.required_string(map, "name", &format!("{key}.name"));
    let range = cx.required_string(map, "range_attribute", &format!("{key}.range_attribute"));
    let check = |cx: &mut Cx<'_>, attr: &str, span: &marked_yaml::Span, at: &str| match attributes.get(attr) {
        None => cx.error(span, at, format!("no attribute {attr:?} is declared")),
        Some(a) if a.kind == AttributeType::Text => {
            cx.error(span, at, format!("attribute {attr:?} is text, which cannot be indexed"))
        }
        Some(_) => {}
    };
    if let (Some(r), Some(n)) = (&range, map.get_node("range_attribute")) {
        check(cx, r, n.span(), &format!("{key}.range_attribute"));
    }
    let mut partition = Vec::new();
    match present(map.get_node("partition")) {
        None => {}
        Some(Node::Sequence(seq)) => {
            for (i, p) in seq.iter().enumerate() {
                let pkey = format!("{key}.partition[{i}]");
                if let Some(s) = cx.string(p, &pkey) {
                    check(cx, &s, p.span(), &pkey);
                    partition.push(s);
                }
            }
        }
        Some(other) => cx.error(other.span(), &format!("{key}.partition"), "must be a list of attribute names"),
    }
    Some(EntityIndex { name: name?, range_attribute: range?, partition })
}
