//! Image ids: generated UUIDs, or custom ids checked against Cloudflare's rules; and how an id
//! appears in a URL. An id is data: it never becomes a filesystem path or an object key (stores
//! name bytes by random keys), so `../` or `/etc/passwd` are just ids.

use imgbind_wire::Error;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Longest custom id, in characters (Cloudflare's).
pub(crate) const MAX_ID_CHARS: usize = 1024;

/// A new id: a lower-case UUID v4, as Cloudflare generates.
pub(crate) fn generate() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

/// Checks a caller's id: 1 to 1024 characters, no leading or trailing `/`, no empty, `.` or `..`
/// segment (a URL would not keep it), no control characters, and not a UUID (those are the
/// generated ids').
pub(crate) fn check_custom(id: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::invalid(format!("invalid image id: {why}")));
    let chars = id.chars().count();
    if chars == 0 || chars > MAX_ID_CHARS {
        return invalid(&format!("an id has 1 to {MAX_ID_CHARS} characters"));
    }
    if id.starts_with('/') || id.ends_with('/') {
        return invalid("an id cannot start or end with /");
    }
    if id.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
        return invalid("an id cannot have an empty, . or .. path segment");
    }
    if id.chars().any(char::is_control) {
        return invalid("an id cannot hold control characters");
    }
    if uuid::Uuid::try_parse(id).is_ok() {
        return invalid("a custom id cannot be a UUID");
    }
    Ok(())
}

/// What is escaped in a path: controls, space, `"#%<>?\`{}` (and everything non-ASCII).
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// One path segment: `/` escaped too (the API's `/hosted/images/{id}`).
const SEGMENT: &AsciiSet = &PATH.add(b'/');

/// The id as one URL path segment.
pub(crate) fn segment(id: &str) -> String {
    utf8_percent_encode(id, SEGMENT).to_string()
}

/// The id in a delivery URL: its `/`s kept, `%` written `%25` (as Cloudflare's).
pub(crate) fn delivery_path(id: &str) -> String {
    utf8_percent_encode(id, PATH).to_string()
}

/// A percent-encoded path piece, decoded (9401 if it is not UTF-8).
pub(crate) fn decode(piece: &str) -> Result<String, Error> {
    percent_decode_str(piece)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| Error::invalid("the id in the path is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids() {
        for ok in [
            "a",
            "photos/2026/cat.jpg",
            "../x/y".trim_start_matches("../"),
            "é 100%",
        ] {
            check_custom(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let long = "x".repeat(1025);
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../etc/passwd",
            "a/./b",
            "a\nb",
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            long.as_str(),
        ] {
            assert!(check_custom(bad).is_err(), "{bad:?}");
        }
        assert!(uuid::Uuid::try_parse(&generate()).is_ok());
    }

    #[test]
    fn ids_in_urls_round_trip() {
        let id = "a b/c%d?e#f/é";
        assert_eq!(segment(id), "a%20b%2Fc%25d%3Fe%23f%2F%C3%A9");
        assert_eq!(delivery_path(id), "a%20b/c%25d%3Fe%23f/%C3%A9");
        assert_eq!(decode(&segment(id)).unwrap(), id);
        assert_eq!(decode(&delivery_path(id)).unwrap(), id);
    }
}
