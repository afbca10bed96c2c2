//! Hosted images' flags (flattened into `imgbind serve`) and the typed settings they become:
//! which store, who may write, the public URL images are delivered from, signing keys and
//! variants.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use imgbind_wire::{parse_steps, Error, OutputFormat};
use serde_json::{Map, Value};

/// Cloudflare's hosted-upload limit: 10 MB.
pub(crate) const DEFAULT_MAX_UPLOAD_BYTES: u64 = 10 * 1024 * 1024;
/// Cloudflare's hosted limit on pixels: 100 megapixels.
pub(crate) const MAX_UPLOAD_PIXELS: u64 = 100_000_000;
/// Cloudflare's hosted limit on a side: 12 000 px.
pub(crate) const MAX_UPLOAD_SIDE: u32 = 12_000;

/// The flags of hosted images. Without `--data` or `--database-url`, hosted routes answer 9431.
#[derive(Debug, Args, Default)]
pub struct HostedArgs {
    /// Keep hosted images here (the embedded store: files and SQLite). Created if missing; one
    /// backend per directory.
    #[arg(
        long,
        env = "IMGBIND_DATA",
        value_name = "DIR",
        conflicts_with = "database_url"
    )]
    pub data: Option<PathBuf>,

    /// PostgreSQL for hosted images' records (the scale-out store, with --object-store-url):
    /// any number of backends share one database and bucket.
    #[arg(
        long,
        env = "IMGBIND_DATABASE_URL",
        value_name = "URL",
        requires = "object_store_url",
        hide_env_values = true
    )]
    pub database_url: Option<String>,

    /// S3-compatible bucket for hosted images' bytes, `s3://BUCKET[/PREFIX]`; credentials and
    /// endpoint from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT.
    #[arg(
        long,
        env = "IMGBIND_OBJECT_STORE_URL",
        value_name = "URL",
        requires = "database_url"
    )]
    pub object_store_url: Option<String>,

    /// Bearer token every hosted route but delivery and upload links needs over TCP. Without it,
    /// those routes are served on the Unix socket only.
    #[arg(
        long,
        env = "IMGBIND_API_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true,
        value_parser = parse_token
    )]
    pub api_token: Option<String>,

    /// Where browsers reach this server: the base of variant URLs and upload links. Default:
    /// http:// and the --listen address.
    #[arg(long, env = "IMGBIND_PUBLIC_URL", value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// The account segment of delivery URLs (`/hosted/delivery/<HASH>/<id>/<variant>`).
    #[arg(
        long,
        env = "IMGBIND_ACCOUNT_HASH",
        value_name = "HASH",
        default_value = "imgbind",
        value_parser = parse_account_hash
    )]
    pub account_hash: String,

    /// A key for signed URLs, `NAME=SECRET` (repeat; `default` is used when signedUrl names
    /// none). Comma-separated in the variable.
    #[arg(
        long = "signing-key",
        env = "IMGBIND_SIGNING_KEYS",
        value_name = "NAME=SECRET",
        value_delimiter = ',',
        hide_env_values = true,
        value_parser = parse_signing_key
    )]
    pub signing_keys: Vec<(String, String)>,

    /// A named variant, `NAME=OPTIONS` with OPTIONS like a flexible variant's
    /// (`w=200,h=200,fit=cover`), plus `always_public` to serve it without a signature. Repeat;
    /// `;`-separated in the variable. `public` (the original size) always exists.
    #[arg(
        long = "variant",
        env = "IMGBIND_VARIANTS",
        value_name = "NAME=OPTIONS",
        value_delimiter = ';',
        value_parser = parse_named_variant
    )]
    pub variants: Vec<(String, Variant)>,

    /// Serve flexible variants: a delivery URL's last segment may be options (`w=400,h=300`).
    #[arg(long, env = "IMGBIND_FLEXIBLE_VARIANTS")]
    pub flexible_variants: bool,

    /// Largest hosted upload, in bytes; bigger is answered 9402.
    #[arg(long, env = "IMGBIND_HOSTED_MAX_BYTES", value_name = "BYTES", default_value_t = DEFAULT_MAX_UPLOAD_BYTES)]
    pub hosted_max_bytes: u64,
}

