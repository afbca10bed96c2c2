//! The JSON of the hosted API: the option objects as workerd's `images.d.ts` names them (parsed
//! and checked here, 9401 for anything wrong) and `ImageMetadata` as answered.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use imgbind_wire::Error;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::filter::{self, Condition};
use super::ids;
use super::store::StoredImage;

/// Most bytes of `metadata` as JSON (Cloudflare's limit).
pub(crate) const MAX_METADATA_BYTES: usize = 1024;
/// Most characters of `creator` and `filename`.
pub(crate) const MAX_TEXT_CHARS: usize = 1024;
/// `list`'s page size when none is given, and the most it may ask for.
pub(crate) const DEFAULT_LIST_LIMIT: u32 = 50;
pub(crate) const MAX_LIST_LIMIT: u32 = 1000;
/// A direct-upload link's life, in seconds: default, least and most (Cloudflare's).
pub(crate) const DEFAULT_UPLOAD_LINK_SECS: i64 = 1800;
pub(crate) const MIN_UPLOAD_LINK_SECS: i64 = 120;
pub(crate) const MAX_UPLOAD_LINK_SECS: i64 = 21_600;

/// `ImageUploadOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UploadOptions {
    pub(crate) id: Option<String>,
    pub(crate) filename: Option<String>,
    #[serde(rename = "requireSignedURLs")]
    pub(crate) require_signed_urls: Option<bool>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) creator: Option<String>,
    pub(crate) encoding: Option<String>,
}

/// `ImageUpdateOptions`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UpdateOptions {
    #[serde(rename = "requireSignedURLs")]
    pub(crate) require_signed_urls: Option<bool>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) creator: Option<String>,
}

/// `ImageDirectUploadOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DirectUploadOptions {
    pub(crate) id: Option<String>,
    #[serde(rename = "requireSignedURLs")]
    pub(crate) require_signed_urls: Option<bool>,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) creator: Option<String>,
    pub(crate) expires_in: Option<Value>,
}

/// `ImageSignedUrlOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignedUrlOptions {
    pub(crate) variant: Option<String>,
    pub(crate) expires_in: Option<Value>,
    pub(crate) key_name: Option<String>,
}

/// `ImageListOptions` (and the docs' `metadataFilter` spelling of `filter.metadata`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ListOptions {
    pub(crate) limit: Option<Value>,
    pub(crate) cursor: Option<String>,
    pub(crate) sort_order: Option<String>,
    pub(crate) creator: Option<String>,
    pub(crate) filter: Option<ListFilter>,
    pub(crate) metadata_filter: Option<Value>,
}

/// `ImageListFilter`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListFilter {
    pub(crate) metadata: Option<Value>,
}

/// A list request, checked.
#[derive(Debug)]
pub(crate) struct ListRequest {
    pub(crate) limit: u32,
    pub(crate) descending: bool,
    pub(crate) after: Option<i64>,
    pub(crate) creator: Option<String>,
    pub(crate) conditions: Vec<Condition>,
}

/// Parses an options object (JSON text; empty means `{}`).
pub(crate) fn parse<T: DeserializeOwned + Default>(what: &str, json: &[u8]) -> Result<T, Error> {
    if json.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(json).map_err(|e| Error::invalid(format!("{what} options: {e}")))
}

/// Checks `metadata` (≤ 1024 bytes as JSON), `creator` and `filename` (≤ 1024 characters).
pub(crate) fn check_fields(
    metadata: Option<&Map<String, Value>>,
    creator: Option<&str>,
    filename: Option<&str>,
) -> Result<(), Error> {
    if let Some(meta) = metadata {
        let bytes = Value::Object(meta.clone()).to_string().len();
        if bytes > MAX_METADATA_BYTES {
            return Err(Error::invalid(format!(
                "metadata is {bytes} bytes as JSON; at most {MAX_METADATA_BYTES} are allowed"
            )));
        }
    }
    for (name, text) in [("creator", creator), ("filename", filename)] {
        if text.is_some_and(|t| t.chars().count() > MAX_TEXT_CHARS) {
            return Err(Error::invalid(format!(
                "{name} has more than {MAX_TEXT_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// A whole number of seconds in `range`, or `default` when absent.
pub(crate) fn seconds(
    what: &str,
    value: Option<&Value>,
    default: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> Result<Option<i64>, Error> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    match value.as_i64() {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(Error::invalid(format!(
            "{what} must be a whole number of seconds from {} to {}",
            range.start(),
            range.end()
        ))),
    }
}

impl ListOptions {
    /// Checks limit, order, cursor and filter.
    pub(crate) fn into_request(self) -> Result<ListRequest, Error> {
        let limit = match self.limit.filter(|v| !v.is_null()) {
            None => DEFAULT_LIST_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if (1..=u64::from(MAX_LIST_LIMIT)).contains(&n) => n as u32,
                _ => {
                    return Err(Error::invalid(format!(
                        "limit must be a whole number from 1 to {MAX_LIST_LIMIT}"
                    )))
                }
            },
        };
        let descending = match self.sort_order.as_deref() {
            None | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "sortOrder must be \"asc\" or \"desc\", not {other:?}"
                )))
            }
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(decode_cursor(cursor, descending)?),
        };
        let metadata = match (self.filter.and_then(|f| f.metadata), self.metadata_filter) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "give filter.metadata or metadataFilter, not both",
                ))
            }
            (a, b) => a.or(b),
        };
        let conditions = match metadata {
            Some(m) => filter::parse(&m)?,
            None => Vec::new(),
        };
        Ok(ListRequest {
            limit,
            descending,
            after,
            creator: self.creator,
            conditions,
        })
    }
}

