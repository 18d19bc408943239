//! Reading a review body: the one-pass typed decode of a well-formed review, and the
//! careful envelope read that gives a precise 400 (or a pass-through) for anything else.
//! Errors describe JSON problems by position and category, never by quoting the input.

use serde::Deserialize;

use super::request::{Gvk, Request, Str};
use super::{API_VERSION, DecodeError, KIND, Summary, clip};

/// An AdmissionReview decoded in one pass, its request borrowed from the body. kube's
/// `AdmissionReview<K>` flattens its TypeMeta, which makes serde buffer the whole body
/// into an intermediate tree before decoding it again; this names the two fields instead.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review<'a, K> {
    #[serde(default, borrow)]
    api_version: Option<Str<'a>>,
    #[serde(default, borrow)]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    request: Option<Request<'a, K>>,
}

/// The request of a v1 AdmissionReview whose object is the core/v1 `kind`, with a uid;
/// `None` for any other body (the careful path then says why).
pub(super) fn decode_well_formed<'a, K>(body: &'a [u8], kind: &str) -> Option<Request<'a, K>>
where
    K: Deserialize<'a>,
{
    decode_well_formed_if(body, |gvk| {
        gvk.group.is_empty() && gvk.version == "v1" && gvk.kind == kind
    })
}

/// The request of a v1 AdmissionReview whose object's kind `ours` accepts, with a uid;
/// `None` for any other body.
pub(super) fn decode_well_formed_if<'a, K>(
    body: &'a [u8],
    ours: impl Fn(&Gvk<'_>) -> bool,
) -> Option<Request<'a, K>>
where
    K: Deserialize<'a>,
{
    let review: Review<'a, K> = serde_json::from_slice(body).ok()?;
    let is = |field: &Option<Str<'_>>, want: &str| field.as_ref().is_some_and(|s| s.0 == want);
    if !is(&review.api_version, API_VERSION) || !is(&review.kind, KIND) {
        return None;
    }
    let request = review.request?;
    (ours(&request.kind) && !request.uid.is_empty()).then_some(request)
}

/// The typed request, once `Envelope::read` has checked apiVersion, kind and uid.
pub(super) fn decode<'a, K>(body: &'a [u8]) -> Result<Request<'a, K>, DecodeError>
where
    K: Deserialize<'a>,
{
    let review: Review<'a, K> = serde_json::from_slice(body).map_err(describe)?;
    review.request.ok_or(DecodeError::NoRequest)
}

/// Describes a JSON error by position and category. serde's own text for a wrong type or
/// value quotes the input (`invalid type: string "…"`), and the input may be a secret.
pub(super) fn describe(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    let msg = e.to_string();
    DecodeError::Json(match e.classify() {
        Category::Syntax => format!("not valid JSON ({at})"),
        Category::Eof => format!("JSON ends early ({at})"),
        Category::Io => format!("cannot read the body ({at})"),
        Category::Data if msg.starts_with("missing field") => {
            // "missing field `uid` at line 1 column 40" names only the field.
            msg
        }
        Category::Data => format!("a field has the wrong type or value ({at})"),
    })
}

/// The fields of a review read before deciding how to decode the rest.
#[derive(Debug, Default)]
pub(super) struct Envelope {
    pub(super) uid: String,
    group: String,
    version: String,
    kind: String,
    namespace: String,
    name: String,
    operation: String,
    dry_run: bool,
}

impl Envelope {
    pub(super) fn read(body: &[u8]) -> Result<Self, DecodeError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Head {
            #[serde(default)]
            api_version: Option<String>,
            #[serde(default)]
            kind: Option<String>,
            #[serde(default)]
            request: Option<RequestHead>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RequestHead {
            #[serde(default)]
            uid: Option<String>,
            #[serde(default)]
            kind: Option<Gvk>,
            #[serde(default)]
            namespace: Option<String>,
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            operation: Option<String>,
            #[serde(default)]
            dry_run: Option<bool>,
        }
        #[derive(Deserialize, Default)]
        struct Gvk {
            #[serde(default)]
            group: String,
            #[serde(default)]
            version: String,
            #[serde(default)]
            kind: String,
        }

        let head: Head = serde_json::from_slice(body).map_err(describe)?;
        match head.api_version.as_deref() {
            Some(API_VERSION) => {}
            other => return Err(DecodeError::ApiVersion(quoted(other))),
        }
        match head.kind.as_deref() {
            Some(KIND) => {}
            other => return Err(DecodeError::Kind(quoted(other))),
        }
        let req = head.request.ok_or(DecodeError::NoRequest)?;
        let uid = req
            .uid
            .filter(|u| !u.is_empty())
            .ok_or(DecodeError::NoUid)?;
        let gvk = req.kind.unwrap_or_default();
        Ok(Self {
            uid,
            group: gvk.group,
            version: gvk.version,
            kind: gvk.kind,
            namespace: req.namespace.unwrap_or_default(),
            name: req.name.unwrap_or_default(),
            operation: req.operation.unwrap_or_default(),
            dry_run: req.dry_run.unwrap_or(false),
        })
    }

    pub(super) fn gvk(&self) -> kube::core::GroupVersionKind {
        kube::core::GroupVersionKind::gvk(&self.group, &self.version, &self.kind)
    }

    pub(super) fn is_core_v1(&self, kind: &str) -> bool {
        self.group.is_empty() && self.version == "v1" && self.kind == kind
    }

    pub(super) fn summary(&self) -> Summary {
        Summary {
            uid: self.uid.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            operation: self.operation.clone(),
            dry_run: self.dry_run,
            ..Summary::default()
        }
    }
}

/// An apiVersion or kind as an error may quote it: the sender chose it, so it is clipped
/// (a review body may be megabytes of one string).
fn quoted(value: Option<&str>) -> String {
    clip(value.unwrap_or(""), 64).into_owned()
}
