//! The imgbind example Worker in Rust: the routes of `worker-example/src/index.js`, written with the
//! `worker` crate and imgbind's Rust API. Build with `scripts/build-rust-worker.sh`, run with
//! `node_modules/.bin/wrangler dev --local --ip 127.0.0.1 -c worker-example/rust/wrangler.toml`
//! beside `imgbind serve --listen 127.0.0.1:9100` (docs/RUST-WORKERS.md), then for example:
//!
//! ```text
//! curl --data-binary @photo.jpg 'http://127.0.0.1:8787/transform?width=800&format=image/webp' -o out.webp
//!
//! POST /transform?width=&height=&fit=&rotate=&flip=&format=&quality=   body: the image
//! POST /info                                                           body: the image -> JSON
//! POST /composite?top=&left=&bottom=&right=&opacity=&width=&height=&fit=&overlayWidth=&overlayHeight=&format=&quality=
//!      body: multipart/form-data with file fields `image` (the canvas) and `overlay`
//! POST /caption?text=&size=&color=&format=&quality=                      body: the image; the text
//!      is drawn 8 px from its bottom-left corner in the backend's bundled DejaVu Sans
//! ```
//!
//! Errors (the SDK's [`ImagesError`], Cloudflare's 9xxx codes) become
//! `{"error": {"code", "message"}}` with the status the backend uses for the code.

use imgbind_sdk::rust_api::{
    DrawOptions, ErrorCode, Fit, Flip, ImageInput, ImageOutputOptions, Images, ImagesError,
    Operation, OutputFormat, Rotate, TextOptions, Transform,
};
use serde_json::json;
use worker::{event, Context, Env, FormEntry, Headers, Method, Request, Response, Result, Url};

/// Output format when the request names none: keeps alpha, small, widely supported.
const DEFAULT_FORMAT: OutputFormat = OutputFormat::Webp;

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    let url = req.url()?;
    let path = url.path().to_string();
    if req.method() == Method::Get && path == "/" {
        return usage();
    }
    if !matches!(
        path.as_str(),
        "/transform" | "/info" | "/composite" | "/caption"
    ) {
        return json_error(404, None, &format!("no route {path}"));
    }
    if req.method() != Method::Post {
        let response = json_error(405, None, &format!("{path} takes POST"))?;
        response.headers().set("allow", "POST")?;
        return Ok(response);
    }
    let images = match backend(&env) {
        Ok(images) => images,
        Err(e) => return error_response(&e),
    };
    let query = Query(url);
    let answer = match path.as_str() {
        "/transform" => transform(&images, &req, &query).await,
        "/info" => info(&images, &mut req).await,
        "/caption" => caption(&images, &req, &query).await,
        _ => composite(&images, &mut req, &query).await,
    };
    match answer {
        Ok(response) => Ok(response),
        Err(e) => error_response(&e),
    }
}

/// A service binding (tests) wins over the URL from wrangler.toml `[vars]` (`wrangler dev`).
fn backend(env: &Env) -> std::result::Result<Images, ImagesError> {
    if let Ok(service) = env.service("IMAGES_BACKEND") {
        return Ok(Images::new(service));
    }
    let url = env.var("IMGBIND_URL").map(|v| v.to_string()).map_err(|_| {
        invalid("no backend: bind the service IMAGES_BACKEND or set the var IMGBIND_URL")
    })?;
    Images::from_url(&url)
}

type Answer = std::result::Result<Response, ImagesError>;

/// The body image through one transform, streamed back as it is encoded.
async fn transform(images: &Images, req: &Request, query: &Query) -> Answer {
    let output = images
        .input(require_body(req)?)
        .transform(query.transform("width", "height", true)?)
        .output(query.output()?)
        .await?;
    output.response()
}

/// Format, size in bytes and dimensions of the body image. (Read as a `worker::ByteStream`, to
/// show that input kind; `/transform` passes the JS stream itself.)
async fn info(images: &Images, req: &mut Request) -> Answer {
    require_body(req)?;
    let body = req.stream().map_err(|e| invalid(&e.to_string()))?;
    let info = images.info(body).await?;
    Response::from_json(&info).map_err(|e| internal(&e.to_string()))
}

/// `overlay` drawn onto `image`, placed by top/left/bottom/right (centred when none is given).
async fn composite(images: &Images, req: &mut Request, query: &Query) -> Answer {
    let form = req.form_data().await.map_err(|_| {
        invalid("expected multipart/form-data with file fields `image` and `overlay`")
    })?;
    let base = form_file(&form, "image").await?;
    let overlay = form_file(&form, "overlay").await?;
    let overlay =
        images
            .input(overlay)
            .transform(query.transform("overlayWidth", "overlayHeight", false)?);
    let output = images
        .input(base)
        .transform(query.transform("width", "height", false)?)
        .draw(overlay, query.draw()?)
        .output(query.output()?)
        .await?;
    output.response()
}

