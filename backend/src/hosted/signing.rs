//! Signed delivery URLs, as Cloudflare's: `exp` (Unix seconds, optional) then `sig`, the
//! lower-case hex HMAC-SHA256 of the URL's path plus `?exp=N` when there is one, under a key the
//! operator configured (`--signing-key NAME=SECRET`). Verification tries every configured key
//! (so keys can be rotated) and compares in constant time.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use imgbind_wire::{Error, ErrorCode};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The signed string: the path, plus `?exp=N` when the URL expires.
fn message(path: &str, exp: Option<i64>) -> String {
    match exp {
        Some(exp) => format!("{path}?exp={exp}"),
        None => path.to_owned(),
    }
}

fn mac(secret: &str, message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(message.as_bytes());
    mac
}

/// The query string (`exp=N&sig=H` or `sig=H`) signing `path` with `secret`.
pub(crate) fn sign(secret: &str, path: &str, exp: Option<i64>) -> String {
    let sig = hex::encode(mac(secret, &message(path, exp)).finalize().into_bytes());
    match exp {
        Some(exp) => format!("exp={exp}&sig={sig}"),
        None => format!("sig={sig}"),
    }
}

/// Checks a delivery request's query against the keys: 9430 when the signature is missing,
/// malformed, expired (`now` in Unix seconds) or made with no configured key. Only `exp` and
/// `sig` may be present.
pub(crate) fn verify(
    keys: &BTreeMap<String, String>,
    path: &str,
    query: Option<&str>,
    now: i64,
) -> Result<(), Error> {
    let denied = |why: &str| Err(Error::new(ErrorCode::Unauthorized, why.to_owned()));
    let (mut exp, mut sig) = (None, None);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("exp", v)) if exp.is_none() => exp = Some(v),
            Some(("sig", v)) if sig.is_none() => sig = Some(v),
            _ => return denied("a signed URL carries only exp and sig"),
        }
    }
    let Some(sig) = sig else {
        return denied("this image requires a signed URL");
    };
    let exp = match exp {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(exp) if exp >= now => Some(exp),
            Ok(_) => return denied("the signed URL has expired"),
            Err(_) => return denied("the signed URL's exp is not a number"),
        },
    };
    let Ok(sig) = hex::decode(sig) else {
        return denied("the signature is not hex");
    };
    let message = message(path, exp);
    // Every key is tried, so the time taken does not say which one matched.
    let matched = keys.values().fold(false, |matched, secret| {
        mac(secret, &message).verify_slice(&sig).is_ok() | matched
    });
    if matched {
        Ok(())
    } else {
        denied("invalid signature")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_cloudflare_documents() {
        // Miniflare's published check value: HMAC-SHA256(its local key, "/cdn-cgi/mf/imagedelivery/priv/public").
        let q = sign(
            "miniflare-local-dev-images-signing-key",
            "/cdn-cgi/mf/imagedelivery/priv/public",
            None,
        );
        assert!(q.starts_with("sig=47124d69"), "{q}");
        assert!(q.ends_with("0dba07b"), "{q}");
    }

    #[test]
    fn verifies_expiry_keys_and_tampering() {
        let keys = BTreeMap::from([
            ("default".to_owned(), "k1".to_owned()),
            ("old".to_owned(), "k0".to_owned()),
        ]);
        let path = "/hosted/delivery/h/id/public";
        let q = sign("k1", path, Some(1000));
        assert!(verify(&keys, path, Some(&q), 999).is_ok());
        assert!(verify(&keys, path, Some(&q), 1000).is_ok());
        assert!(verify(&keys, path, Some(&q), 1001).is_err());
        assert!(verify(&keys, "/hosted/delivery/h/id/thumb", Some(&q), 999).is_err());
        assert!(verify(&keys, path, Some(&q.replace("1000", "2000")), 999).is_err());
        assert!(verify(&keys, path, Some(&format!("{q}&x=1")), 999).is_err());
        assert!(verify(&keys, path, None, 0).is_err());
        let old = sign("k0", path, None);
        assert!(verify(&keys, path, Some(&old), 5).is_ok());
        assert!(verify(&keys, path, Some(&sign("k2", path, None)), 5).is_err());
        assert!(verify(&BTreeMap::new(), path, Some(&old), 5).is_err());
    }
}
