//! Canned replies: DEBUG_MOCK_RESPONSES and builder().mock_responses().
//!
//! The environment is shared by the whole process, so the tests that set it
//! take `ENV` first.

mod common;

use std::collections::HashSet;
use std::sync::Mutex;

use common::server::{Reply, TestServer};
use common::{completion_body, user};
use modelapi::{Error, ModelApi};

static ENV: Mutex<()> = Mutex::new(());

/// Runs `f` with DEBUG_MOCK_RESPONSES set to `value` (or unset).
fn with_env<T>(value: Option<&str>, f: impl FnOnce() -> T) -> T {
    let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    match value {
        Some(v) => std::env::set_var("DEBUG_MOCK_RESPONSES", v),
        None => std::env::remove_var("DEBUG_MOCK_RESPONSES"),
    }
    let result = f();
    std::env::remove_var("DEBUG_MOCK_RESPONSES");
    result
}

fn counting_server() -> TestServer {
    TestServer::start(|_| Reply::json(200, &completion_body("from the server")))
}

#[test]
fn env_replies_are_consumed_in_order_without_network() {
    let server = counting_server();
    let text = "```tool_call\n{\"tool\": \"echo\", \"arguments\": {}}\n```";
    let env = serde_json::to_string(&["Hello from mock", text, "  spaced  out \n"]).unwrap();
    let api = with_env(Some(&env), || {
        ModelApi::new("my-model", server.url(), None).unwrap()
    });

    let answer = api.complete(&user("hi"), None).unwrap();
    assert_eq!(answer.content(), Some("Hello from mock"));
    assert_eq!(answer.object, "chat.completion");
    assert_eq!(answer.model, "my-model");
    assert!(answer.id.starts_with("chatcmpl-"));
    assert!(answer.created > 1_600_000_000);
    assert_eq!(answer.choices[0].message.role, "assistant");
    assert_eq!(answer.finish_reason(), Some("stop"));
    let usage = answer.usage.as_ref().unwrap();
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    let raw: serde_json::Value = serde_json::from_str(answer.raw_json()).unwrap();
    assert_eq!(raw["choices"][0]["message"]["content"], "Hello from mock");

    let chunks: Vec<String> = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(chunks.len() > 1, "a canned stream comes in several chunks");
    assert_eq!(chunks.concat(), text);

    let mut stream = api.stream(&user("hi"), None).unwrap();
    let mut spaced = String::new();
    while let Some(chunk) = stream.next_chunk() {
        spaced.push_str(chunk.unwrap());
    }
    assert_eq!(spaced, "  spaced  out \n");
    assert_eq!(stream.metadata().finish_reason.as_deref(), Some("stop"));
    assert_eq!(server.requests().len(), 0, "canned replies make no request");

    // Used up: calls go to the server.
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("from the server")
    );
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn env_string_plain_text_and_empty() {
    let server = counting_server();
    let reply = |value: Option<&str>| {
        let api = with_env(value, || ModelApi::new("m", server.url(), None).unwrap());
        api.complete(&user("hi"), None)
            .unwrap()
            .content()
            .unwrap()
            .to_string()
    };
    assert_eq!(reply(Some("\"a JSON string\"")), "a JSON string");
    assert_eq!(reply(Some("not JSON at all")), "not JSON at all");
    assert_eq!(server.requests().len(), 0);
    assert_eq!(reply(Some("")), "from the server");
    assert_eq!(reply(None), "from the server");
    assert_eq!(reply(Some("[]")), "from the server");
}

#[test]
fn malformed_env_value_fails_creation_naming_the_variable() {
    for bad in [
        "[\"unclosed",
        "[1, 2]",
        "{\"reply\": \"x\"}",
        "42",
        "true",
        "null",
    ] {
        let err = with_env(Some(bad), || {
            ModelApi::new("m", "http://localhost:8000", None)
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidArgument(m) if m.contains("DEBUG_MOCK_RESPONSES")),
            "{bad}: {err}"
        );
        let err = with_env(Some(bad), || {
            ModelApi::builder("m", "http://localhost:8000").build()
        })
        .unwrap_err();
        assert!(err.to_string().contains("DEBUG_MOCK_RESPONSES"));
    }
}