/// An opaque cursor: the last position listed and the order it was listed in.
pub(crate) fn encode_cursor(position: i64, descending: bool) -> String {
    let order = if descending { "d" } else { "a" };
    URL_SAFE_NO_PAD.encode(format!("v1:{order}:{position}"))
}

fn decode_cursor(cursor: &str, descending: bool) -> Result<i64, Error> {
    let invalid = || Error::invalid("cursor is not one list() returned (for this sortOrder)");
    let text = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(text).map_err(|_| invalid())?;
    let order = if descending { "d" } else { "a" };
    text.strip_prefix(&format!("v1:{order}:"))
        .and_then(|p| p.parse::<i64>().ok())
        .ok_or_else(invalid)
}

/// Unix time now, in seconds and milliseconds.
pub(crate) fn now() -> (i64, i64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    (since.as_secs() as i64, since.as_millis() as i64)
}

/// Where images are delivered from: the public URL, account hash and variant names.
pub(crate) struct Urls<'a> {
    pub(crate) public_url: &'a str,
    pub(crate) account_hash: &'a str,
    pub(crate) variants: Vec<&'a str>,
}

impl Urls<'_> {
    /// The path of an image's variant (what a signature signs).
    pub(crate) fn delivery_path(&self, id: &str, variant: &str) -> String {
        format!(
            "/hosted/delivery/{}/{}/{variant}",
            self.account_hash,
            ids::delivery_path(id)
        )
    }

    /// A direct upload's link.
    pub(crate) fn upload_url(&self, id: &str) -> String {
        format!("{}/hosted/upload/{}", self.public_url, ids::segment(id))
    }

    /// `ImageMetadata` for a stored image (`variants` as absolute URLs; `draft` only on drafts;
    /// `filename` and `creator` only when set).
    pub(crate) fn metadata(&self, image: &StoredImage) -> Value {
        let uploaded = UNIX_EPOCH + Duration::from_millis(image.uploaded_ms.max(0) as u64);
        let mut out = json!({
            "id": image.id,
            "uploaded": humantime::format_rfc3339_millis(uploaded).to_string(),
            "requireSignedURLs": image.require_signed_urls,
            "meta": image.meta,
            "variants": self.variants.iter()
                .map(|v| format!("{}{}", self.public_url, self.delivery_path(&image.id, v)))
                .collect::<Vec<_>>(),
        });
        let fields = out.as_object_mut().expect("an object");
        if let Some(filename) = &image.filename {
            fields.insert("filename".into(), filename.clone().into());
        }
        if let Some(creator) = &image.creator {
            fields.insert("creator".into(), creator.clone().into());
        }
        if image.draft {
            fields.insert("draft".into(), true.into());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_options_are_checked() {
        let ok: ListOptions = parse("list", br#"{"limit": 10, "sortOrder": "desc"}"#).unwrap();
        let req = ok.into_request().unwrap();
        assert_eq!((req.limit, req.descending), (10, true));
        for bad in [
            r#"{"limit": 0}"#,
            r#"{"limit": 1001}"#,
            r#"{"limit": 2.5}"#,
            r#"{"limit": "5"}"#,
            r#"{"sortOrder": "up"}"#,
            r#"{"cursor": "nonsense"}"#,
            r#"{"filter": {"metadata": {"a-b": 1}}}"#,
        ] {
            let parsed =
                parse::<ListOptions>("list", bad.as_bytes()).and_then(|o| o.into_request());
            assert_eq!(parsed.unwrap_err().code().as_u16(), 9401, "{bad}");
        }
        let asc = encode_cursor(42, false);
        assert_eq!(decode_cursor(&asc, false).unwrap(), 42);
        assert!(decode_cursor(&asc, true).is_err());
    }
}
