//! A Secret's `data`, decoded into three buffers instead of a map of owned entries.
//!
//! `BTreeMap<String, ByteString>` costs two allocations per entry, to build and to free,
//! and a tenant can send a hundred thousand entries: decoding and dropping them was most
//! of what such a review cost once the rules were linear (BENCHMARKS.md, shape 1). Here
//! keys go into one string, decoded values into one byte buffer, and the entries are
//! offsets into both, sorted by key.
//!
//! What it holds is what the map held: values base64-decoded with the same engine (an
//! invalid value fails the decode), `null` as an empty value, a repeated key keeping its
//! last value, keys in byte order.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretData {
    keys: String,
    values: Vec<u8>,
    /// Sorted by key, one per key.
    entries: Vec<Entry>,
}

/// Byte ranges in `keys` and `values`; a review body is a few MiB, so u32 is enough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    key: (u32, u32),
    value: (u32, u32),
}

impl SecretData {
    /// The decoded value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .binary_search_by(|e| self.key(e).cmp(key))
            .ok()
            .map(|i| self.value(&self.entries[i]))
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|e| (self.key(e), self.value(e)))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn key(&self, e: &Entry) -> &str {
        &self.keys[e.key.0 as usize..e.key.1 as usize]
    }

    fn value(&self, e: &Entry) -> &[u8] {
        &self.values[e.value.0 as usize..e.value.1 as usize]
    }

    /// Key order, and the last of repeated keys. The API server sends keys sorted and
    /// once each, which one pass checks.
    fn sort(&mut self) {
        let sorted = self
            .entries
            .windows(2)
            .all(|pair| self.key(&pair[0]) < self.key(&pair[1]));
        if sorted {
            return;
        }
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_by(|a, b| self.key(a).cmp(self.key(b)));
        let mut unique: Vec<Entry> = Vec::with_capacity(entries.len());
        for e in entries {
            match unique.last_mut() {
                Some(last) if self.key(last) == self.key(&e) => *last = e,
                _ => unique.push(e),
            }
        }
        self.entries = unique;
    }
}

/// Keys only: the values are secret.
impl fmt::Debug for SecretData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretData")
            .field("keys", &self.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'de> serde::Deserialize<'de> for SecretData {
    /// An object of base64 strings (or `null`), or `null` for no data.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_option(Object)
    }
}

struct Object;

impl<'de> Visitor<'de> for Object {
    type Value = SecretData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of base64 strings, or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<SecretData, E> {
        Ok(SecretData::default())
    }

    fn visit_none<E: de::Error>(self) -> Result<SecretData, E> {
        Ok(SecretData::default())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<SecretData, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretData, A::Error> {
        let mut data = SecretData::default();
        loop {
            let key_start = offset(data.keys.len())?;
            if map.next_key_seed(Key(&mut data.keys))?.is_none() {
                break;
            }
            let key_end = offset(data.keys.len())?;
            let value_start = offset(data.values.len())?;
            map.next_value_seed(Value(&mut data.values))?;
            data.entries.push(Entry {
                key: (key_start, key_end),
                value: (value_start, offset(data.values.len())?),
            });
        }
        data.sort();
        Ok(data)
    }
}

fn offset<E: de::Error>(n: usize) -> Result<u32, E> {
    u32::try_from(n).map_err(|_| E::custom("secret data over 4 GiB"))
}

/// Appends a key to the keys buffer.
struct Key<'b>(&'b mut String);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a data key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push_str(v);
        Ok(())
    }
}

/// Decodes a base64 value onto the end of the values buffer, as `ByteString` does:
/// `null` is an empty value, anything but a string is an error.
struct Value<'b>(&'b mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Value<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for Value<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64-encoded string")
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_str(self)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        let start = self.0.len();
        self.0
            .resize(start + base64::decoded_len_estimate(v.len()), 0);
        match STANDARD.decode_slice(v, &mut self.0[start..]) {
            Ok(written) => {
                self.0.truncate(start + written);
                Ok(())
            }
            Err(e) => {
                self.0.truncate(start);
                Err(E::custom(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;

    use super::*;

    /// What the API type's map makes of the same JSON.
    fn as_map(json: &str) -> Result<BTreeMap<String, ByteString>, String> {
        let map: Option<BTreeMap<String, ByteString>> =
            serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(map.unwrap_or_default())
    }

    fn packed(json: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        let data: SecretData = serde_json::from_str(json).map_err(|e| e.to_string())?;
        Ok(data
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_vec()))
            .collect())
    }

    #[test]
    fn decodes_what_the_api_type_decodes() {
        for json in [
            r#"{"b":"eA==","a":"eHl6","c":null,"e":""}"#,
            r#"{"k":"eA==","k":"eXk=","a\u0041":"eA=="}"#,
            r#"{}"#,
            "null",
            r#"{"bad":"not base64!"}"#,
            r#"{"bad":"eA"}"#,
            r#"{"n":1}"#,
            r#"["eA=="]"#,
        ] {
            let map =
                as_map(json).map(|m| m.into_iter().map(|(k, v)| (k, v.0)).collect::<Vec<_>>());
            assert_eq!(packed(json).is_ok(), map.is_ok(), "{json}");
            if let Ok(map) = map {
                assert_eq!(packed(json).expect("decoded"), map, "{json}");
            }
        }
    }

    #[test]
    fn looks_up_by_key() {
        let data: SecretData =
            serde_json::from_str(r#"{"tls.key":"a2V5","tls.crt":"Y3J0","ca.crt":null}"#)
                .expect("decoded");
        assert_eq!(data.get("tls.key"), Some(b"key".as_slice()));
        assert_eq!(data.get("tls.crt"), Some(b"crt".as_slice()));
        assert_eq!(data.get("ca.crt"), Some(b"".as_slice()));
        assert_eq!(data.get("other"), None);
        assert_eq!(data.len(), 3);
        assert_eq!(
            format!("{data:?}"),
            r#"SecretData { keys: ["ca.crt", "tls.crt", "tls.key"], .. }"#
        );
    }
}
