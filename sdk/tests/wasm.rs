//! The wasm bindings under Node (`wasm-bindgen-test-runner`): requests built against a mock
//! Fetcher, errors, truncation, base64, input kinds. Run by `scripts/test-sdk.sh`.
#![cfg(target_arch = "wasm32")]

use std::cell::RefCell;
use std::rc::Rc;

use futures_util::stream::{self, StreamExt, TryStreamExt};
use imgbind_sdk::js_api::{create_images, Images};
use js_sys::{Array, Function, Object, Promise, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{future_to_promise, JsFuture};
use wasm_bindgen_test::wasm_bindgen_test;
use web_sys::{Blob, Headers, ReadableStream, Response, ResponseInit};

/// One request the mock saw.
struct Call {
    url: String,
    content_type: String,
    body: Vec<u8>,
    init: JsValue,
}

/// A Fetcher whose `fetch` reads the whole request body, records it, and answers with `reply`.
struct Mock {
    fetcher: Object,
    calls: Rc<RefCell<Vec<Call>>>,
}

fn mock(reply: impl Fn() -> Response + 'static) -> Mock {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let recorded = calls.clone();
    let reply = Rc::new(reply);
    let fetch = Closure::<dyn FnMut(JsValue, JsValue) -> Promise>::new(
        move |url: JsValue, init: JsValue| {
            let recorded = recorded.clone();
            let reply = reply.clone();
            future_to_promise(async move {
                let body = read_all(get(&init, "body").unchecked_into()).await?;
                let content_type = get(&get(&init, "headers"), "content-type")
                    .as_string()
                    .unwrap();
                recorded.borrow_mut().push(Call {
                    url: url.as_string().unwrap(),
                    content_type,
                    body,
                    init,
                });
                Ok(reply().into())
            })
        },
    );
    let fetcher = Object::new();
    Reflect::set(&fetcher, &"fetch".into(), fetch.as_ref()).unwrap();
    fetch.forget();
    Mock { fetcher, calls }
}

fn images(m: &Mock) -> Images {
    create_images(m.fetcher.clone().into()).unwrap()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &key.into()).unwrap()
}

fn json(text: &str) -> JsValue {
    JSON::parse(text).unwrap()
}

fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: Function = get(obj, method).dyn_into().unwrap();
    f.apply(obj, &args.iter().cloned().collect::<Array>())
}

async fn read_all(s: ReadableStream) -> Result<Vec<u8>, JsValue> {
    let chunks: Vec<JsValue> = wasm_streams::ReadableStream::from_raw(s)
        .into_stream()
        .try_collect()
        .await?;
    Ok(chunks
        .iter()
        .flat_map(|c| c.unchecked_ref::<Uint8Array>().to_vec())
        .collect())
}

fn bytes(s: &[u8]) -> JsValue {
    Uint8Array::from(s).into()
}

fn js_stream(chunks: Vec<Result<JsValue, JsValue>>) -> ReadableStream {
    wasm_streams::ReadableStream::from_stream(stream::iter(chunks)).into_raw()
}

fn response(body: Option<&ReadableStream>, headers: &[(&str, &str)], status: u16) -> Response {
    let h = Headers::new().unwrap();
    for (k, v) in headers {
        h.set(k, v).unwrap();
    }
    let init = ResponseInit::new();
    init.set_headers(&h);
    init.set_status(status);
    Response::new_with_opt_readable_stream_and_init(body, &init).unwrap()
}

fn png_ok() -> Response {
    let body = js_stream(vec![Ok(bytes(b"PNGDATA"))]);
    response(Some(&body), &[("content-type", "image/png")], 200)
}

