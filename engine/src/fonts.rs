//! Where a text source's font comes from: `font.url` resolved to font file bytes.
//!
//! * `data:…;base64,…` — the font itself, decoded here (its bytes already count against
//!   `max_input_bytes`, being part of the request).
//! * a file name such as `Inter-Bold.ttf` or `brand/Logo.otf` — a file in [`Limits::font_dir`]
//!   (`--font-dir`): relative, no `..`, and after following symlinks still inside the directory.
//!   This is the engine's one piece of I/O: a read of one named file, never a listing or a write.
//! * [`BUNDLED_FONT_NAME`] — DejaVu Sans, compiled in, when the directory has no file of that name.
//! * `http:`/`https:` — refused (9401): the backend never fetches from the network. Any other
//!   scheme is refused too.
//!
//! The bytes must be TrueType or OpenType (`.ttf`, `.otf`, `.ttc`: told by their first four bytes,
//! not the name). WOFF and WOFF2 are recognised and answered 9520; anything else, or a file the
//! font parser rejects, is 9401.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Component, Path};

use ab_glyph::FontRef;
use base64::Engine as _;
use imgbind_wire::{Error, ErrorCode};

use crate::Limits;

/// The name under which the bundled font is always available.
pub(crate) const BUNDLED_FONT_NAME: &str = "DejaVuSans.ttf";

/// DejaVu Sans 2.37 from Debian's `fonts-dejavu-core` (licence in `engine/fonts/`).
static BUNDLED_FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// The font file bytes `url` names (see the module docs for the forms), at most
/// `limits.max_font_bytes` long.
pub(crate) fn load(url: &str, limits: &Limits) -> Result<Cow<'static, [u8]>, Error> {
    let bytes = match scheme(url) {
        Some(scheme) if scheme.eq_ignore_ascii_case("data") => Cow::Owned(data_url(url)?),
        Some(scheme)
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            return Err(Error::invalid(format!(
                "font.url {url:?}: imgbind does not fetch fonts over the network; put the font \
                 in the backend's font directory (--font-dir) and give its file name, or send it \
                 as a data: URL"
            )))
        }
        Some(scheme) => {
            return Err(Error::invalid(format!(
                "font.url {url:?}: {scheme}: URLs are not supported; use a data: URL or a file \
                 name in the font directory"
            )))
        }
        None => named_file(url, limits)?,
    };
    if bytes.len() as u64 > limits.max_font_bytes {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "font.url {}: the font is {} bytes; at most {} are allowed",
                short(url),
                bytes.len(),
                limits.max_font_bytes
            ),
        ));
    }
    Ok(bytes)
}

/// Parses font bytes, telling WOFF/WOFF2 (9520) from files that are no font at all (9401).
pub(crate) fn parse<'a>(bytes: &'a [u8], url: &str) -> Result<FontRef<'a>, Error> {
    match bytes.get(..4) {
        Some(b"wOFF" | b"wOF2") => {
            return Err(Error::new(
                ErrorCode::UnsupportedFormat,
                format!(
                "font.url {}: WOFF and WOFF2 fonts are not supported; use the .ttf or .otf file",
                short(url)
            ),
            ))
        }
        Some([0, 1, 0, 0] | b"true" | b"OTTO" | b"ttcf") => {}
        _ => {
            return Err(Error::invalid(format!(
                "font.url {}: not a TrueType or OpenType font",
                short(url)
            )))
        }
    }
    FontRef::try_from_slice(bytes).map_err(|e| {
        Error::invalid(format!(
            "font.url {}: the font cannot be read: {e}",
            short(url)
        ))
    })
}

/// The URL scheme, if `url` has one (`name:` before any `/`; a lone drive-letter-like `c:` counts).
fn scheme(url: &str) -> Option<&str> {
    let colon = url.find(':')?;
    let scheme = &url[..colon];
    let valid = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(scheme)
}

/// Decodes `data:[<media type>];base64,<data>` (only base64 data URLs can carry a binary font).
fn data_url(url: &str) -> Result<Vec<u8>, Error> {
    let (header, payload) = url["data:".len()..].split_once(',').ok_or_else(|| {
        Error::invalid(format!(
            "font.url {}: a data: URL needs a comma",
            short(url)
        ))
    })?;
    if !header
        .rsplit(';')
        .next()
        .is_some_and(|p| p.eq_ignore_ascii_case("base64"))
    {
        return Err(Error::invalid(format!(
            "font.url {}: only base64 data: URLs (data:font/ttf;base64,…) are supported",
            short(url)
        )));
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| {
            Error::invalid(format!(
                "font.url {}: the data: URL is not valid base64: {e}",
                short(url)
            ))
        })
}

/// A file in the font directory, or the bundled font by its name.
fn named_file(name: &str, limits: &Limits) -> Result<Cow<'static, [u8]>, Error> {
    let relative = Path::new(name);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(Error::invalid(format!(
            "font.url {name:?}: a font file name must be relative, without '..' or '.'"
        )));
    }
    if let Some(dir) = &limits.font_dir {
        if let Some(bytes) = read_in_dir(dir, relative, name, limits.max_font_bytes)? {
            return Ok(Cow::Owned(bytes));
        }
    }
    if name == BUNDLED_FONT_NAME {
        return Ok(Cow::Borrowed(BUNDLED_FONT));
    }
    Err(Error::invalid(match &limits.font_dir {
        Some(_) => format!(
            "font.url {name:?}: no such font in the font directory (the bundled font is \
             {BUNDLED_FONT_NAME:?})"
        ),
        None => format!(
            "font.url {name:?}: no font directory is configured (--font-dir); the bundled font \
             is {BUNDLED_FONT_NAME:?}, or send the font as a data: URL"
        ),
    }))
}

