//! The wasm-bindgen exports behind `sdk/js/index.js`: `createImages(backend)` → [`Images`], whose
//! `input`/`text` give a [`Transformer`], whose `output` resolves to an
//! [`TransformationResult`]. The ESM entry wraps `Images` and `Transformer` in thin classes so that
//! `transform()`/`draw()` return `this` and `draw()` can tell a transformer from a stream.
//!
//! A transformer is a shared node (like the JS object in Cloudflare's client): a drawn child is
//! referenced, not copied, so steps added to it before the parent's `output()` still count.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Math, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use web_sys::{Headers, ReadableStream, Response, ResponseInit};

use imgbind_wire::OutputFields;

use crate::builder::{self, Op, Plan, Source};
use crate::errors::{ImagesError, Operation};
use crate::js_io::{
    base64_encoded, check_response, checked_body, get, invalid, js_error, js_string,
    json_stringify, passthrough_body, request_body, response_body, to_js_stream, Backend, JsInput,
    JsSource, RequestBody,
};
use crate::serialize::{self, frame, Part};

/// Creates the binding for a backend: a `Fetcher` (an object with `fetch`, such as a service
/// binding) or a base URL string such as `http://127.0.0.1:9999`.
#[wasm_bindgen(js_name = createImages)]
pub fn create_images(backend: JsValue) -> Result<Images, JsValue> {
    Ok(Images {
        backend: Rc::new(Backend::from_js(&backend)?),
    })
}

/// The binding: `input`, `text`, `info`.
#[wasm_bindgen]
pub struct Images {
    backend: Rc<Backend>,
}

#[wasm_bindgen]
impl Images {
    /// Starts a transformer on image bytes (`ReadableStream`, `ArrayBuffer`, typed array,
    /// `DataView`, `Blob`, `Response`); `{encoding: 'base64'}` decodes them as they stream.
    pub fn input(&self, source: JsValue, options: JsValue) -> Result<Transformer, JsValue> {
        let source = JsSource::from_js(Operation::Transform, &source, &options)?;
        Ok(self.transformer(source))
    }

    /// Starts a transformer on text to rasterise (`text_input`).
    pub fn text(&self, content: JsValue, options: JsValue) -> Transformer {
        self.transformer(JsSource::Text { content, options })
    }

    /// `{format, fileSize, width, height}` of an image (`{format}` for SVG).
    pub fn info(&self, source: JsValue, options: JsValue) -> Promise {
        let input = match JsSource::from_js(Operation::Info, &source, &options) {
            Ok(JsSource::Image(input)) => input,
            Ok(JsSource::Text { .. }) => {
                return Promise::reject(&invalid(Operation::Info, "info() needs image bytes"))
            }
            Err(e) => return Promise::reject(&e),
        };
        let boundary = new_boundary();
        let parts = vec![Part::file(imgbind_wire::protocol::PART_IMAGE, input)];
        let body = request_body(frame(&boundary, parts), Operation::Info);
        let backend = self.backend.clone();
        future_to_promise(async move {
            let content_type = serialize::content_type(&boundary);
            let response = backend.post(Operation::Info, &content_type, body).await?;
            check_response(Operation::Info, &response).await?;
            let r = JsFuture::from(response.json()?).await?;
            if !(r.is_object() && Reflect::has(&r, &"file_size".into())?) {
                return Ok(r);
            }
            // Cloudflare's key order: fileSize, width, height, format.
            let info = Object::new();
            for (to, from) in [
                ("fileSize", "file_size"),
                ("width", "width"),
                ("height", "height"),
                ("format", "format"),
            ] {
                Reflect::set(&info, &to.into(), &get(&r, from))?;
            }
            Ok(info.into())
        })
    }

    fn transformer(&self, source: JsSource) -> Transformer {
        Transformer {
            node: Rc::new(RefCell::new(Node {
                source: Some(source),
                steps: Vec::new(),
                consumed: false,
            })),
            backend: self.backend.clone(),
        }
    }
}

struct Node {
    /// Taken when the tree is serialised.
    source: Option<JsSource>,
    steps: Vec<NodeStep>,
    consumed: bool,
}

enum NodeStep {
    Transform(JsValue),
    Draw(Rc<RefCell<Node>>, JsValue),
}

/// Marks a node used (by `output()` or by being drawn); the second time is 9525.
fn consume(node: &RefCell<Node>) -> Result<(), JsValue> {
    let mut node = node.borrow_mut();
    if node.consumed {
        return Err(js_error(&ImagesError::consumed()));
    }
    node.consumed = true;
    Ok(())
}

