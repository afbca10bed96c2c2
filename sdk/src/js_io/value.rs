//! JS value helpers: coded `Error`s, `String(x)`, `x?.[key]`, `JSON.stringify`, byte views.

use js_sys::{ArrayBuffer, Function, Object, Reflect, Uint8Array, JSON};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use imgbind_wire::ErrorCode;

use crate::errors::{ImagesError, Operation};

/// An `ImagesError` as a JS `Error` with a numeric `code`.
pub(crate) fn js_error(error: &ImagesError) -> JsValue {
    error_with_cause(error, None)
}

/// [`js_error`] with `cause` set.
pub(crate) fn error_with_cause(error: &ImagesError, cause: Option<&JsValue>) -> JsValue {
    let e = match cause {
        Some(cause) => {
            let options = Object::new();
            let _ = Reflect::set(&options, &"cause".into(), cause);
            js_sys::Error::new_with_options(&error.message, &options)
        }
        None => js_sys::Error::new(&error.message),
    };
    let _ = Reflect::set(&e, &"code".into(), &JsValue::from(error.code));
    e.into()
}

/// A client-side argument error (9401).
pub(crate) fn invalid(op: Operation, detail: &str) -> JsValue {
    js_error(&ImagesError::client(
        op,
        ErrorCode::InvalidArguments,
        detail,
    ))
}

/// `String(value)`.
pub(crate) fn js_string(value: &JsValue) -> Result<String, JsValue> {
    if let Some(s) = value.as_string() {
        return Ok(s);
    }
    let string: Function = Reflect::get(&js_sys::global(), &"String".into())?.dyn_into()?;
    Ok(string
        .call1(&JsValue::UNDEFINED, value)?
        .as_string()
        .unwrap_or_default())
}

/// `value?.[key]`.
pub(crate) fn get(value: &JsValue, key: &str) -> JsValue {
    if value.is_object() || value.is_function() {
        Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
    } else {
        JsValue::UNDEFINED
    }
}

/// The message of a thrown value, for wrapping it.
pub(crate) fn describe(value: &JsValue) -> String {
    match get(value, "message").as_string() {
        Some(m) => m,
        None => js_string(value).unwrap_or_else(|_| "unknown error".into()),
    }
}

pub(crate) fn has_numeric_code(value: &JsValue) -> bool {
    get(value, "code").as_f64().is_some()
}

/// `JSON.stringify(value)` as a Rust string.
pub(crate) fn json_stringify(value: &JsValue) -> Result<String, JsValue> {
    Ok(JSON::stringify(value)?.as_string().unwrap_or_default())
}

/// Calls `target[method]()` synchronously.
pub(crate) fn call0(target: &JsValue, method: &str) -> Result<JsValue, JsValue> {
    let f: Function = get(target, method).dyn_into()?;
    f.call0(target)
}

/// A view of bytes without copying: `Uint8Array` as is, other views and `ArrayBuffer` wrapped.
pub(crate) fn as_bytes(value: &JsValue) -> Result<Uint8Array, ()> {
    if let Some(u8s) = value.dyn_ref::<Uint8Array>() {
        return Ok(u8s.clone());
    }
    if value.is_instance_of::<ArrayBuffer>() || value.is_instance_of::<js_sys::SharedArrayBuffer>()
    {
        return Ok(Uint8Array::new(value));
    }
    if ArrayBuffer::is_view(value) {
        let buffer = get(value, "buffer");
        let offset = get(value, "byteOffset").as_f64().unwrap_or(0.0) as u32;
        let length = get(value, "byteLength").as_f64().unwrap_or(0.0) as u32;
        return Ok(Uint8Array::new_with_byte_offset_and_length(
            &buffer, offset, length,
        ));
    }
    Err(())
}