/// Where hosted images are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreChoice {
    /// Hosted images are off.
    None,
    /// Files and SQLite in this directory.
    Embedded(PathBuf),
    /// PostgreSQL and an S3-compatible bucket.
    ScaleOut {
        /// `postgres://…`
        database_url: String,
        /// `s3://bucket[/prefix]`
        object_store_url: String,
    },
}

/// Typed hosted-images settings.
#[derive(Debug, Clone)]
pub struct HostedConfig {
    /// The store.
    pub store: StoreChoice,
    /// Bearer token for hosted routes over TCP.
    pub api_token: Option<String>,
    /// Base of variant URLs and upload links (no trailing `/`); `None`: from the listen address.
    pub public_url: Option<String>,
    /// The account segment of delivery URLs.
    pub account_hash: String,
    /// Signing keys by name.
    pub signing_keys: BTreeMap<String, String>,
    /// Named variants, `public` included.
    pub variants: BTreeMap<String, Variant>,
    /// Flexible variants are served.
    pub flexible_variants: bool,
    /// Largest upload, in bytes.
    pub max_upload_bytes: u64,
}

impl Default for HostedConfig {
    fn default() -> Self {
        HostedConfig {
            store: StoreChoice::None,
            api_token: None,
            public_url: None,
            account_hash: "imgbind".to_owned(),
            signing_keys: BTreeMap::new(),
            variants: BTreeMap::from([("public".to_owned(), Variant::original())]),
            flexible_variants: false,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
        }
    }
}

/// What a variant does to a stored image.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The transform step (`width`, `height`, `fit`, …), as the wire's `transforms` item; empty
    /// for the original size.
    pub transform: Map<String, Value>,
    /// A fixed output format; `None`: negotiated from `Accept` (AVIF, WebP, else the original's).
    pub format: Option<OutputFormat>,
    /// Output quality (1–100).
    pub quality: Option<u8>,
    /// Served without a signature even for images that require signed URLs.
    pub always_public: bool,
}

impl Variant {
    /// The stored image at its own size.
    pub fn original() -> Variant {
        Variant {
            transform: Map::new(),
            format: None,
            quality: None,
            always_public: false,
        }
    }

    /// Parses variant options, `w=200,h=100,fit=cover,q=80,f=webp` (Cloudflare's flexible-variant
    /// names: width/w, height/h, fit, gravity/g, blur, sharpen, rotate, dpr, quality/q,
    /// format/f; `always_public` only in a named variant). 9401 for anything else.
    pub fn parse(options: &str, named: bool) -> Result<Variant, Error> {
        let mut variant = Variant::original();
        let mut dpr = 1.0_f64;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option.split_once('=').unwrap_or((option, ""));
            let number = || {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n >= 0.0)
                    .ok_or_else(|| {
                        Error::invalid(format!("variant option {key}={value:?} is not a number"))
                    })
            };
            match key {
                "w" | "width" => {
                    variant.transform.insert("width".into(), number()?.into());
                }
                "h" | "height" => {
                    variant.transform.insert("height".into(), number()?.into());
                }
                "fit" => {
                    variant.transform.insert("fit".into(), value.into());
                }
                "g" | "gravity" => {
                    variant.transform.insert("gravity".into(), value.into());
                }
                "blur" | "sharpen" => {
                    variant.transform.insert(key.into(), number()?.into());
                }
                "rotate" => {
                    variant.transform.insert(key.into(), number()?.into());
                }
                "dpr" => dpr = number()?,
                "q" | "quality" => {
                    let q = number()?;
                    if !(1.0..=100.0).contains(&q) {
                        return Err(Error::invalid("variant quality must be 1 to 100"));
                    }
                    variant.quality = Some(q as u8);
                }
                "f" | "format" => {
                    variant.format = match value {
                        "auto" => None,
                        "avif" | "webp" | "jpeg" | "png" | "gif" => {
                            Some(OutputFormat::parse(&format!("image/{value}"))?)
                        }
                        _ => {
                            return Err(Error::invalid(format!(
                                "variant format {value:?} is not auto, avif, webp, jpeg, png or gif"
                            )))
                        }
                    }
                }
                "always_public" if named && value.is_empty() => variant.always_public = true,
                _ => {
                    return Err(Error::invalid(format!(
                        "unknown variant option {key:?} (width/w, height/h, fit, gravity/g, blur, \
                         sharpen, rotate, dpr, quality/q, format/f)"
                    )))
                }
            }
        }
        if dpr != 1.0 {
            if !(dpr > 0.0 && dpr <= 4.0) {
                return Err(Error::invalid("variant dpr must be above 0 and at most 4"));
            }
            for side in ["width", "height"] {
                if let Some(n) = variant.transform.get(side).and_then(Value::as_f64) {
                    variant
                        .transform
                        .insert(side.into(), (n * dpr).round().into());
                }
            }
        }
        // The step must be one the wire accepts: checked now, not at the first delivery.
        parse_steps(&variant.steps_json(), 1)?;
        Ok(variant)
    }

    /// The `transforms` JSON for a job on one stored image.
    pub fn steps_json(&self) -> String {
        if self.transform.is_empty() {
            return "[]".to_owned();
        }
        let mut step = self.transform.clone();
        step.insert("imageIndex".into(), 0.into());
        Value::Array(vec![Value::Object(step)]).to_string()
    }
}