async fn output(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

fn code_and_message(e: &JsValue) -> (f64, String) {
    assert!(e.is_instance_of::<js_sys::Error>(), "not an Error: {e:?}");
    (
        get(e, "code").as_f64().expect("numeric code"),
        get(e, "message").as_string().unwrap(),
    )
}

fn boundary_of(content_type: &str) -> &str {
    content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart content type")
}

#[wasm_bindgen_test]
async fn request_body_is_byte_exact() {
    let m = mock(png_ok);
    let images = images(&m);
    let canvas = images
        .input(
            js_stream(vec![Ok(bytes(b"AB")), Ok(bytes(b"C"))]).into(),
            JsValue::UNDEFINED,
        )
        .unwrap();
    canvas.transform(json(r#"{"rotate":90,"width":100}"#));
    let child = images.input(bytes(b"xy"), JsValue::UNDEFINED).unwrap();
    child.transform(json(r#"{"width":10}"#));
    canvas
        .draw_transformer(&child, json(r#"{"bottom":5,"right":5,"opacity":0.5}"#))
        .unwrap();
    let result = output(canvas.output(json(r#"{"format":"image/avif","quality":50}"#)))
        .await
        .unwrap();

    let calls = m.calls.take();
    assert_eq!(calls.len(), 1);
    let c = &calls[0];
    assert_eq!(c.url, "https://js.images.cloudflare.com/transform");
    assert_eq!(get(&c.init, "method").as_string().unwrap(), "POST");
    assert!(get(&get(&c.init, "headers"), "expect").is_undefined());
    let b = boundary_of(&c.content_type);
    assert_eq!(b.len(), 50);
    let expected = format!(
        "--{b}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"image\"\r\n\r\nABC\r\n\
         --{b}\r\ncontent-disposition: form-data; name=\"draw_image\"; filename=\"draw_image\"\r\n\r\nxy\r\n\
         --{b}\r\ncontent-disposition: form-data; name=\"transforms\"\r\n\r\n\
         [{{\"imageIndex\":0,\"rotate\":90,\"width\":100}},{{\"imageIndex\":1,\"width\":10}},\
         {{\"drawImageIndex\":1,\"targetImageIndex\":0,\"bottom\":5,\"right\":5,\"opacity\":0.5}}]\r\n\
         --{b}\r\ncontent-disposition: form-data; name=\"output_format\"\r\n\r\nimage/avif\r\n\
         --{b}\r\ncontent-disposition: form-data; name=\"output_quality\"\r\n\r\n50\r\n\
         --{b}--\r\n"
    );
    assert_eq!(String::from_utf8(c.body.clone()).unwrap(), expected);

    assert_eq!(call(&result, "contentType", &[]).unwrap(), "image/png");
    let image = call(&result, "image", &[]).unwrap();
    assert_eq!(read_all(image.unchecked_into()).await.unwrap(), b"PNGDATA");
}

#[wasm_bindgen_test]
async fn url_backend_posts_to_base_plus_path() {
    // A base URL uses the global fetch; swap it for the mock's while the request is made.
    let m = mock(png_ok);
    let global = js_sys::global();
    let original = get(&global, "fetch");
    Reflect::set(&global, &"fetch".into(), &get(&m.fetcher, "fetch")).unwrap();
    let images = create_images("http://127.0.0.1:9999/".into()).unwrap();
    let t = images.input(bytes(b"x"), JsValue::UNDEFINED).unwrap();
    let result = output(t.output(json(r#"{"format":"image/png"}"#))).await;
    Reflect::set(&global, &"fetch".into(), &original).unwrap();
    result.unwrap();
    let calls = m.calls.borrow();
    assert_eq!(calls[0].url, "http://127.0.0.1:9999/transform");
    assert_eq!(get(&calls[0].init, "duplex"), "half");
}

#[wasm_bindgen_test]
async fn consumed_twice_is_9525() {
    let m = mock(png_ok);
    let images = images(&m);
    let message = "IMAGES_TRANSFORM_ERROR 9525: ImageTransformer consumed; you may only call .output() or draw a transformer once";

    let child = images.input(bytes(b"c"), JsValue::UNDEFINED).unwrap();
    let a = images.input(bytes(b"a"), JsValue::UNDEFINED).unwrap();
    a.draw_transformer(&child, JsValue::UNDEFINED).unwrap();
    let e = a.draw_transformer(&child, JsValue::UNDEFINED).unwrap_err();
    assert_eq!(code_and_message(&e), (9525.0, message.to_string()));
    // A drawn transformer cannot be output either.
    let e = output(child.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e).0, 9525.0);

    output(a.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    let e = output(a.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap_err();
    assert_eq!(code_and_message(&e), (9525.0, message.to_string()));
    assert_eq!(m.calls.borrow().len(), 1);
}

#[wasm_bindgen_test]
async fn error_header_becomes_code_and_message() {
    let m = mock(|| {
        let body = js_stream(vec![Ok(bytes(b"ERROR 9412: Input is not an image\n"))]);
        response(
            Some(&body),
            &[
                ("cf-images-binding", "err=9412"),
                ("content-type", "text/plain"),
            ],
            415,
        )
    });
    let images = images(&m);
    let t = images.input(bytes(b"nope"), JsValue::UNDEFINED).unwrap();
    let e = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            9412.0,
            "IMAGES_TRANSFORM_ERROR 9412: Input is not an image".to_string()
        )
    );
    let e = output(images.info(bytes(b"nope"), JsValue::UNDEFINED))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            9412.0,
            "IMAGES_INFO_ERROR 9412: Input is not an image".to_string()
        )
    );
}

#[wasm_bindgen_test]
async fn status_500_without_header_is_9523() {
    let m = mock(|| {
        let body = js_stream(vec![Ok(bytes(b" upstream exploded "))]);
        response(Some(&body), &[], 500)
    });
    let t = images(&m).input(bytes(b"x"), JsValue::UNDEFINED).unwrap();
    let e = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            9523.0,
            "Unexpected error response 500: upstream exploded".to_string()
        )
    );
}

#[wasm_bindgen_test]
async fn missing_content_type_is_9523() {
    let m = mock(|| response(None, &[], 200));
    let t = images(&m).input(bytes(b"x"), JsValue::UNDEFINED).unwrap();
    let result = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    let e = call(&result, "contentType", &[]).unwrap_err();
    assert_eq!(
        code_and_message(&e),
        (
            9523.0,
            "IMAGES_TRANSFORM_ERROR 9523: No content-type on bindings response".to_string()
        )
    );
}

async fn image_of(reply: impl Fn() -> Response + 'static) -> Result<Vec<u8>, JsValue> {
    let m = mock(reply);
    let t = images(&m).input(bytes(b"x"), JsValue::UNDEFINED).unwrap();
    let result = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    read_all(call(&result, "image", &[]).unwrap().unchecked_into()).await
}

#[wasm_bindgen_test]
async fn short_body_rejects_never_ends_cleanly() {
    let e = image_of(|| {
        let body = js_stream(vec![Ok(bytes(b"0123")), Ok(bytes(b"45"))]);
        response(
            Some(&body),
            &[("content-type", "image/png"), ("content-length", "10")],
            200,
        )
    })
    .await
    .unwrap_err();
    let (code, message) = code_and_message(&e);
    assert_eq!(code, 9523.0);
    assert!(
        message.contains("expected 10 bytes") && message.contains("got 6"),
        "{message}"
    );

    // Exactly content-length bytes end cleanly.
    let ok = image_of(|| {
        let body = js_stream(vec![Ok(bytes(b"0123")), Ok(bytes(b"45"))]);
        response(
            Some(&body),
            &[("content-type", "image/png"), ("content-length", "6")],
            200,
        )
    })
    .await
    .unwrap();
    assert_eq!(ok, b"012345");
}

#[wasm_bindgen_test]
async fn erroring_body_rejects() {
    let e = image_of(|| {
        let body = js_stream(vec![
            Ok(bytes(b"0123")),
            Err(js_sys::Error::new("connection reset").into()),
        ]);
        response(Some(&body), &[("content-type", "image/png")], 200)
    })
    .await
    .unwrap_err();
    let (code, message) = code_and_message(&e);
    assert_eq!(code, 9523.0);
    assert!(message.contains("connection reset"), "{message}");
}

#[wasm_bindgen_test]
async fn response_forces_content_type() {
    let m = mock(png_ok);
    let t = images(&m).input(bytes(b"x"), JsValue::UNDEFINED).unwrap();
    let result = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    let options = json(r#"{"headers":{"content-type":"text/html","cache-control":"max-age=5"}}"#);
    let r: Response = call(&result, "response", &[options])
        .unwrap()
        .unchecked_into();
    assert_eq!(
        r.headers().get("content-type").unwrap().unwrap(),
        "image/png"
    );
    assert_eq!(
        r.headers().get("cache-control").unwrap().unwrap(),
        "max-age=5"
    );
    assert_eq!(read_all(r.body().unwrap()).await.unwrap(), b"PNGDATA");
}

#[wasm_bindgen_test]
async fn base64_in_and_out() {
    let m = mock(|| {
        let body = js_stream(vec![
            Ok(bytes(b"hel")),
            Ok(bytes(b"lo wor")),
            Ok(bytes(b"ld")),
        ]);
        response(Some(&body), &[("content-type", "image/png")], 200)
    });
    let images = images(&m);
    // "hello image" split mid-group, with a line break.
    let input = js_stream(vec![
        Ok(bytes(b"aGVsbG8g")),
        Ok(bytes(b"aW1h\r\n")),
        Ok(bytes(b"Z2U=")),
    ]);
    let t = images
        .input(input.into(), json(r#"{"encoding":"base64"}"#))
        .unwrap();
    let result = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    let body = String::from_utf8(m.calls.borrow()[0].body.clone()).unwrap();
    assert!(body.contains("\r\n\r\nhello image\r\n--"), "{body}");

    let encoded = call(&result, "image", &[json(r#"{"encoding":"base64"}"#)]).unwrap();
    let text = read_all(encoded.unchecked_into()).await.unwrap();
    assert_eq!(text, b"aGVsbG8gd29ybGQ=");
}

#[wasm_bindgen_test]
async fn bad_base64_fails_the_request_with_a_code() {
    let m = mock(png_ok);
    let t = images(&m)
        .input(bytes(b"aGVs*G8="), json(r#"{"encoding":"base64"}"#))
        .unwrap();
    let e = output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap_err();
    let (code, message) = code_and_message(&e);
    assert_eq!(code, 9401.0);
    assert!(message.contains("base64 error"), "{message}");
}

#[wasm_bindgen_test]
async fn every_input_kind_sends_the_same_bytes() {
    let data = b"\x89PNG\r\n\x1a\n\x00\xff";
    let buffer = Uint8Array::from(&data[..]).buffer();
    let padded = Uint8Array::from(&[b"__", &data[..], b"__"].concat()[..]);
    let view = Uint8Array::new_with_byte_offset_and_length(&padded.buffer(), 2, data.len() as u32);
    let data_view = js_sys::DataView::new(&padded.buffer(), 2, data.len());
    let parts = Array::of1(&Uint8Array::from(&data[..]));
    let blob = Blob::new_with_u8_array_sequence(&parts).unwrap();
    let inputs: Vec<(&str, JsValue)> = vec![
        ("ArrayBuffer", buffer.into()),
        ("Uint8Array view", view.into()),
        ("DataView", data_view.into()),
        ("Blob", blob.into()),
        (
            "Response",
            Response::new_with_opt_u8_array(Some(&mut data.to_vec()))
                .unwrap()
                .into(),
        ),
        ("ReadableStream", js_stream(vec![Ok(bytes(data))]).into()),
    ];
    for (kind, input) in inputs {
        let m = mock(png_ok);
        let t = images(&m).input(input, JsValue::UNDEFINED).unwrap();
        output(t.output(json(r#"{"format":"image/png"}"#)))
            .await
            .unwrap();
        let body = m.calls.borrow()[0].body.clone();
        let needle = [b"filename=\"image\"\r\n\r\n".as_slice(), data, b"\r\n--"].concat();
        assert!(
            body.windows(needle.len()).any(|w| w == needle),
            "{kind}: {:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[wasm_bindgen_test]
async fn unsupported_input_is_9401() {
    let m = mock(png_ok);
    let e = images(&m)
        .input(42.into(), JsValue::UNDEFINED)
        .err()
        .unwrap();
    assert_eq!(code_and_message(&e).0, 9401.0);
}

#[wasm_bindgen_test]
async fn info_maps_fields() {
    let m = mock(|| {
        let text = r#"{"format":"image/png","file_size":7,"width":3,"height":2}"#;
        let body = js_stream(vec![Ok(bytes(text.as_bytes()))]);
        response(Some(&body), &[("content-type", "application/json")], 200)
    });
    let info = output(images(&m).info(bytes(b"PNGDATA"), JsValue::UNDEFINED))
        .await
        .unwrap();
    assert_eq!(
        JSON::stringify(&info).unwrap(),
        r#"{"fileSize":7,"width":3,"height":2,"format":"image/png"}"#
    );
    let c = &m.calls.borrow()[0];
    assert_eq!(c.url, "https://js.images.cloudflare.com/info");
    let b = boundary_of(&c.content_type);
    assert_eq!(
        String::from_utf8(c.body.clone()).unwrap(),
        format!("--{b}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"image\"\r\n\r\nPNGDATA\r\n--{b}--\r\n")
    );
}

#[wasm_bindgen_test]
async fn streamed_input_chunks_pass_through() {
    let pulled = Rc::new(RefCell::new(0u32));
    let counter = pulled.clone();
    let chunks = stream::iter(0..3).map(move |i| {
        *counter.borrow_mut() += 1;
        Ok::<JsValue, JsValue>(bytes(&[b'a' + i]))
    });
    let input = wasm_streams::ReadableStream::from_stream(chunks).into_raw();
    let m = mock(png_ok);
    let t = images(&m).input(input.into(), JsValue::UNDEFINED).unwrap();
    output(t.output(json(r#"{"format":"image/png"}"#)))
        .await
        .unwrap();
    assert_eq!(*pulled.borrow(), 3);
    let body = String::from_utf8(m.calls.borrow()[0].body.clone()).unwrap();
    assert!(body.contains("\r\n\r\nabc\r\n"));
}
