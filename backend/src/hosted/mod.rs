//! Hosted images: the storage half of the Images binding (`docs/HOSTED.md`). Every hosted
//! request flows top to bottom through [`serve`]: route → authorise → receive the body (bounded,
//! read to its end, as every request) → act on the store → answer. The store is behind one
//! trait (`store.rs`): files + SQLite (`sqlite.rs`) or S3 + PostgreSQL (`s3pg.rs`).

pub(crate) mod api;
pub(crate) mod filter;
pub(crate) mod ids;
pub(crate) mod s3pg;
pub(crate) mod settings;
pub(crate) mod signing;
pub(crate) mod sqlite;
pub(crate) mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use hyper::http::request::Parts;
use hyper::{Method, Response, StatusCode};
use imgbind_engine::{Job, Source};
use imgbind_wire::{parse_steps, Error, ErrorCode, OutputFormat, OutputOptions};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use self::api::Urls;
use self::settings::{HostedConfig, StoreChoice, Variant, MAX_UPLOAD_PIXELS, MAX_UPLOAD_SIDE};
use self::store::{Changes, Completion, NewBlob, NewImage, Store};
use crate::connection::Conn;
use crate::handler::{answer, finish, receive_body, State};
use crate::receive;
use crate::respond::{self, Body};
use crate::telemetry::RequestMeter;

/// The path prefix of every hosted route.
pub(crate) const PREFIX: &str = "/hosted/";

/// The hosted side of the server: its store (if enabled) and settings.
pub(crate) struct Hosted {
    store: Option<Arc<dyn Store>>,
    settings: HostedConfig,
    /// `--public-url`, or `http://` and the listen address.
    public_url: String,
}

impl Hosted {
    /// Opens the configured store (`None`: hosted routes answer 9431).
    pub(crate) async fn open(
        settings: &HostedConfig,
        listen: Option<SocketAddr>,
    ) -> Result<Hosted, Error> {
        let store: Option<Arc<dyn Store>> = match &settings.store {
            StoreChoice::None => None,
            StoreChoice::Embedded(dir) => {
                let dir = dir.clone();
                let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&dir))
                    .await
                    .map_err(|e| Error::internal(format!("opening the store: {e}")))??;
                Some(Arc::new(store))
            }
            StoreChoice::ScaleOut {
                database_url,
                object_store_url,
            } => Some(Arc::new(s3pg::open(database_url, object_store_url).await?)),
        };
        let public_url = settings.public_url.clone().unwrap_or_else(|| match listen {
            Some(addr) => format!("http://{addr}"),
            None => "http://localhost".to_owned(),
        });
        Ok(Hosted {
            store,
            settings: settings.clone(),
            public_url,
        })
    }

    /// What the start-up log says about hosted images.
    pub(crate) fn describe(&self) -> String {
        match &self.store {
            None => "off (no --data or --database-url)".to_owned(),
            Some(store) => format!(
                "{}; public URL {}; writes over TCP {}",
                store.describe(),
                self.public_url,
                if self.settings.api_token.is_some() {
                    "need the API token"
                } else {
                    "refused (no --api-token: Unix socket only)"
                }
            ),
        }
    }

    /// Hosted images are on but no token lets writes in over TCP.
    pub(crate) fn refuses_tcp(&self) -> bool {
        self.store.is_some() && self.settings.api_token.is_none()
    }

    fn urls(&self) -> Urls<'_> {
        Urls {
            public_url: &self.public_url,
            account_hash: &self.settings.account_hash,
            variants: self.settings.variants.keys().map(String::as_str).collect(),
        }
    }
}

/// A hosted route, parsed from the method and path.
#[derive(Debug)]
enum Route {
    Upload,
    List,
    Details(String),
    Bytes(String),
    Update(String),
    Delete(String),
    SignedUrl(String),
    DirectUpload,
    Complete(String),
    Delivery { id: String, variant: String },
}

impl Route {
    /// Delivery and upload links are public; everything else needs the token over TCP.
    fn needs_token(&self) -> bool {
        !matches!(self, Route::Delivery { .. } | Route::Complete(_))
    }