#[test]
fn builder_replies_replace_the_env() {
    let api = with_env(Some("[\"from env\"]"), || {
        ModelApi::builder("m", "http://127.0.0.1:9")
            .mock_responses(vec!["from builder".into()])
            .build()
            .unwrap()
    });
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some("from builder")
    );
    assert_eq!(api.mock_responses_left(), 0);
}

#[test]
fn from_env_reads_url_model_and_key_only() {
    let _guard = ENV.lock().unwrap_or_else(|p| p.into_inner());
    for var in [
        "MODEL_API_URL",
        "MODEL_NAME",
        "MODEL_API_KEY",
        "OPENAI_API_KEY",
    ] {
        std::env::remove_var(var);
    }
    let err = ModelApi::from_env().unwrap_err();
    assert!(err.to_string().contains("MODEL_API_URL"), "{err}");
    std::env::set_var("MODEL_API_URL", "http://localhost:8000");
    let err = ModelApi::from_env().unwrap_err();
    assert!(err.to_string().contains("MODEL_NAME"), "{err}");
    std::env::set_var("MODEL_NAME", "smollm2:135m");
    std::env::set_var("OPENAI_API_KEY", "sk-openai-must-not-be-used");
    let api = ModelApi::from_env().unwrap();
    assert_eq!(api.model(), "smollm2:135m");
    assert_eq!(api.endpoint(), "http://localhost:8000/v1/chat/completions");
    assert!(
        !format!("{api:?}").contains("api_key: Some"),
        "no key was given: {api:?}"
    );
    std::env::set_var("MODEL_API_KEY", "sk-model-api-key");
    let api = ModelApi::from_env().unwrap();
    let debug = format!("{api:?}");
    assert!(
        debug.contains("api_key: Some(\"<redacted>\")") && !debug.contains("sk-model"),
        "{debug}"
    );
    for var in [
        "MODEL_API_URL",
        "MODEL_NAME",
        "MODEL_API_KEY",
        "OPENAI_API_KEY",
    ] {
        std::env::remove_var(var);
    }
}

#[test]
fn replies_are_shared_by_threads_and_each_used_once() {
    let replies: Vec<String> = (0..200).map(|i| format!("reply number {i}")).collect();
    let api = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_responses(replies.clone())
        .build()
        .unwrap();
    let seen = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (api, seen) = (&api, &seen);
            scope.spawn(move || {
                for i in 0..50 {
                    let text = if (t + i) % 2 == 0 {
                        api.complete(&user("hi"), None)
                            .unwrap()
                            .content()
                            .unwrap()
                            .to_string()
                    } else {
                        api.stream(&user("hi"), None)
                            .unwrap()
                            .collect::<Result<String, _>>()
                            .unwrap()
                    };
                    seen.lock().unwrap().push(text);
                }
            });
        }
    });
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen.len(), 200);
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique, replies.iter().collect::<HashSet<_>>());
}

#[test]
fn every_error_sentinel_is_an_error_offline() {
    let sentinels: Vec<String> = modelapi::error_sentinels().map(str::to_string).collect();
    assert!(sentinels.len() >= 3, "{sentinels:?}");
    // Each sentinel twice: once for complete, once for stream.
    let replies: Vec<String> = sentinels
        .iter()
        .flat_map(|s| [s.clone(), s.clone()])
        .collect();
    let api = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_responses(replies)
        .build()
        .unwrap();
    for sentinel in &sentinels {
        let err = api.complete(&user("hi"), None).unwrap_err();
        let (chunks, stream_err) = match api.stream(&user("hi"), None) {
            Err(err) => (Vec::new(), err),
            Ok(stream) => match stream.into_text() {
                Ok(text) => panic!("{sentinel}: the stream ended well with {text:?}"),
                Err(partial) => (vec![partial.text], partial.error),
            },
        };
        match sentinel.as_str() {
            "Exception: mock_streaming_error" => {
                assert!(matches!(err, Error::Server { .. }), "{err:?}");
                assert!(matches!(stream_err, Error::Server { .. }), "{stream_err:?}");
                assert_eq!(
                    chunks,
                    [modelapi::MOCK_TEXT_BEFORE_ERROR],
                    "text before the error"
                );
            }
            name => {
                let status = err.status().unwrap_or_else(|| panic!("{name}: {err:?}"));
                assert!(matches!(status, 400..=599), "{name}: {status}");
                assert_eq!(stream_err.status(), Some(status), "{name}");
                assert!(err.to_string().contains(name), "{name}: {err}");
                assert!(chunks.is_empty());
            }
        }
    }
    assert_eq!(api.mock_responses_left(), 0);
    let statuses: Vec<u16> = ["litellm.RateLimitError", "litellm.InternalServerError"]
        .iter()
        .map(|name| {
            let api = ModelApi::builder("m", "http://127.0.0.1:9")
                .mock_responses(vec![name.to_string()])
                .build()
                .unwrap();
            api.complete(&user("hi"), None)
                .unwrap_err()
                .status()
                .unwrap()
        })
        .collect();
    assert_eq!(statuses, [429, 500]);
}