/// The body image with `text` drawn near its bottom-left corner.
async fn caption(images: &Images, req: &Request, query: &Query) -> Answer {
    let text = query
        .get("text")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| invalid("caption needs ?text="))?;
    let options = TextOptions {
        size: query.parse("size")?,
        color: query.get("color"),
        ..TextOptions::new("DejaVuSans.ttf")
    };
    let placement = DrawOptions {
        bottom: Some(8),
        left: Some(8),
        ..DrawOptions::default()
    };
    let output = images
        .input(require_body(req)?)
        .draw(images.text(&text, &options), placement)
        .output(query.output()?)
        .await?;
    output.response()
}

/// The query string, read into typed options. A value that does not parse is 9401, named.
struct Query(Url);

impl Query {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
    ) -> std::result::Result<Option<T>, ImagesError> {
        self.get(name)
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| invalid(&format!("{name}: {text:?} is not a valid value")))
            })
            .transpose()
    }

    /// A keyword option, read with the wire crate's own names (`fit=cover`, `flip=hv`).
    fn keyword<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> std::result::Result<Option<T>, ImagesError> {
        self.get(name)
            .map(|text| {
                serde_json::from_value(json!(text))
                    .map_err(|_| invalid(&format!("{name}: {text:?} is not a valid value")))
            })
            .transpose()
    }

    /// `width`/`height` under the given names; `fit`, `rotate` and `flip` when `all`.
    fn transform(
        &self,
        width: &str,
        height: &str,
        all: bool,
    ) -> std::result::Result<Transform, ImagesError> {
        let mut t = Transform {
            width: self.parse(width)?,
            height: self.parse(height)?,
            ..Transform::default()
        };
        if width == "width" {
            t.fit = self.keyword::<Fit>("fit")?;
        }
        if all {
            t.flip = self.keyword::<Flip>("flip")?;
            t.rotate = match self.parse::<u16>("rotate")? {
                None => None,
                Some(0) => Some(Rotate::R0),
                Some(90) => Some(Rotate::R90),
                Some(180) => Some(Rotate::R180),
                Some(270) => Some(Rotate::R270),
                Some(other) => {
                    return Err(invalid(&format!(
                        "rotate must be 0, 90, 180 or 270, not {other}"
                    )))
                }
            };
        }
        Ok(t)
    }

    fn draw(&self) -> std::result::Result<DrawOptions, ImagesError> {
        Ok(DrawOptions {
            opacity: self.parse("opacity")?,
            top: self.parse("top")?,
            left: self.parse("left")?,
            bottom: self.parse("bottom")?,
            right: self.parse("right")?,
            ..DrawOptions::default()
        })
    }

    fn output(&self) -> std::result::Result<ImageOutputOptions, ImagesError> {
        let format = match self.get("format") {
            None => DEFAULT_FORMAT,
            Some(name) => OutputFormat::parse(name.trim()).map_err(|e| invalid(e.message()))?,
        };
        Ok(ImageOutputOptions {
            quality: self.parse("quality")?,
            ..ImageOutputOptions::new(format)
        })
    }
}

/// Only the body stream goes on to the backend, never the incoming request or its headers.
fn require_body(req: &Request) -> std::result::Result<ImageInput, ImagesError> {
    match req.inner().body() {
        Some(body) => Ok(body.into()),
        None => Err(invalid("the request body must be the image")),
    }
}

async fn form_file(
    form: &worker::FormData,
    name: &str,
) -> std::result::Result<Vec<u8>, ImagesError> {
    match form.get(name) {
        Some(FormEntry::File(file)) => file
            .bytes()
            .await
            .map_err(|e| invalid(&format!("multipart field `{name}`: {e}"))),
        _ => Err(invalid(&format!("multipart field `{name}` must be a file"))),
    }
}

fn invalid(detail: &str) -> ImagesError {
    ImagesError::client(Operation::Transform, ErrorCode::InvalidArguments, detail)
}

fn internal(detail: &str) -> ImagesError {
    ImagesError::client(Operation::Transform, ErrorCode::Internal, detail)
}

fn error_response(e: &ImagesError) -> Result<Response> {
    json_error(e.http_status(), Some(e.code), &e.message)
}

fn json_error(status: u16, code: Option<u32>, message: &str) -> Result<Response> {
    Ok(
        Response::from_json(&json!({ "error": { "code": code, "message": message } }))?
            .with_status(status),
    )
}

fn usage() -> Result<Response> {
    let text = [
        "imgbind example Worker (Rust)",
        "  POST /transform?width=&height=&fit=&rotate=&flip=&format=&quality=   (body: image)",
        "  POST /info                                                           (body: image)",
        "  POST /composite?top=&left=&bottom=&right=&opacity=&width=&overlayWidth=&format=",
        "       (multipart: image=@base, overlay=@logo)",
        "  POST /caption?text=&size=&color=&format=                              (body: image)",
        "",
    ]
    .join("\n");
    let headers = Headers::new();
    headers.set("content-type", "text/plain; charset=utf-8")?;
    Ok(Response::ok(text)?.with_headers(headers))
}