    fn parse(method: &Method, path: &str, account_hash: &str) -> Result<Route, Error> {
        let rest = &path[PREFIX.len()..];
        let wrong = |allowed: &str| {
            Err(Error::invalid(format!(
                "{method} is not served on {path}; use {allowed}"
            )))
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let get = method == Method::GET || method == Method::HEAD;
        match segments.as_slice() {
            ["images"] => match *method {
                Method::POST => Ok(Route::Upload),
                Method::GET => Ok(Route::List),
                _ => wrong("POST or GET"),
            },
            ["images", id] => {
                let id = ids::decode(id)?;
                match *method {
                    Method::GET => Ok(Route::Details(id)),
                    Method::PATCH => Ok(Route::Update(id)),
                    Method::DELETE => Ok(Route::Delete(id)),
                    _ => wrong("GET, PATCH or DELETE"),
                }
            }
            ["images", id, "bytes"] if get => Ok(Route::Bytes(ids::decode(id)?)),
            ["images", _, "bytes"] => wrong("GET"),
            ["images", id, "signed-url"] if method == Method::POST => {
                Ok(Route::SignedUrl(ids::decode(id)?))
            }
            ["images", _, "signed-url"] => wrong("POST"),
            ["direct-uploads"] if method == Method::POST => Ok(Route::DirectUpload),
            ["direct-uploads"] => wrong("POST"),
            ["upload", id @ ..] if !id.is_empty() && method == Method::POST => {
                Ok(Route::Complete(ids::decode(&id.join("/"))?))
            }
            ["upload", ..] => wrong("POST"),
            ["delivery", hash, id @ .., variant] if !id.is_empty() && get => {
                if *hash != account_hash {
                    return Err(not_found("no such account hash"));
                }
                Ok(Route::Delivery {
                    id: ids::decode(&id.join("/"))?,
                    variant: ids::decode(variant)?,
                })
            }
            ["delivery", ..] if get => Err(not_found(
                "a delivery URL is /hosted/delivery/<account hash>/<id>/<variant>",
            )),
            ["delivery", ..] => wrong("GET"),
            _ => Err(not_found(&format!("no hosted route for {method} {path}"))),
        }
    }
}

fn not_found(message: &str) -> Error {
    Error::new(ErrorCode::NotFound, message.to_owned())
}

fn image_not_found(id: &str) -> Error {
    not_found(&format!("image not found: {id}"))
}

/// Serves one request under `/hosted/`.
pub(crate) async fn serve(
    state: &State,
    conn: &Conn,
    head: &Parts,
    body: &mut Incoming,
    meter: &mut RequestMeter,
) -> Response<Body> {
    let hosted = &state.hosted;
    // 1. Route and authorise; a refused request's body is still read to its end.
    let admitted = Route::parse(&head.method, head.uri.path(), &hosted.settings.account_hash)
        .and_then(|route| authorise(hosted, conn, head, &route).map(|()| route))
        .and_then(|route| match &hosted.store {
            Some(store) => Ok((route, Arc::clone(store))),
            None => Err(not_found(
                "hosted images are not enabled: start the backend with --data DIR \
                 (or --database-url and --object-store-url)",
            )),
        });
    let (route, store) = match admitted {
        Ok(admitted) => admitted,
        Err(error) => {
            let (_, drained, _) =
                receive_body(state, conn, &head.headers, body, meter, |_, _, _, _| {
                    Box::pin(async { Ok(()) })
                })
                .await;
            return finish(answer(Err(error), meter), drained);
        }
    };
    let ctx = Ctx {
        state,
        hosted,
        store: store.as_ref(),
        head,
    };
    // 2. Receive what the route takes, read the body to its end, act, answer.
    let json_cap = 64 * 1024;
    let (result, drained) = match route {
        Route::Upload => {
            let options = query_options(head);
            let cap = upload_cap(hosted.settings.max_upload_bytes);
            let (bytes, drained, _upload) = receive_body(
                state,
                conn,
                &head.headers,
                body,
                meter,
                move |h, b, _, u| Box::pin(receive::raw_body(h, b, cap, u)),
            )
            .await;
            let result = async { ctx.upload(&options?, bytes?).await }.await;
            (result, drained)
        }
        Route::Complete(id) => {
            let cap = hosted.settings.max_upload_bytes;
            let (file, drained, _upload) = receive_body(
                state,
                conn,
                &head.headers,
                body,
                meter,
                move |h, b, _, u| Box::pin(receive::form_file(h, b, cap, u, "file")),
            )
            .await;
            (async { ctx.complete(&id, file?).await }.await, drained)
        }
        Route::Update(_) | Route::SignedUrl(_) | Route::DirectUpload => {
            let (json, drained, _upload) = receive_body(
                state,
                conn,
                &head.headers,
                body,
                meter,
                move |h, b, _, u| Box::pin(receive::raw_body(h, b, json_cap, u)),
            )
            .await;
            let result = async {
                let json = json?;
                match route {
                    Route::Update(id) => ctx.update(&id, &json).await,
                    Route::SignedUrl(id) => ctx.signed_url(&id, &json).await,
                    _ => ctx.direct_upload(&json).await,
                }
            }
            .await;
            (result, drained)
        }
        route => {
            let (_, drained, _) =
                receive_body(state, conn, &head.headers, body, meter, |_, _, _, _| {
                    Box::pin(async { Ok(()) })
                })
                .await;
            let result = match route {
                Route::List => async { ctx.list(&query_options(head)?).await }.await,
                Route::Details(id) => ctx.details(&id).await,
                Route::Bytes(id) => ctx.bytes(&id).await,
                Route::Delete(id) => ctx.delete(&id).await,
                Route::Delivery { id, variant } => ctx.deliver(&id, &variant, meter).await,
                _ => unreachable!("routes with a body are handled above"),
            };
            (result, drained)
        }
    };
    finish(answer(result, meter), drained)
}

/// Checks the bearer token for routes that need it, on TCP (the Unix socket is trusted: its
/// file mode says who may connect).
fn authorise(hosted: &Hosted, conn: &Conn, head: &Parts, route: &Route) -> Result<(), Error> {
    if !route.needs_token() || conn.transport == "unix" {
        return Ok(());
    }
    let Some(token) = &hosted.settings.api_token else {
        return Err(Error::new(
            ErrorCode::Unauthorized,
            "hosted images are served over TCP only with --api-token (IMGBIND_API_TOKEN); \
             without it, use the Unix socket",
        ));
    };
    let given = head
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or_default();
    if bool::from(given.ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorCode::Unauthorized,
            "missing or wrong API token (Authorization: Bearer …)",
        ))
    }
}

