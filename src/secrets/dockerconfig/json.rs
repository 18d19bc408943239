//! JSON as Go's `encoding/json` reads it into the kubelet's credential types: every key
//! occurrence kept, in document order, and struct fields matched the Go way.
//!
//! serde_json's `Value` keeps one value per key (the last), so a document with
//! `"auths"` twice, or `"auths"` beside `"Auths"`, would look to secretgate like
//! something other than what the kubelet uses. This reader keeps them all; the checks
//! then deny what two readers could take differently.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A JSON value with objects as ordered `(key, value)` lists, duplicates included.
/// Arrays, numbers and booleans are never read by the checks, so only their kind is kept.
#[derive(Debug, PartialEq)]
pub enum Json {
    Null,
    /// A boolean or a number.
    Scalar,
    String(String),
    Array,
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parses `text`; the error is serde_json's, whose position (never its message, which
    /// may quote the input) callers report.
    pub fn parse(text: &str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
        Ok(Json::Scalar)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
        Ok(Json::Scalar)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Json::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            pairs.push((key, map.next_value::<Json>()?));
        }
        Ok(Json::Object(pairs))
    }
}

/// Whether Go's `encoding/json` decodes object key `key` into the struct field whose
/// JSON name is `field` (lowercase ASCII): an exact match, or else a match under
/// `bytes.EqualFold` (decode.go looks up `byExactName`, then `byFoldedName` built by
/// `foldName`). Unicode simple case folding maps only two non-ASCII letters onto ASCII
/// ones: `ſ` (U+017F) folds with `s` and the Kelvin sign `K` (U+212A) with `k`, so
/// `"authſ"` is `auths` to Go.
pub fn go_field_match(key: &str, field: &str) -> bool {
    let mut chars = key.chars();
    for expected in field.chars() {
        match chars.next() {
            Some(c) if c.to_ascii_lowercase() == expected => {}
            Some('\u{17F}') if expected == 's' => {}
            Some('\u{212A}') if expected == 'k' => {}
            _ => return false,
        }
    }
    chars.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_keep_every_key_in_order() {
        let doc = Json::parse(r#"{"b":1,"a":{"x":null,"x":"y"},"b":[{"z":1}],"\u0041":true}"#);
        let pairs = |v: Vec<(&str, Json)>| {
            Json::Object(v.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        };
        let inner = pairs(vec![("x", Json::Null), ("x", Json::String("y".into()))]);
        let want = pairs(vec![
            ("b", Json::Scalar),
            ("a", inner),
            ("b", Json::Array),
            ("A", Json::Scalar),
        ]);
        assert_eq!(doc.expect("parses"), want);
        assert!(Json::parse("{} x").is_err(), "trailing characters");
        assert!(Json::parse(r#"{"a":1,}"#).is_err());
    }

    #[test]
    fn field_names_match_as_go_matches_them() {
        for (key, field, matches) in [
            ("auths", "auths", true),
            ("Auths", "auths", true),
            ("AUTHS", "auths", true),
            ("aUtHs", "auths", true),
            ("auth\u{17F}", "auths", true),
            ("u\u{17F}ername", "username", true),
            ("\u{212A}", "k", true),
            ("auth", "auths", false),
            ("authss", "auths", false),
            ("auths ", "auths", false),
            ("\u{130}", "i", false),
            ("", "auth", false),
        ] {
            assert_eq!(go_field_match(key, field), matches, "{key:?} ~ {field}");
        }
    }
}
