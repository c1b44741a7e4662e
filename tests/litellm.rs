//! Against a real LiteLLM proxy (1.108.7) on loopback: what we claim about
//! the wire, checked against a server nobody here wrote.
//!
//! The proxy is installed into a cached virtualenv and started by these
//! tests (tests/litellm/start.sh), once per run, and stopped by PID when
//! the test process exits. They run when `MODELAPI_LITELLM=1` (CI sets it,
//! and then a proxy that cannot start fails the tests) or when the proxy is
//! already installed; otherwise each test says it was not run, and how to
//! run it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use common::cbuild::{assert_ok, run, text, How, VARIANTS};
use common::relay::Relay;
use common::service;
use common::user;
use modelapi::{Error, ModelApi};
use serde_json::json;

const MASTER_KEY: &str = "sk-modelapi-test-master";
const CONFIG_MOCK: &str = "Hello from the LiteLLM config mock";
const UNICODE: &str = "héllo wörld ✓ — ünïcødé 🦀, \"quoted\"\nand a second line.";

struct Proxy {
    addr: SocketAddr,
}

impl Proxy {
    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn client(&self, model: &str) -> ModelApi {
        ModelApi::builder(model, self.url())
            .api_key(MASTER_KEY)
            .mock_responses(vec![])
            .build()
            .unwrap()
    }
}

/// The running proxy, or `None` (with a message) when these tests are not
/// to run here.
fn proxy() -> Option<&'static Proxy> {
    static PROXY: OnceLock<Option<Proxy>> = OnceLock::new();
    PROXY
        .get_or_init(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let wanted = std::env::var("MODELAPI_LITELLM").unwrap_or_default();
            let venv = std::env::var("MODELAPI_LITELLM_VENV").unwrap_or_else(|_| {
                format!(
                    "{}/.cache/modelapi/litellm-1.108.7",
                    std::env::var("HOME").unwrap_or_default()
                )
            });
            let installed = Path::new(&venv).join(".modelapi-install-ok").exists();
            if wanted == "0" || (wanted.is_empty() && !installed) {
                service::not_run(&format!(
                    "NOTE: the LiteLLM tests were NOT run: set MODELAPI_LITELLM=1 to run them \
                     (it installs litellm[proxy]==1.108.7 into {venv}, about 45 s and 750 MB, \
                     once); `bash tests/run-all.sh` does"
                ));
                return None;
            }
            // The first run installs the proxy (about 45 s) before starting it.
            let script = root.join("tests/litellm/start.sh");
            let proxy = service::start(
                "litellm",
                &script,
                "/health/liveliness",
                Duration::from_secs(300),
            );
            Some(Proxy { addr: proxy.addr })
        })
        .as_ref()
}

#[test]
fn complete_with_a_mock_response_in_the_body() {
    let Some(proxy) = proxy() else { return };
    let answer = proxy
        .client("test-model")
        .complete(&user("hi"), Some(UNICODE))
        .unwrap();
    assert_eq!(answer.content(), Some(UNICODE));
    assert_eq!(answer.object, "chat.completion");
    assert_eq!(answer.model, "test-model");
    assert_eq!(answer.finish_reason(), Some("stop"));
    let usage = answer.usage.as_ref().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (10, 20, 30)
    );
    let raw: serde_json::Value = serde_json::from_str(answer.raw_json()).unwrap();
    assert_eq!(raw["choices"][0]["message"]["content"], UNICODE);
}

#[test]
fn stream_with_a_mock_response_in_the_body() {
    let Some(proxy) = proxy() else { return };
    let mut stream = proxy
        .client("test-model")
        .stream(&user("hi"), Some(UNICODE))
        .unwrap();
    let mut pieces = Vec::new();
    while let Some(chunk) = stream.next_chunk() {
        pieces.push(chunk.unwrap().to_string());
    }
    assert_eq!(
        pieces.concat(),
        UNICODE,
        "the pieces concatenate to exactly the text"
    );
    assert!(pieces.len() > 5, "{pieces:?}");
    assert!(stream.is_finished());
    assert_eq!(stream.metadata().finish_reason.as_deref(), Some("stop"));
    assert_eq!(stream.metadata().model.as_deref(), Some("test-model"));
}

#[test]
fn a_config_side_mock_model() {
    let Some(proxy) = proxy() else { return };
    let api = proxy.client("mock-model");
    assert_eq!(
        api.complete(&user("hi"), None).unwrap().content(),
        Some(CONFIG_MOCK)
    );
    let text: String = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(text, CONFIG_MOCK);
}