/// The `options` query parameter's JSON (empty when absent).
fn query_options(head: &Parts) -> Result<Vec<u8>, Error> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(head.uri.query().unwrap_or(""))
            .map_err(|e| Error::invalid(format!("malformed query string: {e}")))?;
    Ok(pairs
        .into_iter()
        .find(|(k, _)| k == "options")
        .map(|(_, v)| v.into_bytes())
        .unwrap_or_default())
}

/// Bytes an upload body may have: the image limit, or its base64 text (4/3 of it, plus
/// whitespace).
fn upload_cap(max: u64) -> u64 {
    max.saturating_mul(4) / 3 + 64 * 1024
}

/// What the route handlers share.
struct Ctx<'a> {
    state: &'a State,
    hosted: &'a Hosted,
    store: &'a dyn Store,
    head: &'a Parts,
}

impl Ctx<'_> {
    async fn upload(&self, options: &[u8], body: Bytes) -> Result<Response<Body>, Error> {
        let options: api::UploadOptions = api::parse("upload", options)?;
        let bytes = match options.encoding.as_deref() {
            None => body,
            Some("base64") => decode_base64(&body)?,
            Some(other) => {
                return Err(Error::invalid(format!(
                    "encoding {other:?} is not supported (only \"base64\")"
                )))
            }
        };
        api::check_fields(
            options.metadata.as_ref(),
            options.creator.as_deref(),
            options.filename.as_deref(),
        )?;
        let (id, custom_id) = self.new_id(options.id, options.require_signed_urls)?;
        let blob = self.validate(bytes).await?;
        let image = NewImage {
            id,
            custom_id,
            filename: options.filename,
            uploaded_ms: api::now().1,
            require_signed_urls: options.require_signed_urls.unwrap_or(false),
            meta: options.metadata.unwrap_or_default(),
            // An empty creator is none: `list({creator: ""})` finds it.
            creator: options.creator.filter(|c| !c.is_empty()),
        };
        let stored = self.store.insert(image, blob).await?;
        Ok(self.json(StatusCode::CREATED, self.hosted.urls().metadata(&stored)))
    }

    /// The id to store under: the caller's (checked) or a new UUID; custom ids cannot require
    /// signed URLs (Cloudflare's rule).
    fn new_id(
        &self,
        id: Option<String>,
        require_signed_urls: Option<bool>,
    ) -> Result<(String, bool), Error> {
        match id {
            Some(id) => {
                ids::check_custom(&id)?;
                if require_signed_urls == Some(true) {
                    return Err(Error::invalid(
                        "an image with a custom id cannot require signed URLs",
                    ));
                }
                Ok((id, true))
            }
            None => Ok((ids::generate(), false)),
        }
    }

    /// An upload is an image within Cloudflare's hosted limits: 9402 over the byte limit, 9412
    /// not an image, 9413 over 100 MP or 12 000 px a side (WebP and AVIF excepted, as Cloudflare's).
    async fn validate(&self, bytes: Bytes) -> Result<NewBlob, Error> {
        let max = self.hosted.settings.max_upload_bytes;
        if bytes.len() as u64 > max {
            return Err(Error::new(
                ErrorCode::TooLarge,
                format!(
                    "the image is {} bytes; at most {max} can be stored",
                    bytes.len()
                ),
            ));
        }
        if bytes.is_empty() {
            return Err(Error::not_an_image("the upload is empty"));
        }
        let engine = Arc::clone(&self.state.jobs.engine);
        let limits = Arc::clone(&self.state.jobs.limits);
        let probe = bytes.clone();
        let info = tokio::task::spawn_blocking(move || engine.info(&probe, &limits))
            .await
            .map_err(|e| Error::internal(format!("image check failed: {e}")))??;
        let (width, height) = (info.width.unwrap_or(0), info.height.unwrap_or(0));
        let side_limited = !matches!(info.format.as_str(), "image/webp" | "image/avif");
        if u64::from(width) * u64::from(height) > MAX_UPLOAD_PIXELS
            || (side_limited && width.max(height) > MAX_UPLOAD_SIDE)
        {
            return Err(Error::new(
                ErrorCode::TooManyPixels,
                format!(
                    "the image is {width}×{height}; stored images may have at most \
                     {MAX_UPLOAD_PIXELS} pixels and {MAX_UPLOAD_SIDE} px a side"
                ),
            ));
        }
        Ok(NewBlob {
            bytes,
            content_type: info.format,
        })
    }

    async fn list(&self, options: &[u8]) -> Result<Response<Body>, Error> {
        let request = api::parse::<api::ListOptions>("list", options)?.into_request()?;
        let mut images = self
            .store
            .list(&store::ListQuery {
                after: request.after,
                limit: request.limit + 1,
                descending: request.descending,
                creator: request.creator,
                conditions: request.conditions,
            })
            .await?;
        let more = images.len() > request.limit as usize;
        images.truncate(request.limit as usize);
        let urls = self.hosted.urls();
        let mut out = json!({
            "images": images.iter().map(|i| urls.metadata(i)).collect::<Vec<_>>(),
            "listComplete": !more,
        });
        if let (true, Some(last)) = (more, images.last()) {
            out["cursor"] = api::encode_cursor(last.position, request.descending).into();
        }
        Ok(self.json(StatusCode::OK, out))
    }

    async fn details(&self, id: &str) -> Result<Response<Body>, Error> {
        let image = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| image_not_found(id))?;
        Ok(self.json(StatusCode::OK, self.hosted.urls().metadata(&image)))
    }

    async fn bytes(&self, id: &str) -> Result<Response<Body>, Error> {
        let image = self.store.get(id).await?;
        let Some(blob) = image.and_then(|i| i.blob) else {
            return Err(image_not_found(id));
        };
        let stored = self
            .store
            .read(&blob)
            .await?
            .ok_or_else(|| image_not_found(id))?;
        let mut response = respond::blob(stored, &blob.content_type);
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        Ok(response)
    }

    async fn update(&self, id: &str, json: &[u8]) -> Result<Response<Body>, Error> {
        let options: api::UpdateOptions = api::parse("update", json)?;
        api::check_fields(options.metadata.as_ref(), options.creator.as_deref(), None)?;
        if options.require_signed_urls == Some(true) {
            let image = self
                .store
                .get(id)
                .await?
                .ok_or_else(|| image_not_found(id))?;
            if image.custom_id {
                return Err(Error::invalid(
                    "an image with a custom id cannot require signed URLs",
                ));
            }
        }
        let changes = Changes {
            require_signed_urls: options.require_signed_urls,
            meta: options.metadata,
            creator: options.creator,
        };
        let image = self
            .store
            .update(id, changes)
            .await?
            .ok_or_else(|| image_not_found(id))?;
        Ok(self.json(StatusCode::OK, self.hosted.urls().metadata(&image)))
    }

    async fn delete(&self, id: &str) -> Result<Response<Body>, Error> {
        if self.store.delete(id).await? {
            Ok(self.json(StatusCode::OK, json!({"deleted": true})))
        } else {
            Err(image_not_found(id))
        }
    }

    async fn signed_url(&self, id: &str, json: &[u8]) -> Result<Response<Body>, Error> {
        let options: api::SignedUrlOptions = api::parse("signedUrl", json)?;
        let variant = options
            .variant
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::invalid("signedUrl needs a variant"))?;
        let settings = &self.hosted.settings;
        if !settings.variants.contains_key(&variant) {
            return Err(Error::invalid(format!(
                "no variant named {variant:?} (flexible variants cannot be signed)"
            )));
        }
        let expires_in = api::seconds(
            "expiresIn",
            options.expires_in.as_ref(),
            None,
            1..=i64::MAX / 2,
        )?;
        let key_name = options.key_name.unwrap_or_else(|| "default".to_owned());
        let secret = settings.signing_keys.get(&key_name).ok_or_else(|| {
            Error::invalid(if settings.signing_keys.is_empty() {
                "no signing key is configured: start the backend with --signing-key default=SECRET"
                    .to_owned()
            } else {
                format!("no signing key named {key_name:?}")
            })
        })?;
        if self.store.get(id).await?.is_none() {
            return Err(image_not_found(id));
        }
        let urls = self.hosted.urls();
        let path = urls.delivery_path(id, &variant);
        let query = signing::sign(secret, &path, expires_in.map(|s| api::now().0 + s));
        Ok(self.json(
            StatusCode::OK,
            json!({"url": format!("{}{path}?{query}", self.hosted.public_url)}),
        ))
    }

    async fn direct_upload(&self, json: &[u8]) -> Result<Response<Body>, Error> {
        let options: api::DirectUploadOptions = api::parse("createDirectUpload", json)?;
        api::check_fields(options.metadata.as_ref(), options.creator.as_deref(), None)?;
        let expires_in = api::seconds(
            "expiresIn",
            options.expires_in.as_ref(),
            Some(api::DEFAULT_UPLOAD_LINK_SECS),
            api::MIN_UPLOAD_LINK_SECS..=api::MAX_UPLOAD_LINK_SECS,
        )?
        .unwrap_or(api::DEFAULT_UPLOAD_LINK_SECS);
        let (id, custom_id) = self.new_id(options.id, options.require_signed_urls)?;
        let (now, now_ms) = api::now();
        let image = NewImage {
            id,
            custom_id,
            filename: None,
            uploaded_ms: now_ms,
            require_signed_urls: options.require_signed_urls.unwrap_or(false),
            meta: options.metadata.unwrap_or_default(),
            // An empty creator is none: `list({creator: ""})` finds it.
            creator: options.creator.filter(|c| !c.is_empty()),
        };
        let draft = self.store.create_draft(image, now + expires_in).await?;
        Ok(self.json(
            StatusCode::CREATED,
            json!({"id": draft.id, "uploadURL": self.hosted.urls().upload_url(&draft.id)}),
        ))
    }

    async fn complete(
        &self,
        id: &str,
        (filename, bytes): (Option<String>, Bytes),
    ) -> Result<Response<Body>, Error> {
        // A link that cannot be used is refused before the image is checked.
        let now = api::now().0;
        let image = self.store.get(id).await?;
        let refused = match image {
            None => Some(Completion::Unknown),
            Some(image) => image.upload_refusal(now),
        };
        if let Some(refused) = refused {
            return Err(completion_error(refused));
        }
        api::check_fields(None, None, filename.as_deref())?;
        let blob = self.validate(bytes).await?;
        match self.store.complete_draft(id, filename, blob, now).await? {
            Ok(image) => Ok(self.json(
                StatusCode::OK,
                json!({"success": true, "result": self.hosted.urls().metadata(&image)}),
            )),
            Err(refused) => Err(completion_error(refused)),
        }
    }

    async fn deliver(
        &self,
        id: &str,
        variant_name: &str,
        meter: &mut RequestMeter,
    ) -> Result<Response<Body>, Error> {
        let settings = &self.hosted.settings;
        let image = self.store.get(id).await?;
        let Some((image, blob)) = image.and_then(|i| i.blob.clone().map(|b| (i, b))) else {
            return Err(image_not_found(id));
        };
        let flexible;
        let variant = match settings.variants.get(variant_name) {
            Some(named) => named,
            None if settings.flexible_variants && variant_name.contains('=') => {
                if image.require_signed_urls {
                    return Err(Error::new(
                        ErrorCode::Unauthorized,
                        "flexible variants cannot deliver an image that requires signed URLs",
                    ));
                }
                flexible = Variant::parse(variant_name, false)?;
                &flexible
            }
            None => return Err(not_found(&format!("no variant named {variant_name:?}"))),
        };
        let signed = image.require_signed_urls && !variant.always_public;
        if signed {
            signing::verify(
                &settings.signing_keys,
                self.head.uri.path(),
                self.head.uri.query(),
                api::now().0,
            )?;
        }
        let original = OutputFormat::parse(&blob.content_type).ok();
        let format = variant.format.or_else(|| negotiate(self.head, original));
        let tag = etag(&blob.key, variant, format);
        let cache = if signed {
            "private, max-age=3600"
        } else {
            "public, max-age=172800"
        };
        let decorate = |mut response: Response<Body>| {
            let headers = response.headers_mut();
            headers.insert(ETAG, HeaderValue::from_str(&tag).expect("hex"));
            headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
            if variant.format.is_none() {
                headers.insert(VARY, HeaderValue::from_static("Accept"));
            }
            response
        };
        let not_modified = self
            .head
            .headers
            .get(IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
        if not_modified {
            let mut response = Response::new(Body::Full(Bytes::new().into()));
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(decorate(response));
        }
        let stored = self
            .store
            .read(&blob)
            .await?
            .ok_or_else(|| image_not_found(id))?;
        // The original, untouched: streamed as stored.
        let unchanged = variant.transform.is_empty() && variant.quality.is_none();
        let Some(format) = format.filter(|f| !(unchanged && Some(*f) == original)) else {
            return Ok(decorate(respond::blob(stored, &blob.content_type)));
        };
        // Through the engine, as a /transform of one image would run.
        let upload = self.state.budget.upload();
        if !upload.try_grow(blob.size) {
            return Err(Error::new(
                ErrorCode::ProcessingLimit,
                "the server holds too many uploads at once; try again later",
            )
            .retry_after(1));
        }
        let bytes: Vec<Bytes> = stored
            .stream
            .try_collect()
            .await
            .map_err(|e| Error::internal(format!("reading the stored image: {e}")))?;
        let job = Job {
            sources: vec![Source::Image(bytes.concat().into())],
            steps: parse_steps(&variant.steps_json(), 1)?,
            output: OutputOptions {
                quality: variant.quality,
                ..OutputOptions::new(format)
            },
        };
        let memory = self.state.jobs.memory_needed(&job)?;
        let may_chunk = self.head.version >= hyper::Version::HTTP_11;
        let response = self
            .state
            .jobs
            .transform(job, memory, upload, may_chunk, meter)
            .await?;
        Ok(decorate(response))
    }

    fn json(&self, status: StatusCode, value: Value) -> Response<Body> {
        let bytes = serde_json::to_vec(&value).expect("JSON values serialise");
        let mut response = Response::new(Body::Full(Bytes::from(bytes).into()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The coded answer for an upload link that cannot be used: 404, 409 or 410.
fn completion_error(refused: Completion) -> Error {
    match refused {
        Completion::Unknown => not_found("upload link not found"),
        Completion::Used => Error::new(ErrorCode::Conflict, "upload link already used"),
        Completion::Expired => Error::new(ErrorCode::Expired, "upload link expired"),
    }
}

/// The format a browser gets when the variant names none: AVIF or WebP if it accepts them (as
/// Cloudflare serves), else the stored format; SVG and formats the engine cannot write as stored
/// (`None`: the original bytes).
fn negotiate(head: &Parts, original: Option<OutputFormat>) -> Option<OutputFormat> {
    let original = original?;
    let accept = head
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("image/avif") {
        Some(OutputFormat::Avif)
    } else if accept.contains("image/webp") {
        Some(OutputFormat::Webp)
    } else {
        Some(original)
    }
}

/// A strong ETag: the stored bytes' key (new bytes, new key), the variant and the format.
fn etag(blob_key: &str, variant: &Variant, format: Option<OutputFormat>) -> String {
    let mut hash = Sha256::new();
    hash.update(blob_key.as_bytes());
    hash.update(variant.steps_json().as_bytes());
    hash.update(format!("{:?}{:?}", variant.quality, format.map(|f| f.as_str())).as_bytes());
    format!("\"{}\"", hex::encode(&hash.finalize()[..16]))
}

/// Decodes a base64 upload (standard alphabet, padding optional, whitespace ignored): 9401 if
/// it is not base64.
fn decode_base64(text: &[u8]) -> Result<Bytes, Error> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine as _;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    LENIENT
        .decode(compact)
        .map(Bytes::from)
        .map_err(|e| Error::invalid(format!("the upload is not valid base64: {e}")))
}
