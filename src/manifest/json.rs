//! The strict JSON layer both documents share: bytes to a tree, and the tree's objects to
//! known fields, with a path for every error.
//!
//! **Why not `#[derive(Deserialize)]` with `deny_unknown_fields` straight into raw
//! structs.** serde's errors carry a line and column but no path, and their text quotes
//! the offending value (`invalid type: string "…", expected u64`), which may be PHI. So the
//! bytes are decoded once into [`Json`], a tree that refuses duplicate keys (which
//! `serde_json::Value` silently resolves to the last one, while other parsers take the
//! first: an ambiguity a manifest must not have), and the tree is then taken apart field
//! by field. [`Fields::new`] is `deny_unknown_fields` with a path: every key must be one
//! the format defines. Depth is bounded by serde_json's recursion limit (128); size by
//! the caller's byte limit, checked before this layer runs.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::{FieldPath, JsonType, Location, ManifestError, Problem};

/// A JSON value with objects in document order and no duplicate keys.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// Check the size, the encoding and the syntax; return the tree.
pub(crate) fn decode(bytes: &[u8], max_bytes: usize) -> Result<Json, ManifestError> {
    if bytes.len() > max_bytes {
        return Err(ManifestError::new(
            Location::Document,
            Problem::TooLarge { limit: max_bytes },
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ManifestError::new(
            Location::Document,
            Problem::NotUtf8 {
                valid_up_to: e.valid_up_to(),
            },
        )
    })?;
    serde_json::from_str::<Json>(text).map_err(|e| {
        // The error's text is never used: it may quote input.
        let problem = match e.classify() {
            serde_json::error::Category::Eof => Problem::Truncated,
            // The visitor below raises exactly one data error: a duplicate key.
            serde_json::error::Category::Data => Problem::DuplicateKey,
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => {
                Problem::Syntax
            }
        };
        ManifestError::new(
            Location::Position {
                line: e.line(),
                column: e.column(),
            },
            problem,
        )
    })
}

/// An object's fields, every key checked against the format's list.
pub(crate) struct Fields {
    path: FieldPath,
    entries: Vec<(&'static str, Json)>,
}

impl Fields {
    /// `value` must be an object whose keys are all in `known`.
    pub(crate) fn new(
        value: Json,
        path: &FieldPath,
        known: &[&'static str],
    ) -> Result<Self, ManifestError> {
        let Json::Object(members) = value else {
            return Err(wrong_type(path, JsonType::Object));
        };
        let mut entries = Vec::with_capacity(members.len());
        for (key, v) in members {
            match known.iter().find(|k| **k == key) {
                Some(k) => entries.push((*k, v)),
                None => {
                    return Err(ManifestError::at(
                        &path.unknown(&key),
                        Problem::UnknownField,
                    ));
                }
            }
        }
        Ok(Self {
            path: path.clone(),
            entries,
        })
    }

    /// A required field's value and path.
    pub(crate) fn required(
        &mut self,
        key: &'static str,
    ) -> Result<(Json, FieldPath), ManifestError> {
        let path = self.path.key(key);
        match self.optional(key) {
            Some(found) => Ok(found),
            None => Err(ManifestError::at(&path, Problem::MissingField)),
        }
    }

    /// An optional field's value and path.
    pub(crate) fn optional(&mut self, key: &'static str) -> Option<(Json, FieldPath)> {
        let i = self.entries.iter().position(|(k, _)| *k == key)?;
        let (_, v) = self.entries.swap_remove(i);
        Some((v, self.path.key(key)))
    }
}

pub(crate) fn wrong_type(path: &FieldPath, expected: JsonType) -> ManifestError {
    ManifestError::at(path, Problem::WrongType { expected })
}

/// A string of 1..=`max` bytes, every byte satisfying `allowed`.
pub(crate) fn string(
    value: Json,
    path: &FieldPath,
    max: usize,
    allowed: impl Fn(u8) -> bool,
) -> Result<String, ManifestError> {
    let Json::String(s) = value else {
        return Err(wrong_type(path, JsonType::String));
    };
    if s.is_empty() {
        return Err(ManifestError::at(path, Problem::Empty));
    }
    if s.len() > max {
        return Err(ManifestError::at(path, Problem::TooLong { max }));
    }
    if !s.bytes().all(allowed) {
        return Err(ManifestError::at(path, Problem::Character));
    }
    Ok(s)
}

/// An integer in `0..=max`, written without a fraction or exponent.
pub(crate) fn integer(value: Json, path: &FieldPath, max: u64) -> Result<u64, ManifestError> {
    let Json::Number(n) = value else {
        return Err(wrong_type(path, JsonType::Integer));
    };
    let problem = if let Some(u) = n.as_u64() {
        if u <= max {
            return Ok(u);
        }
        Problem::TooBig { max }
    } else if n.is_i64() {
        Problem::Negative
    } else {
        // A float: `1.5`, `1e3`, `1.0`, or an integer too large for u64.
        let f = n.as_f64().unwrap_or(f64::NAN);
        if f < 0.0 {
            Problem::Negative
        } else if f.fract() == 0.0 && f > max as f64 {
            Problem::TooBig { max }
        } else {
            Problem::NotAnInteger
        }
    };
    Err(ManifestError::at(path, problem))
}

/// An array of at most `max` items (at least one when `non_empty`), with each item's path.
pub(crate) fn array(
    value: Json,
    path: &FieldPath,
    max: usize,
    non_empty: bool,
) -> Result<Vec<(Json, FieldPath)>, ManifestError> {
    let Json::Array(items) = value else {
        return Err(wrong_type(path, JsonType::Array));
    };
    if items.len() > max {
        return Err(ManifestError::at(path, Problem::TooManyItems { max }));
    }
    if non_empty && items.is_empty() {
        return Err(ManifestError::at(path, Problem::Empty));
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, v)| (v, path.index(i)))
        .collect())
}

/// Visible ASCII, no space: identifiers, URIs, codes.
pub(crate) fn visible(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Visible ASCII and space: free text.
pub(crate) fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

// === impl Deserialize for Json ===

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        // JSON text has no NaN or infinity; serde_json refuses out-of-range numbers itself.
        serde_json::Number::from_f64(v)
            .map(Json::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Json>()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value::<Json>()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}