#[test]
fn include_usage_gives_usage_on_the_stream() {
    let Some(proxy) = proxy() else { return };
    let request = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": true},
        "mock_response": "counted"
    });
    let serde_json::Value::Object(request) = request else {
        unreachable!()
    };
    let mut stream = proxy
        .client("test-model")
        .stream_request(request, None)
        .unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next_chunk() {
        text.push_str(chunk.unwrap());
    }
    assert_eq!(text, "counted");
    let usage = stream
        .metadata()
        .usage
        .clone()
        .expect("usage was asked for");
    assert!(usage.total_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
}

/// A stream request the proxy answers with a whole message from its mock
/// (see tests/litellm/NOTES.md, "Tool calls and reasoning in streams"):
/// the message arrives whole in one chunk, the finish_reason in the next,
/// then usage in a chunk whose choices hold an empty delta.
fn message_stream(proxy: &Proxy, model: &str) -> modelapi::ChatStream {
    let request = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": true},
        "_compression_interception_converted_stream": true
    });
    let serde_json::Value::Object(request) = request else {
        unreachable!()
    };
    proxy.client(model).stream_request(request, None).unwrap()
}

#[test]
fn tool_calls_streamed_by_the_proxy() {
    let Some(proxy) = proxy() else { return };
    let mut stream = message_stream(proxy, "mock-tools-model");
    let mut events = Vec::new();
    while let Some(event) = stream.next_event() {
        events.push(format!("{:?}", event.unwrap()));
    }
    assert_eq!(
        events,
        [
            r#"ToolCall { index: 0, id: Some("call_mock_weather_1"), name: Some("get_weather"), arguments: "{\"city\":\"Paris\",\"unit\":\"celsius\"}" }"#,
            r#"ToolCall { index: 1, id: Some("call_mock_time_2"), name: Some("get_time"), arguments: "{\"tz\":\"Europe/Paris\"}" }"#,
        ]
    );
    assert!(stream.is_finished());
    let answer = stream.completion();
    assert_eq!(answer.finish_reason(), Some("tool_calls"));
    assert_eq!(answer.content(), None);
    assert_eq!(answer.id, "chatcmpl-mock-tools");
    assert_eq!(answer.model, "mock-tools-model");
    let usage = answer.usage.as_ref().expect("include_usage");
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (10, 20, 30)
    );
    // The assembled answer is what the proxy's own non-streamed answer says.
    let whole = proxy
        .client("mock-tools-model")
        .complete(&user("hi"), None)
        .unwrap();
    assert_eq!(
        answer.choices[0].message.extra["tool_calls"],
        whole.choices[0].message.extra["tool_calls"]
    );
}

#[test]
fn reasoning_streamed_by_the_proxy() {
    let Some(proxy) = proxy() else { return };
    let mut stream = message_stream(proxy, "mock-reasoning-model");
    let mut events = Vec::new();
    while let Some(event) = stream.next_event() {
        events.push(format!("{:?}", event.unwrap()));
    }
    // One delta holds both: the reasoning comes first.
    assert_eq!(
        events,
        [
            r#"Reasoning("The user asks for 2+2. 2+2 = 4.")"#,
            r#"Content("The answer is 4.")"#,
        ]
    );
    let answer = stream.completion();
    assert_eq!(answer.content(), Some("The answer is 4."));
    assert_eq!(
        answer.choices[0].message.extra["reasoning_content"],
        "The user asks for 2+2. 2+2 = 4."
    );
    assert_eq!(answer.finish_reason(), Some("stop"));
    let usage = answer.usage.as_ref().expect("include_usage");
    assert_eq!(
        usage.extra["completion_tokens_details"]["reasoning_tokens"],
        17
    );
    // The text-only read of the same stream skips the reasoning.
    let text = message_stream(proxy, "mock-reasoning-model")
        .into_text()
        .unwrap();
    assert_eq!(text, "The answer is 4.");
}

#[test]
fn bearer_auth() {
    let Some(proxy) = proxy() else { return };
    for key in [Some("sk-wrong-key-12345"), None] {
        let mut builder = ModelApi::builder("mock-model", proxy.url()).mock_responses(vec![]);
        if let Some(key) = key {
            builder = builder.api_key(key);
        }
        let err = builder
            .build()
            .unwrap()
            .complete(&user("hi"), None)
            .unwrap_err();
        match &err {
            Error::Http {
                status: 401,
                message,
                error_type,
                ..
            } => {
                assert!(message.contains("API key"), "{message}");
                assert_eq!(error_type.as_deref(), Some("auth_error"));
            }
            other => panic!("expected 401, got {other:?}"),
        }
        assert!(!format!("{err} {err:?}").contains("sk-wrong-key-12345"));
    }
}

