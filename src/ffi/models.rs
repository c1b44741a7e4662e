//! The model list (`ModelApiModels`): `GET {api_base}/v1/models`, as its
//! ids and as the server's JSON.

use std::ffi::{c_char, CString};

use super::boundary::{guard, guard_void, ModelApiStatus};
use super::client::ModelApiHandle;
use super::ModelApiStatus::*;
use super::{args, required_out, shared};

/// The models a server offers. Opaque to C: read with
/// `modelapi_models_count`, `modelapi_models_id` and `modelapi_models_json`
/// (strings owned by it), freed with `modelapi_models_free`.
#[derive(Debug)]
pub struct ModelApiModels {
    ids: Vec<CString>,
    json: CString,
}

/// The models the server offers (`GET {api_base}/v1/models`: a health
/// check, a model picker), with the client's key, headers, retries,
/// timeout and caps; canned replies do not answer it. On `MODELAPI_OK`,
/// `*out_models` holds the list; free it with `modelapi_models_free`. On
/// any other status it is set to NULL.
///
/// May be called by several threads at once on one client.
///
/// # Safety
/// `api` is NULL or a live client; `out_models` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_models(
    api: *mut ModelApiHandle,
    out_models: *mut *mut ModelApiModels,
) -> ModelApiStatus {
    args::clear(out_models);
    guard(|| {
        let api = shared(api)?;
        required_out(out_models, "out_models")?;
        let list = api.models()?;
        let c = |text: &str| CString::new(text.replace('\0', "")).expect("NULs removed");
        let models = ModelApiModels {
            ids: list.ids().map(c).collect(),
            json: c(list.raw_json()),
        };
        *out_models = Box::into_raw(Box::new(models));
        Ok(MODELAPI_OK)
    })
}

/// How many models; 0 for NULL.
///
/// # Safety
/// `models` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_models_count(models: *const ModelApiModels) -> usize {
    models.as_ref().map_or(0, |m| m.ids.len())
}

/// The id of model `index` (the name to ask for), owned by `models`;
/// NULL for NULL or an index out of range.
///
/// # Safety
/// `models` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_models_id(
    models: *const ModelApiModels,
    index: usize,
) -> *const c_char {
    models
        .as_ref()
        .and_then(|m| m.ids.get(index))
        .map_or(std::ptr::null(), |id| id.as_ptr())
}

/// The server's answer as it arrived (JSON with a "data" array, and any
/// field of the server's own), owned by `models`; NULL for NULL.
///
/// # Safety
/// `models` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_models_json(models: *const ModelApiModels) -> *const c_char {
    models
        .as_ref()
        .map_or(std::ptr::null(), |m| m.json.as_ptr())
}

/// Frees the list. NULL is a no-op.
///
/// # Safety
/// `models` is NULL or live, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_models_free(models: *mut ModelApiModels) {
    if !models.is_null() {
        guard_void(|| drop(Box::from_raw(models)));
    }
}