/// A transformer under construction.
#[wasm_bindgen]
pub struct Transformer {
    node: Rc<RefCell<Node>>,
    backend: Rc<Backend>,
}

#[wasm_bindgen]
impl Transformer {
    /// Adds a transform (`{width, rotate, …}`), passed to the backend as given.
    pub fn transform(&self, transform: JsValue) {
        self.node
            .borrow_mut()
            .steps
            .push(NodeStep::Transform(transform));
    }

    /// Draws another transformer onto this one, consuming it.
    #[wasm_bindgen(js_name = drawTransformer)]
    pub fn draw_transformer(&self, child: &Transformer, options: JsValue) -> Result<(), JsValue> {
        consume(&child.node)?;
        let step = NodeStep::Draw(child.node.clone(), default_options(options));
        self.node.borrow_mut().steps.push(step);
        Ok(())
    }

    /// Draws image bytes (or a `{content, options}` text source) onto this one.
    #[wasm_bindgen(js_name = drawSource)]
    pub fn draw_source(&self, source: JsValue, options: JsValue) -> Result<(), JsValue> {
        let source = JsSource::from_js(Operation::Transform, &source, &JsValue::UNDEFINED)?;
        let child = Node {
            source: Some(source),
            steps: Vec::new(),
            consumed: true,
        };
        let step = NodeStep::Draw(Rc::new(RefCell::new(child)), default_options(options));
        self.node.borrow_mut().steps.push(step);
        Ok(())
    }

    /// Sends the request; resolves to the result once the response head is in.
    pub fn output(&self, options: JsValue) -> Promise {
        let prepared = consume(&self.node).and_then(|()| prepare(&self.node, &options));
        let (content_type, body) = match prepared {
            Ok(p) => p,
            Err(e) => return Promise::reject(&e),
        };
        let backend = self.backend.clone();
        future_to_promise(async move {
            let response = backend
                .post(Operation::Transform, &content_type, body)
                .await?;
            check_response(Operation::Transform, &response).await?;
            Ok(TransformationResult {
                response,
                image: RefCell::new(None),
                native_body: backend.native_bodies(),
            }
            .into())
        })
    }
}

/// `draw(image, options = {})`.
fn default_options(options: JsValue) -> JsValue {
    if options.is_undefined() {
        Object::new().into()
    } else {
        options
    }
}

/// Serialises the tree and output options into the content type and the lazy body stream.
fn prepare(node: &RefCell<Node>, options: &JsValue) -> Result<(String, RequestBody), JsValue> {
    let plan = snapshot(node)?.plan();
    let Plan { canvas, draws, ops } = plan;
    let transforms = ops_json(&ops)?;
    let output = output_fields(options)?;
    let boundary = new_boundary();
    let parts = Plan { canvas, draws, ops }.into_parts(transforms, output);
    let body = request_body(frame(&boundary, parts), Operation::Transform);
    Ok((serialize::content_type(&boundary), body))
}

/// The tree as plain data, taking the inputs out of the (now consumed) nodes.
fn snapshot(node: &RefCell<Node>) -> Result<builder::Tree<JsInput, JsValue>, JsValue> {
    let (source, steps) = {
        let mut node = node.borrow_mut();
        (node.source.take(), std::mem::take(&mut node.steps))
    };
    let source = match source.ok_or_else(|| js_error(&ImagesError::consumed()))? {
        JsSource::Image(input) => Source::Image(input),
        JsSource::Text { content, options } => Source::Text(text_json(&content, &options)?),
    };
    let mut tree = builder::Tree::new(source);
    for step in steps {
        match step {
            NodeStep::Transform(t) => tree.push_transform(t),
            NodeStep::Draw(child, options) => tree.push_draw(snapshot(&child)?, options),
        }
    }
    Ok(tree)
}

/// `JSON.stringify({text, font, size?, color?})`, as Cloudflare's `serializeTextSource`.
fn text_json(content: &JsValue, options: &JsValue) -> Result<String, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Err(js_sys::TypeError::new(&format!(
            "Cannot read properties of {} (reading 'font')",
            js_string(options)?
        ))
        .into());
    }
    let obj = Object::new();
    Reflect::set(&obj, &"text".into(), content)?;
    Reflect::set(&obj, &"font".into(), &get(options, "font"))?;
    for key in ["size", "color"] {
        let value = get(options, key);
        if !value.is_undefined() {
            Reflect::set(&obj, &key.into(), &value)?;
        }
    }
    json_stringify(&obj)
}