/// `modelapi_set_mock_responses` (and `ModelApi::set_mock_responses`):
/// canned replies set on the client, in place of the variable; NULL leaves
/// none even when the variable has some; a malformed value is refused and
/// changes nothing.
#[test]
fn the_c_setter_replaces_the_canned_replies_and_null_leaves_none() {
    use modelapi::ffi::*;
    use std::ffi::{CStr, CString};
    let server = counting_server();
    let url = CString::new(server.url()).unwrap();
    let model = CString::new("m").unwrap();
    let replies =
        CString::new(r#"["Hi from the setter", {"tool_calls": [{"function": {"name": "f", "arguments": {"x": 1}}}]}]"#)
            .unwrap();
    let bad = CString::new(r#"[{"colour": "blue"}]"#).unwrap();
    let messages = CString::new(r#"[{"role":"user","content":"hi"}]"#).unwrap();
    let complete = |api: *mut ModelApiHandle| -> (String, String) {
        let (mut json, mut content) = (std::ptr::null_mut(), std::ptr::null_mut());
        // SAFETY: a live client and strings; the out strings freed once.
        unsafe {
            let status = modelapi_complete_json(
                api,
                messages.as_ptr(),
                std::ptr::null(),
                &mut json,
                &mut content,
            );
            assert_eq!(
                status,
                ModelApiStatus::MODELAPI_OK,
                "{}",
                CStr::from_ptr(modelapi_last_error()).to_string_lossy()
            );
            let out = (
                CStr::from_ptr(json).to_string_lossy().into_owned(),
                CStr::from_ptr(content).to_string_lossy().into_owned(),
            );
            modelapi_string_free(json);
            modelapi_string_free(content);
            out
        }
    };
    with_env(Some(r#"["from the variable"]"#), || {
        // SAFETY: the C API used as documented; the client closed once.
        unsafe {
            assert_eq!(
                modelapi_set_mock_responses(std::ptr::null_mut(), replies.as_ptr()),
                ModelApiStatus::MODELAPI_INVALID_ARGUMENT
            );
            let api = modelapi_new(model.as_ptr(), url.as_ptr(), std::ptr::null());
            assert!(!api.is_null());
            assert_eq!(
                modelapi_set_mock_responses(api, replies.as_ptr()),
                ModelApiStatus::MODELAPI_OK
            );
            assert_eq!(
                modelapi_set_mock_responses(api, bad.as_ptr()),
                ModelApiStatus::MODELAPI_INVALID_ARGUMENT
            );
            let message = CStr::from_ptr(modelapi_last_error()).to_string_lossy();
            assert!(
                message.contains("the canned replies must be a JSON array"),
                "{message}"
            );
            // The refused value changed nothing: the setter's replies, in
            // order, then the server.
            assert_eq!(complete(api).1, "Hi from the setter");
            let (json, content) = complete(api);
            assert_eq!(content, "");
            assert!(json.contains(r#""arguments":"{\"x\":1}""#), "{json}");
            assert_eq!(complete(api).1, "from the server");
            assert_eq!(server.requests().len(), 1);
            // NULL: none, although the variable has one.
            let api2 = modelapi_new(model.as_ptr(), url.as_ptr(), std::ptr::null());
            assert_eq!(
                modelapi_set_mock_responses(api2, std::ptr::null()),
                ModelApiStatus::MODELAPI_OK
            );
            assert_eq!(complete(api2).1, "from the server");
            assert_eq!(server.requests().len(), 2);
            modelapi_close(api2);
            modelapi_close(api);
        }
    });
}
