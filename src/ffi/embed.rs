//! Embeddings (`ModelApiEmbeddings`): `POST {api_base}/v1/embeddings`, the
//! vectors readable as `float` arrays.

use std::ffi::c_char;

use super::boundary::{guard, guard_void, Failure, ModelApiStatus};
use super::client::ModelApiHandle;
use super::ModelApiStatus::*;
use super::{args, required_out, shared};
use crate::Embeddings;

/// The vectors of one `modelapi_embed` call. Opaque to C: read with
/// `modelapi_embeddings_count`, `_dimension`, `_vector` and `_data`, freed
/// with `modelapi_embeddings_free` (the arrays it hands out belong to it).
#[derive(Debug)]
pub struct ModelApiEmbeddings {
    embeddings: Embeddings,
}

/// The embeddings of `count` texts (`inputs[0]` to `inputs[count - 1]`,
/// at least one) by `model` (NULL: the client's). The client's settings
/// apply as to chat calls (retries, timeout, caps, headers, trace,
/// errors); a canned reply answers with a vector of 8 floats per input,
/// derived from the text alone (equal inputs, equal vectors). On `MODELAPI_OK`, `*out_embeddings` holds one vector per
/// input, in order, all of one dimension; free it with
/// `modelapi_embeddings_free`. On any other status it is set to NULL.
///
/// May be called by several threads at once on one client.
///
/// # Safety
/// `api` is NULL or a live client; `inputs` is NULL or points to `count`
/// strings, each NULL or NUL-terminated; `model` is NULL or
/// NUL-terminated; `out_embeddings` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embed(
    api: *mut ModelApiHandle,
    model: *const c_char,
    inputs: *const *const c_char,
    count: usize,
    out_embeddings: *mut *mut ModelApiEmbeddings,
) -> ModelApiStatus {
    args::clear(out_embeddings);
    guard(|| {
        let api = shared(api)?;
        required_out(out_embeddings, "out_embeddings")?;
        if inputs.is_null() {
            return Err(Failure::invalid(format!(
                "inputs is NULL (count {count}): pass an array of strings"
            )));
        }
        if count == 0 {
            return Err(Failure::invalid("count is 0: give one input or more"));
        }
        let model = args::optional_str(model, "model")?;
        let texts = std::slice::from_raw_parts(inputs, count)
            .iter()
            .enumerate()
            .map(|(i, text)| args::required_str(*text, &format!("inputs[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let embeddings = api.embed_with_model(model, &texts)?;
        *out_embeddings = Box::into_raw(Box::new(ModelApiEmbeddings { embeddings }));
        Ok(MODELAPI_OK)
    })
}

/// How many vectors (the number of inputs); 0 for NULL.
///
/// # Safety
/// `embeddings` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embeddings_count(embeddings: *const ModelApiEmbeddings) -> usize {
    embeddings.as_ref().map_or(0, |e| e.embeddings.len())
}

/// The number of floats in each vector; 0 for NULL.
///
/// # Safety
/// `embeddings` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embeddings_dimension(
    embeddings: *const ModelApiEmbeddings,
) -> usize {
    embeddings.as_ref().map_or(0, |e| e.embeddings.dimension())
}

/// The vector of input `index`: `modelapi_embeddings_dimension` floats,
/// owned by `embeddings` (valid until it is freed); NULL for NULL or an
/// index out of range.
///
/// # Safety
/// `embeddings` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embeddings_vector(
    embeddings: *const ModelApiEmbeddings,
    index: usize,
) -> *const f32 {
    embeddings
        .as_ref()
        .and_then(|e| e.embeddings.vector(index))
        .map_or(std::ptr::null(), <[f32]>::as_ptr)
}

/// Every vector, one after the other (count times dimension floats, the
/// vector of input i at i * dimension), owned by `embeddings`; NULL for
/// NULL.
///
/// # Safety
/// `embeddings` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embeddings_data(
    embeddings: *const ModelApiEmbeddings,
) -> *const f32 {
    embeddings
        .as_ref()
        .map_or(std::ptr::null(), |e| e.embeddings.as_flat().as_ptr())
}

/// Frees the vectors. NULL is a no-op.
///
/// # Safety
/// `embeddings` is NULL or live, not used after this call.
#[no_mangle]
pub unsafe extern "C" fn modelapi_embeddings_free(embeddings: *mut ModelApiEmbeddings) {
    if !embeddings.is_null() {
        guard_void(|| drop(Box::from_raw(embeddings)));
    }
}
