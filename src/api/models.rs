//! The model list: `GET {api_base}/v1/models`, through the client's
//! transport (settings, retries, timeouts, caps, trace, errors).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use ureq_proto::http::Method;

use crate::api::client::ModelApi;
use crate::api::exchange::fetch;
use crate::error::truncate;
use crate::error::Error;

/// One model of a [`ModelList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name to ask for.
    pub id: String,
    /// Who owns it, when the server says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_by: Option<String>,
    /// Every other field (`object`, `created`, a server's own).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The models a server offers, as `GET /v1/models` lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelList {
    models: Vec<ModelInfo>,
    json: String,
}

impl ModelList {
    /// The models, in the server's order.
    pub fn models(&self) -> &[ModelInfo] {
        &self.models
    }

    /// Their ids, in the server's order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.models.iter().map(|m| m.id.as_str())
    }

    /// Whether the list holds a model of this id.
    pub fn contains(&self, id: &str) -> bool {
        self.ids().any(|m| m == id)
    }

    /// The server's answer, exactly as it arrived.
    pub fn raw_json(&self) -> &str {
        &self.json
    }

    /// Reads a `/v1/models` answer: an object with a `data` array of
    /// objects with an `id` each.
    pub(crate) fn from_body(json: String) -> Result<ModelList, Error> {
        #[derive(Deserialize)]
        struct Body {
            data: Vec<ModelInfo>,
        }
        let invalid = |why: String| {
            Error::InvalidResponse(format!("the model list {why}: {}", truncate(json.trim())))
        };
        let value: Value =
            serde_json::from_str(&json).map_err(|e| invalid(format!("is not JSON ({e})")))?;
        if value.get("error").is_some_and(|e| !e.is_null()) {
            return Err(Error::Server {
                message: crate::error::error_message(&value),
                body: json.clone(),
            });
        }
        let body: Body = serde_json::from_value(value)
            .map_err(|e| invalid(format!("is not {{\"data\": [{{\"id\": ...}}, ...]}} ({e})")))?;
        Ok(ModelList {
            models: body.data,
            json,
        })
    }
}

impl ModelApi {
    /// The models the server offers: `GET {api_base}/v1/models` (a health
    /// check, a model picker). The client's settings apply as to chat
    /// calls: credentials, headers, retries, redirects, timeout, the
    /// response cap, trace, errors. Canned replies do not answer it: it
    /// always asks the server.
    pub fn models(&self) -> Result<ModelList, Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let json = fetch(self, Method::GET, "models", Vec::new())?;
        ModelList::from_body(json).map_err(|e| self.route.tracer.secrets().redact(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read() {
        let list = ModelList::from_body(
            r#"{"object":"list","data":[{"id":"a","object":"model","owned_by":"me",
                "created":1},{"id":"b","meta":{"n":1}}],"models":[]}"#
                .into(),
        )
        .unwrap();
        assert_eq!(list.ids().collect::<Vec<_>>(), ["a", "b"]);
        assert!(list.contains("b") && !list.contains("c"));
        assert_eq!(list.models()[0].owned_by.as_deref(), Some("me"));
        assert_eq!(list.models()[1].extra["meta"]["n"], 1);
        assert!(list.raw_json().contains("\"models\":[]"));
        for bad in ["[]", "{}", r#"{"data":[{"name":"x"}]}"#, "nope"] {
            let err = ModelList::from_body(bad.into()).unwrap_err();
            assert!(matches!(err, Error::InvalidResponse(_)), "{bad}: {err}");
        }
    }
}