/// `JSON.stringify` of `[{imageIndex, ...t}, {drawImageIndex, targetImageIndex, ...o}, …]`.
fn ops_json(ops: &[Op<JsValue>]) -> Result<String, JsValue> {
    let array = Array::new();
    for op in ops {
        let obj = Object::new();
        let options = match op {
            Op::Transform {
                image_index,
                options,
            } => {
                Reflect::set(&obj, &"imageIndex".into(), &(*image_index as u32).into())?;
                options
            }
            Op::Draw {
                draw_image_index,
                target_image_index,
                options,
            } => {
                Reflect::set(
                    &obj,
                    &"drawImageIndex".into(),
                    &(*draw_image_index as u32).into(),
                )?;
                Reflect::set(
                    &obj,
                    &"targetImageIndex".into(),
                    &(*target_image_index as u32).into(),
                )?;
                options
            }
        };
        // Object spread: null/undefined add nothing; later keys overwrite in place.
        if !(options.is_undefined() || options.is_null()) {
            Object::assign(&obj, &Object::from(options.clone()));
        }
        array.push(&obj);
    }
    json_stringify(&array)
}

/// `output_format`, then `output_quality`, `background`, `anim` where not `undefined`.
fn output_fields(options: &JsValue) -> Result<OutputFields, JsValue> {
    if options.is_undefined() || options.is_null() {
        return Err(js_sys::TypeError::new(&format!(
            "Cannot read properties of {} (reading 'format')",
            js_string(options)?
        ))
        .into());
    }
    let optional = |key: &str| -> Result<Option<String>, JsValue> {
        let value = get(options, key);
        if value.is_undefined() {
            Ok(None)
        } else {
            js_string(&value).map(Some)
        }
    };
    Ok(OutputFields {
        format: Some(js_string(&get(options, "format"))?),
        quality: optional("quality")?,
        background: optional("background")?,
        anim: optional("anim")?,
    })
}

fn new_boundary() -> String {
    serialize::boundary(|| (Math::random() * 10.0) as u8)
}

/// The answer to `output()`.
#[wasm_bindgen(js_name = ImageTransformationResult)]
pub struct TransformationResult {
    response: Response,
    /// The checked body, made on the first `image()` and returned again after.
    image: RefCell<Option<ReadableStream>>,
    /// The body is workerd's own stream (see `Backend::native_bodies`).
    native_body: bool,
}

#[wasm_bindgen(js_class = ImageTransformationResult)]
impl TransformationResult {
    /// The result's `content-type`; 9523 if the backend sent none.
    #[wasm_bindgen(js_name = contentType)]
    pub fn content_type(&self) -> Result<String, JsValue> {
        match self.response.headers().get("content-type")? {
            Some(ct) if !ct.is_empty() => Ok(ct),
            _ => Err(js_error(&ImagesError::no_content_type())),
        }
    }

    /// The image bytes as a stream (base64 text with `{encoding: 'base64'}`). The stream errors
    /// rather than ends if the body is cut short.
    pub fn image(&self, options: JsValue) -> Result<ReadableStream, JsValue> {
        let body = self.body()?;
        if get(&options, "encoding").as_string().as_deref() != Some("base64") {
            return Ok(body);
        }
        if body.locked() {
            return Err(js_sys::TypeError::new("the image stream is already being read").into());
        }
        Ok(to_js_stream(base64_encoded(body)))
    }

    /// `new Response(image(), {headers})` with `content-type` set to [`contentType`] (not
    /// overridable).
    pub fn response(&self, options: JsValue) -> Result<Response, JsValue> {
        let init = get(&options, "headers");
        let headers = if init.is_undefined() {
            Headers::new()?
        } else {
            Headers::new_with_str_sequence_sequence(&init)?
        };
        headers.set("content-type", &self.content_type()?)?;
        let response_init = ResponseInit::new();
        response_init.set_headers(&headers);
        // The backend's body as it is when image() has not taken it (the usual case).
        let cached = self.image.borrow().clone();
        let body = match cached {
            Some(body) => response_body(&self.response, body)?,
            None => match passthrough_body(&self.response, self.native_body)? {
                Some(body) => body,
                None => response_body(&self.response, self.image(JsValue::UNDEFINED)?)?,
            },
        };
        Response::new_with_opt_readable_stream_and_init(Some(&body), &response_init)
    }

    fn body(&self) -> Result<ReadableStream, JsValue> {
        let mut cached = self.image.borrow_mut();
        if let Some(body) = &*cached {
            return Ok(body.clone());
        }
        let body = checked_body(&self.response)?;
        *cached = Some(body.clone());
        Ok(body)
    }
}