impl HostedArgs {
    /// The typed settings (every flag was checked by its parser).
    pub fn into_config(self) -> HostedConfig {
        let store = match (self.data, self.database_url, self.object_store_url) {
            (Some(dir), _, _) => StoreChoice::Embedded(dir),
            (None, Some(database_url), Some(object_store_url)) => StoreChoice::ScaleOut {
                database_url,
                object_store_url,
            },
            _ => StoreChoice::None,
        };
        let mut variants = HostedConfig::default().variants;
        variants.extend(self.variants);
        HostedConfig {
            store,
            api_token: self.api_token,
            public_url: self.public_url,
            account_hash: self.account_hash,
            signing_keys: self.signing_keys.into_iter().collect(),
            variants,
            flexible_variants: self.flexible_variants,
            max_upload_bytes: self.hosted_max_bytes,
        }
    }
}

fn parse_token(value: &str) -> Result<String, String> {
    if value.is_empty() {
        Err("the API token must not be empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

fn parse_public_url(value: &str) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(format!("{value:?} must start with http:// or https://"))
    }
}

fn parse_account_hash(value: &str) -> Result<String, String> {
    if value.is_empty() || value.contains(['/', '?', '#', '%', ' ']) {
        Err("the account hash must be one URL path segment".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

fn parse_signing_key(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, secret)) if !name.is_empty() && !secret.is_empty() => {
            Ok((name.to_owned(), secret.to_owned()))
        }
        _ => Err("a signing key is NAME=SECRET".to_owned()),
    }
}

fn parse_named_variant(spec: &str) -> Result<(String, Variant), String> {
    let (name, options) = spec
        .split_once('=')
        .ok_or_else(|| format!("{spec:?}: a variant is NAME=OPTIONS"))?;
    if !valid_variant_name(name) {
        return Err(format!(
            "{name:?}: a variant name has 1 to 99 letters, digits, - or _"
        ));
    }
    let variant = Variant::parse(options, true).map_err(|e| format!("{name}: {}", e.message()))?;
    Ok((name.to_owned(), variant))
}

/// A named variant's name: what Cloudflare's dashboard accepts.
pub(crate) fn valid_variant_name(name: &str) -> bool {
    (1..100).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_parse_into_wire_steps() {
        let v = Variant::parse("w=200,h=100,fit=cover,q=70,f=webp,dpr=2", false).unwrap();
        assert_eq!(
            v.steps_json(),
            r#"[{"fit":"cover","height":200.0,"imageIndex":0,"width":400.0}]"#
        );
        assert_eq!(v.quality, Some(70));
        assert_eq!(v.format, Some(OutputFormat::Webp));
        for bad in [
            "w=-1",
            "fit=sideways",
            "zoom=2",
            "q=0",
            "f=bmp",
            "always_public",
        ] {
            assert!(Variant::parse(bad, false).is_err(), "{bad}");
        }
        assert!(
            Variant::parse("w=10,always_public", true)
                .unwrap()
                .always_public
        );
    }
}
