//! A review's request as the rules read it, borrowed from the body: kube's
//! `AdmissionRequest` builds an owned `String` for every name, uid and GVK/GVR field and
//! a JSON tree for `options`, though nothing here keeps them past the review.
//!
//! The shape checks are kube's: the same fields are required, every field that kube's type
//! decodes is still read and must have its type (a string where kube wants a `String`,
//! any JSON where it takes a `RawExtension`), so a body gets the same 400 as before.
//! Strings borrow from the body unless a JSON escape forces a copy (`Cow`).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use kube::core::admission::Operation;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// `AdmissionRequest<K>` with borrowed strings. Fields are declared in kube's order, so a
/// body missing several gets the same `missing field` error.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
// `resource`, the sub-resources, `requestKind`/`requestResource` and `options` are read
// only for their shape checks (no rule reads them).
#[allow(dead_code)]
pub(super) struct Request<'a, K> {
    #[serde(borrow)]
    pub(super) uid: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) kind: Gvk<'a>,
    #[serde(borrow)]
    pub(super) resource: Gvr<'a>,
    #[serde(default, borrow)]
    pub(super) sub_resource: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) request_kind: Option<Gvk<'a>>,
    #[serde(default, borrow)]
    pub(super) request_resource: Option<Gvr<'a>>,
    #[serde(default, borrow)]
    pub(super) request_sub_resource: Option<Str<'a>>,
    #[serde(default, borrow)]
    pub(super) name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) namespace: Option<Str<'a>>,
    pub(super) operation: Operation,
    #[serde(borrow)]
    pub(super) user_info: User<'a>,
    pub(super) object: Option<K>,
    pub(super) old_object: Option<K>,
    #[serde(default)]
    pub(super) dry_run: bool,
    /// Read only to check it is JSON, as kube's `RawExtension` would be.
    #[serde(default)]
    pub(super) options: Option<AnyJson>,
}

impl<'a, K> Request<'a, K> {
    pub(super) fn namespace(&self) -> &str {
        self.namespace.as_ref().map_or("", |n| &n.0)
    }

    /// The same request with its objects converted by `f`.
    pub(super) fn map<T>(self, f: impl Fn(K) -> T) -> Request<'a, T> {
        Request {
            uid: self.uid,
            kind: self.kind,
            resource: self.resource,
            sub_resource: self.sub_resource,
            request_kind: self.request_kind,
            request_resource: self.request_resource,
            request_sub_resource: self.request_sub_resource,
            name: self.name,
            namespace: self.namespace,
            operation: self.operation,
            user_info: self.user_info,
            object: self.object.map(&f),
            old_object: self.old_object.map(&f),
            dry_run: self.dry_run,
            options: self.options,
        }
    }
}

/// A GroupVersionKind, every field required as in kube's.
#[derive(Deserialize)]
pub(super) struct Gvk<'a> {
    #[serde(borrow)]
    pub(super) group: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) version: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) kind: Cow<'a, str>,
}

/// A GroupVersionResource as kube's reads it (with its undocumented `api_version`), for
/// the shape check only.
#[derive(Deserialize)]
#[allow(dead_code)]
pub(super) struct Gvr<'a> {
    #[serde(borrow)]
    pub(super) group: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) version: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) resource: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) api_version: Cow<'a, str>,
}

/// `userInfo`, read as k8s-openapi's `UserInfo` is: every field optional, a repeated key
/// keeps its last value, unknown keys are skipped.
#[derive(Default)]
pub(super) struct User<'a> {
    pub(super) username: Option<Str<'a>>,
    pub(super) uid: Option<Str<'a>>,
    pub(super) groups: Option<Vec<Str<'a>>>,
    pub(super) extra: Option<BTreeMap<Str<'a>, Vec<Str<'a>>>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for User<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Fields<'a> {
            type Value = User<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("UserInfo")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<User<'a>, A::Error> {
                let mut user = User::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key.0 {
                        "username" => user.username = map.next_value()?,
                        "uid" => user.uid = map.next_value()?,
                        "groups" => user.groups = map.next_value()?,
                        "extra" => user.extra = map.next_value()?,
                        _ => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                Ok(user)
            }
        }
        d.deserialize_struct(
            "UserInfo",
            &["extra", "groups", "uid", "username"],
            Fields(std::marker::PhantomData),
        )
    }
}

/// A JSON string, borrowed from the body unless it has escapes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Str<'a>(pub(super) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Str<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// Any JSON value, checked as `serde_json::Value` would decode it (strings valid UTF-8
/// without lone surrogates, numbers in range, the same nesting limit) but kept nowhere.
pub(super) struct AnyJson;

impl<'de> Deserialize<'de> for AnyJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyJson)
    }
}

impl<'de> Visitor<'de> for AnyJson {
    type Value = AnyJson;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_unit<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_none<E: de::Error>(self) -> Result<AnyJson, E> {
        Ok(AnyJson)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<AnyJson, D::Error> {
        AnyJson::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AnyJson, A::Error> {
        while seq.next_element::<AnyJson>()?.is_some() {}
        Ok(AnyJson)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AnyJson, A::Error> {
        // serde_json::Value keys are Strings: a key is read as a string like a value.
        while map.next_key::<AnyJson>()?.is_some() {
            map.next_value::<AnyJson>()?;
        }
        Ok(AnyJson)
    }
}
