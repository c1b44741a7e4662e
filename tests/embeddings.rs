//! Embeddings (`ModelApi::embed`, `POST /v1/embeddings`) and the model list
//! (`ModelApi::models`, `GET /v1/models`) against the local test server:
//! the requests sent, the answers read, and the client's settings (key,
//! headers, retries, redirects, timeout, cap, trace, canned replies).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server::{Reply, Step, TestServer};
use modelapi::{Error, ModelApi, MOCK_EMBEDDING_DIMENSION};
use serde_json::{json, Value};

/// An embeddings answer as a server writes it: the vector of input `i`
/// is `[i, len(text), 0.5]`, listed in reverse order (the index counts).
fn embeddings_server() -> TestServer {
    TestServer::start(|req| {
        if req.path != "/v1/embeddings" {
            return Reply::json(404, r#"{"error":{"message":"no such path"}}"#);
        }
        let body = req.body_json();
        let inputs: Vec<String> = serde_json::from_value(body["input"].clone()).unwrap();
        let mut data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(
                |(i, t)| json!({"object": "embedding", "index": i, "embedding": [i, t.len(), 0.5]}),
            )
            .collect();
        data.reverse();
        Reply::json(
            200,
            &json!({"object": "list", "model": body["model"], "data": data,
                     "usage": {"prompt_tokens": 7, "total_tokens": 7}})
            .to_string(),
        )
    })
}

#[test]
fn embed_posts_the_inputs_and_reads_the_vectors_in_order() {
    let server = embeddings_server();
    let api = common::builder(&server.url())
        .api_key("sk-embed-secret-1")
        .header("X-Game", "npc")
        .build()
        .unwrap();
    let e = api.embed(&["hello", "a longer text", "hello"]).unwrap();
    assert_eq!((e.len(), e.dimension()), (3, 3));
    assert_eq!(e.vector(0), Some(&[0.0, 5.0, 0.5][..]));
    assert_eq!(e.vector(1), Some(&[1.0, 13.0, 0.5][..]));
    assert_eq!(e.iter().count(), 3);
    assert_eq!(e.as_flat().len(), 9);
    assert_eq!(e.model(), "test-model");
    assert_eq!(e.prompt_tokens(), Some(7));

    let one = api.embed_with_model(Some("embedder"), &["x"]).unwrap();
    assert_eq!((one.len(), one.model()), (1, "embedder"));

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/v1/embeddings")
    );
    assert_eq!(
        first.header("authorization"),
        Some("Bearer sk-embed-secret-1")
    );
    assert_eq!(first.header("x-game"), Some("npc"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.body_json(),
        json!({"model": "test-model", "input": ["hello", "a longer text", "hello"],
               "encoding_format": "float"})
    );
    assert_eq!(requests[1].body_json()["model"], "embedder");
    // An api_base ending in /v1 gets /embeddings.
    let v1 = common::client(&format!("{}/v1/", server.url()));
    assert_eq!(v1.embed(&["z"]).unwrap().len(), 1);
    assert!(matches!(
        api.embed::<&str>(&[]),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn models_gets_the_list() {
    let server = TestServer::start(|req| {
        if req.method == "GET" && req.path == "/v1/models" {
            Reply::json(
                200,
                r#"{"object":"list","data":[{"id":"smol","object":"model","owned_by":"me"},
                    {"id":"big","object":"model"}]}"#,
            )
        } else {
            Reply::json(404, r#"{"error":{"message":"no such path"}}"#)
        }
    });
    let api = common::builder(&server.url())
        .api_key("sk-models-secret-1")
        .build()
        .unwrap();
    let list = api.models().unwrap();
    assert_eq!(list.ids().collect::<Vec<_>>(), ["smol", "big"]);
    assert!(list.contains("big"));
    assert_eq!(list.models()[0].owned_by.as_deref(), Some("me"));
    assert!(list.raw_json().contains("\"smol\""));
    let requests = server.requests();
    let get = &requests[0];
    assert_eq!(
        (get.method.as_str(), get.path.as_str()),
        ("GET", "/v1/models")
    );
    assert!(get.body.is_empty());
    assert_eq!(get.header("content-length"), None);
    assert_eq!(get.header("content-type"), None);
    assert_eq!(
        get.header("authorization"),
        Some("Bearer sk-models-secret-1")
    );
    // Kept alive: the next call goes on the same connection.
    api.models().unwrap();
    assert_eq!(server.accepted(), 1);
}

#[test]
fn http_errors_are_reported_without_the_key_and_5xx_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let server = TestServer::start(move |req| {
        if counted.fetch_add(1, Ordering::SeqCst) == 0 {
            return Reply::json(503, r#"{"error":{"message":"warming up"}}"#);
        }
        if req.path == "/v1/models" {
            return Reply::json(401, r#"{"error":{"message":"bad key sk-err-secret-1"}}"#);
        }
        Reply::json(200, r#"{"data":[{"index":0,"embedding":[1,2]}]}"#)
    });
    let api = common::builder(&server.url())
        .api_key("sk-err-secret-1")
        .build()
        .unwrap();
    // The 503 is retried.
    assert_eq!(api.embed(&["a"]).unwrap().dimension(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let err = api.models().unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert!(!err.to_string().contains("sk-err-secret-1"), "{err}");
    assert!(!format!("{err:?}").contains("sk-err-secret-1"), "{err:?}");
}

#[test]
fn answers_of_the_wrong_shape_are_invalid_responses() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/v1/embeddings" => Reply::json(200, r#"{"data":[{"index":0,"embedding":[1]}]}"#),
        _ => Reply::json(200, r#"{"models":"none"}"#),
    });
    let api = common::client(&server.url());
    // Two inputs, one vector.
    let err = api.embed(&["a", "b"]).unwrap_err();
    assert!(matches!(err, Error::InvalidResponse(_)), "{err}");
    let err = api.models().unwrap_err();
    assert!(matches!(err, Error::InvalidResponse(_)), "{err}");
}

#[test]
fn the_timeout_and_the_cap_apply() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/v1/models" => Reply::script(vec![Step::Sleep(Duration::from_secs(5))]),
        _ => Reply::json(
            200,
            &format!(r#"{{"data":[{{"embedding":[{}1]}}]}}"#, "1,".repeat(5000)),
        ),
    });
    let api = common::builder(&server.url())
        .timeout(Duration::from_millis(300))
        .max_retries(0)
        .max_response_bytes(4096)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = api.models().unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(err.to_string().contains("GET "), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = api.embed(&["a"]).unwrap_err();
    assert!(err.to_string().contains("cap"), "{err}");
}

#[test]
fn canned_replies_answer_embeddings_with_deterministic_vectors() {
    let server = embeddings_server();
    let api = ModelApi::builder("canned-model", server.url())
        .mock_responses(vec!["anything".into(), "litellm.RateLimitError".into()])
        .build()
        .unwrap();
    let e = api.embed(&["same", "other", "same"]).unwrap();
    assert_eq!((e.len(), e.dimension()), (3, MOCK_EMBEDDING_DIMENSION));
    assert_eq!(e.vector(0), e.vector(2));
    assert_ne!(e.vector(0), e.vector(1));
    assert_eq!(e.model(), "canned-model");
    let err = api.embed(&["x"]).unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(api.mock_responses_left(), 0);
    // Used up: the server answers.
    assert_eq!(api.embed(&["x"]).unwrap().dimension(), 3);
    assert_eq!(server.requests().len(), 1);
    // Another client's canned vectors for the same text are the same.
    let again = ModelApi::builder("m", server.url())
        .mock_responses(vec!["x".into()])
        .build()
        .unwrap();
    assert_eq!(again.embed(&["same"]).unwrap().vector(0), e.vector(0));
}

#[test]
fn the_trace_tells_the_calls_and_a_closed_client_refuses_them() {
    let server = embeddings_server();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&lines);
    let api = common::builder(&server.url())
        .trace(move |_, line| sink.lock().unwrap().push(line.to_string()))
        .build()
        .unwrap();
    api.embed(&["a"]).unwrap();
    let _ = api.models();
    let lines = lines.lock().unwrap().join("\n");
    assert!(
        lines.contains("POST http://") && lines.contains("/v1/embeddings"),
        "{lines}"
    );
    assert!(
        lines.contains("GET http://") && lines.contains("/v1/models"),
        "{lines}"
    );
    api.close();
    assert!(matches!(api.embed(&["a"]), Err(Error::Closed)));
    assert!(matches!(api.models(), Err(Error::Closed)));
}

#[test]
fn a_307_redirect_is_followed_and_a_forward_proxy_gets_the_whole_url() {
    // The first server moved: /v1/... answers 307 to the second.
    let target = embeddings_server();
    let target_url = target.url();
    let moved = TestServer::start(move |req| {
        Reply::json(307, "").with_header("location", &format!("{target_url}{}", req.path))
    });
    let api = common::client(&moved.url());
    assert_eq!(api.embed(&["a"]).unwrap().len(), 1);
    assert_eq!(target.requests()[0].path, "/v1/embeddings");

    let listing = TestServer::start(|_| Reply::json(200, r#"{"data":[{"id":"m"}]}"#));
    let proxy = common::proxy::TestProxy::start(None);
    let api = common::builder(&listing.url())
        .proxy(proxy.url())
        .build()
        .unwrap();
    assert!(api.models().unwrap().contains("m"));
    let heads = proxy.heads();
    assert!(
        heads[0].starts_with(&format!("GET {}/v1/models HTTP/1.1\r\n", listing.url())),
        "{heads:?}"
    );
}