#[test]
fn rate_limit_and_server_errors_after_the_retries() {
    let Some(proxy) = proxy() else { return };
    let relay = Relay::start(proxy.addr);
    for (model, status, error_type) in [
        ("ratelimit-model", 429, "throttling_error"),
        ("error-model", 500, "internal_server_error"),
    ] {
        let before = relay.posts();
        let api = ModelApi::builder(model, relay.url())
            .api_key(MASTER_KEY)
            .max_retries(2)
            .retry_backoff(Duration::from_millis(20))
            .mock_responses(vec![])
            .build()
            .unwrap();
        let err = api.complete(&user("hi"), None).unwrap_err();
        match &err {
            Error::Http {
                status: s,
                code,
                error_type: t,
                message,
                ..
            } => {
                assert_eq!(*s, status, "{model}");
                assert_eq!(
                    code.as_deref(),
                    Some(status.to_string().as_str()),
                    "{model}"
                );
                assert_eq!(t.as_deref(), Some(error_type), "{model}");
                assert!(!message.is_empty());
            }
            other => panic!("{model}: expected HTTP {status}, got {other:?}"),
        }
        assert_eq!(
            relay.posts() - before,
            3,
            "{model}: one attempt and two retries"
        );
        let err = api.stream(&user("hi"), None).unwrap_err();
        assert_eq!(err.status(), Some(status), "{model} stream");
    }
}

#[test]
fn sequential_calls_reuse_one_connection() {
    let Some(proxy) = proxy() else { return };
    let relay = Relay::start(proxy.addr);
    let api = ModelApi::builder("test-model", relay.url())
        .api_key(MASTER_KEY)
        .mock_responses(vec![])
        .build()
        .unwrap();
    for i in 0..20 {
        let text = format!("answer {i}");
        if i % 2 == 0 {
            assert_eq!(
                api.complete(&user("hi"), Some(&text)).unwrap().content(),
                Some(&*text)
            );
        } else {
            let got: String = api
                .stream(&user("hi"), Some(&text))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, text);
        }
    }
    assert_eq!(relay.posts(), 20);
    assert_eq!(
        relay.accepted(),
        1,
        "20 sequential calls on one kept-alive connection"
    );
}

#[test]
fn c_examples_against_the_proxy() {
    let Some(proxy) = proxy() else { return };
    let url = proxy.url();
    for variant in VARIANTS {
        for program in ["complete", "stream", "stream_pull"] {
            let env = [
                ("MODEL_API_URL", url.as_str()),
                ("MODEL_NAME", "mock-model"),
                ("MODEL_API_KEY", MASTER_KEY),
            ];
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_ok(&out, &format!("{variant}/{program}"));
            assert_eq!(
                text(&out.stdout),
                format!("{CONFIG_MOCK}\n"),
                "{variant}/{program}"
            );

            let env = [
                ("MODEL_API_URL", url.as_str()),
                ("MODEL_NAME", "mock-model"),
                ("MODEL_API_KEY", "sk-wrong-c-key"),
            ];
            let out = run(variant, program, &[], &env, "", How::Plain);
            assert_eq!(out.status.code(), Some(1));
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains("http status: 401") && stderr.contains("API key"),
                "{stderr}"
            );
            assert!(!stderr.contains("sk-wrong-c-key"), "{stderr}");
        }
    }
}

#[test]
fn the_model_list_of_the_proxy() {
    let Some(proxy) = proxy() else { return };
    let list = proxy.client("test-model").models().unwrap();
    let mut ids: Vec<&str> = list.ids().collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "error-model",
            "mock-model",
            "mock-reasoning-model",
            "mock-tools-model",
            "ratelimit-model",
            "test-model",
        ],
        "{}",
        list.raw_json()
    );
    // The key is checked there as for chat.
    let wrong = ModelApi::builder("test-model", proxy.url())
        .api_key("sk-wrong-models-key-1")
        .mock_responses(vec![])
        .build()
        .unwrap();
    let err = wrong.models().unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!format!("{err} {err:?}").contains("sk-wrong-models-key-1"));
}
