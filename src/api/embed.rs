//! Embeddings: `POST {api_base}/v1/embeddings`, one or many inputs, the
//! vectors back as `f32`, through the client's transport (settings,
//! retries, timeouts, caps, trace, errors) and its canned replies.

use serde::Deserialize;
use serde_json::Value;
use ureq_proto::http::Method;

use crate::api::client::ModelApi;
use crate::api::exchange::fetch;
use crate::error::truncate;
use crate::error::Error;
use crate::trace::{trace, Level};

/// The dimension of the vectors a canned reply answers an embeddings call
/// with.
pub const MOCK_EMBEDDING_DIMENSION: usize = 8;

/// The vectors of one embeddings call, one per input, in the order of the
/// inputs, all of one dimension. They are stored one after the other
/// ([`as_flat`](Self::as_flat)).
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    values: Vec<f32>,
    dimension: usize,
    model: String,
    prompt_tokens: Option<u64>,
}

impl Embeddings {
    /// How many vectors (the number of inputs).
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dimension).unwrap_or(0)
    }

    /// Whether there is no vector (never, for an answer of the server).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The length of each vector.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// The vector of input `index`.
    pub fn vector(&self, index: usize) -> Option<&[f32]> {
        self.values.chunks_exact(self.dimension.max(1)).nth(index)
    }

    /// The vectors, in the order of the inputs.
    pub fn iter(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.dimension.max(1))
    }

    /// Every vector, one after the other (`len() * dimension()` values).
    pub fn as_flat(&self) -> &[f32] {
        &self.values
    }

    /// The model the server says answered.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The tokens of the inputs, when the server counted them.
    pub fn prompt_tokens(&self) -> Option<u64> {
        self.prompt_tokens
    }
}

impl ModelApi {
    /// The embeddings of `inputs` (one or many texts) by the client's
    /// model: `POST {api_base}/v1/embeddings`. See
    /// [`embed_with_model`](Self::embed_with_model).
    pub fn embed<S: AsRef<str>>(&self, inputs: &[S]) -> Result<Embeddings, Error> {
        self.embed_with_model(None, inputs)
    }

    /// The embeddings of `inputs` by `model` (`None`: the client's; an
    /// embedding model is often another than the chat model), one vector
    /// per input, in order.
    ///
    /// The client's settings apply as to chat calls: retries, redirects,
    /// timeout, the response cap, headers, trace, errors. A canned reply,
    /// when one is left, answers instead of the server: an error sentinel
    /// with its error, any other with a vector of
    /// [`MOCK_EMBEDDING_DIMENSION`] values per input, derived from the
    /// input's text alone (equal inputs, equal vectors; unit length).
    pub fn embed_with_model<S: AsRef<str>>(
        &self,
        model: Option<&str>,
        inputs: &[S],
    ) -> Result<Embeddings, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if inputs.is_empty() {
            return Err(Error::InvalidArgument(
                "no input to embed: give one text or more".into(),
            ));
        }
        let model = model.unwrap_or(&self.model);
        if model.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "the embedding model is empty".into(),
            ));
        }
        let inputs: Vec<&str> = inputs.iter().map(AsRef::as_ref).collect();
        if let Some(reply) = self.canned.take() {
            trace!(
                self.route.tracer,
                Level::Debug,
                "a canned reply answers the embeddings call (no network)"
            );
            if let Some(error) = reply.error() {
                return Err(error);
            }
            return Ok(canned(model, &inputs));
        }
        let body = serde_json::to_vec(&serde_json::json!({
            "model": model,
            "input": inputs,
            "encoding_format": "float",
        }))
        .map_err(|e| Error::InvalidArgument(format!("the inputs cannot be serialized: {e}")))?;
        let text = fetch(self, Method::POST, "embeddings", body)?;
        parse(&text, inputs.len()).map_err(|e| self.route.tracer.secrets().redact(e))
    }
}