/// Reads `dir/relative` if it exists and, symlinks followed, lies inside `dir`; `None` if absent.
fn read_in_dir(
    dir: &Path,
    relative: &Path,
    name: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, Error> {
    let unreadable = |e: std::io::Error| {
        Error::new(
            ErrorCode::Internal,
            format!("font.url {name:?}: the font file cannot be read: {e}"),
        )
    };
    let dir = dir.canonicalize().map_err(|e| {
        Error::new(
            ErrorCode::Internal,
            format!("the font directory {} cannot be opened: {e}", dir.display()),
        )
    })?;
    let path = match dir.join(relative).canonicalize() {
        Ok(path) => path,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    if !path.starts_with(&dir) {
        return Err(Error::invalid(format!(
            "font.url {name:?}: the file lies outside the font directory"
        )));
    }
    if !path.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(max_bytes.saturating_add(1)).read_to_end(&mut bytes))
        .map_err(unreadable)?;
    Ok(Some(bytes))
}

/// A URL short enough for a message (data: URLs can be megabytes).
fn short(url: &str) -> String {
    const MAX: usize = 64;
    match url.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &url[..cut]),
        None => format!("{url:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits_with_dir(dir: Option<&Path>) -> Limits {
        Limits {
            font_dir: dir.map(Path::to_path_buf),
            ..Limits::default()
        }
    }

    fn code(url: &str, limits: &Limits) -> ErrorCode {
        load(url, limits)
            .and_then(|b| parse(&b, url).map(|_| ()))
            .unwrap_err()
            .code()
    }

    #[test]
    fn bundled_font_and_data_urls_load_without_a_directory() {
        let limits = limits_with_dir(None);
        let bundled = load(BUNDLED_FONT_NAME, &limits).unwrap();
        assert!(matches!(bundled, Cow::Borrowed(_)));
        parse(&bundled, BUNDLED_FONT_NAME).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(BUNDLED_FONT);
        let url = format!("data:font/ttf;base64,{encoded}");
        assert_eq!(&*load(&url, &limits).unwrap(), BUNDLED_FONT);
        // Media type is optional, scheme is case-insensitive.
        assert_eq!(
            &*load(&format!("DATA:;base64,{encoded}"), &limits).unwrap(),
            BUNDLED_FONT
        );
    }

    #[test]
    fn refuses_network_other_schemes_and_bad_data_urls() {
        let limits = limits_with_dir(None);
        for url in [
            "https://example.com/font.ttf",
            "HTTP://example.com/font.ttf",
            "file:///etc/passwd",
            "data:font/ttf,AAAA",
            "data:font/ttf;base64",
            "data:font/ttf;base64,!!!",
            "Inter.ttf",
        ] {
            let e = load(url, &limits).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidArguments, "{url}");
        }
        assert!(load("https://x/y.ttf", &limits)
            .unwrap_err()
            .message()
            .contains("does not fetch fonts over the network"));
    }

    #[test]
    fn tells_woff_from_non_fonts() {
        let limits = limits_with_dir(None);
        let b64 = |bytes: &[u8]| {
            format!(
                "data:;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            )
        };
        assert_eq!(
            code(&b64(b"wOF2\0\x01\0\0rest"), &limits),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(
            code(&b64(b"wOFF\0\x01\0\0rest"), &limits),
            ErrorCode::UnsupportedFormat
        );
        assert_eq!(
            code(&b64(b"<html>not a font</html>"), &limits),
            ErrorCode::InvalidArguments
        );
        // Right magic, broken tables: the parser's refusal is 9401 too.
        assert_eq!(
            code(&b64(b"\0\x01\0\0\0\x09garbage-garbage"), &limits),
            ErrorCode::InvalidArguments
        );
        let big = Limits {
            max_font_bytes: 10,
            ..Limits::default()
        };
        assert_eq!(
            load(BUNDLED_FONT_NAME, &big).unwrap_err().code(),
            ErrorCode::TooLarge
        );
    }

    #[test]
    fn font_directory_reads_named_files_only_inside_it() {
        let root = std::env::temp_dir().join(format!("imgbind-fonts-{}", std::process::id()));
        let dir = root.join("fonts");
        std::fs::create_dir_all(dir.join("brand")).unwrap();
        std::fs::write(dir.join("brand/Mine.ttf"), BUNDLED_FONT).unwrap();
        std::fs::write(root.join("secret.ttf"), BUNDLED_FONT).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(root.join("secret.ttf"), dir.join("escape.ttf")).unwrap();
        let limits = limits_with_dir(Some(&dir));

        assert_eq!(&*load("brand/Mine.ttf", &limits).unwrap(), BUNDLED_FONT);
        assert_eq!(&*load(BUNDLED_FONT_NAME, &limits).unwrap(), BUNDLED_FONT);
        for url in [
            "../secret.ttf",
            "brand/../../secret.ttf",
            "/etc/passwd",
            "./brand/Mine.ttf",
            "missing.ttf",
            "brand",
        ] {
            assert_eq!(
                load(url, &limits).unwrap_err().code(),
                ErrorCode::InvalidArguments,
                "{url}"
            );
        }
        #[cfg(unix)]
        assert!(load("escape.ttf", &limits)
            .unwrap_err()
            .message()
            .contains("outside the font directory"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