#[derive(Deserialize)]
struct Body {
    data: Vec<Item>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Reads an embeddings answer for `count` inputs.
pub(crate) fn parse(text: &str, count: usize) -> Result<Embeddings, Error> {
    let invalid = |why: String| {
        Error::InvalidResponse(format!(
            "the embeddings answer {why}: {}",
            truncate(text.trim())
        ))
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| invalid(format!("is not JSON ({e})")))?;
    if value.get("error").is_some_and(|e| !e.is_null()) {
        return Err(Error::Server {
            message: crate::error::error_message(&value),
            body: text.to_string(),
        });
    }
    let body: Body = serde_json::from_value(value).map_err(|e| {
        invalid(format!(
            "is not a list of {{\"index\", \"embedding\": [numbers]}} ({e})"
        ))
    })?;
    if body.data.len() != count {
        return Err(invalid(format!(
            "holds {} vectors for {count} inputs",
            body.data.len()
        )));
    }
    let mut items: Vec<(usize, Vec<f32>)> = body
        .data
        .into_iter()
        .enumerate()
        .map(|(at, item)| (item.index.unwrap_or(at), item.embedding))
        .collect();
    items.sort_by_key(|(index, _)| *index);
    if items
        .iter()
        .enumerate()
        .any(|(at, (index, _))| at != *index)
    {
        return Err(invalid("does not index its vectors 0 to n-1".into()));
    }
    let dimension = items[0].1.len();
    if dimension == 0 || items.iter().any(|(_, v)| v.len() != dimension) {
        return Err(invalid(
            "holds empty vectors or vectors of different lengths".into(),
        ));
    }
    let mut values = Vec::with_capacity(dimension * count);
    for (_, vector) in items {
        values.extend(vector);
    }
    Ok(Embeddings {
        values,
        dimension,
        model: body.model.unwrap_or_default(),
        prompt_tokens: body
            .usage
            .as_ref()
            .and_then(|u| u.get("prompt_tokens"))
            .and_then(Value::as_u64),
    })
}

/// The canned answer: per input, a unit vector derived from its text.
fn canned(model: &str, inputs: &[&str]) -> Embeddings {
    let mut values = Vec::with_capacity(inputs.len() * MOCK_EMBEDDING_DIMENSION);
    for input in inputs {
        // FNV-1a of the text seeds a splitmix64 sequence.
        let mut state = input.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        let vector: Vec<f32> = (0..MOCK_EMBEDDING_DIMENSION)
            .map(|_| {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                // In [-1, 1).
                (z >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .map(|x| x as f32)
            .collect();
        let norm = vector
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        values.extend(vector.iter().map(|x| x / norm));
    }
    Embeddings {
        values,
        dimension: MOCK_EMBEDDING_DIMENSION,
        model: model.to_string(),
        prompt_tokens: Some(inputs.iter().map(|i| i.len().div_ceil(4) as u64).sum()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_index_order_and_checked() {
        let text = r#"{"object":"list","model":"m","usage":{"prompt_tokens":3,"total_tokens":3},
            "data":[{"index":1,"embedding":[3,4]},{"index":0,"embedding":[1.5,2]}]}"#;
        let e = parse(text, 2).unwrap();
        assert_eq!((e.len(), e.dimension(), e.model()), (2, 2, "m"));
        assert_eq!(e.vector(0), Some(&[1.5, 2.0][..]));
        assert_eq!(e.vector(1), Some(&[3.0, 4.0][..]));
        assert_eq!(e.vector(2), None);
        assert_eq!(e.prompt_tokens(), Some(3));
        for (bad, count) in [
            (r#"{"data":[{"embedding":[1]}]}"#, 2),
            (r#"{"data":[{"embedding":[1]},{"embedding":[1,2]}]}"#, 2),
            (r#"{"data":[{"embedding":[]}]}"#, 1),
            (
                r#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}"#,
                2,
            ),
            (r#"{"data":[{"embedding":"AAAA"}]}"#, 1),
            ("not json", 1),
        ] {
            let err = parse(bad, count).unwrap_err();
            assert!(matches!(err, Error::InvalidResponse(_)), "{bad}: {err}");
        }
        let err = parse(r#"{"error":{"message":"no embeddings here"}}"#, 1).unwrap_err();
        assert!(err.to_string().contains("no embeddings here"), "{err}");
    }

    #[test]
    fn canned_vectors_depend_on_the_text_alone() {
        let e = canned("m", &["a", "b", "a"]);
        assert_eq!((e.len(), e.dimension()), (3, MOCK_EMBEDDING_DIMENSION));
        assert_eq!(e.vector(0), e.vector(2));
        assert_ne!(e.vector(0), e.vector(1));
        let norm: f32 = e.vector(1).unwrap().iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(canned("other", &["a"]).vector(0), e.vector(0));
    }
}
