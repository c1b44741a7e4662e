//! What goes on the wire and what comes back, against mockito servers.

mod common;

use common::{builder, client, completion_body, user};
use mockito::Matcher;
use modelapi::{Error, Message, ModelApi};
use serde_json::json;

#[test]
fn complete_sends_the_contract_request() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_header("content-type", "application/json")
        .match_header("accept", "application/json")
        .match_header("authorization", "Bearer sk-test-key")
        .match_header(
            "user-agent",
            Matcher::Regex(r"^modelapi/\d+\.\d+\.\d+".into()),
        )
        .match_body(Matcher::Json(json!({
            "model": "test-model",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is 2+2?"}
            ],
            "stream": false
        })))
        .with_header("content-type", "application/json")
        .with_body(completion_body("4"))
        .expect(1)
        .create();
    let api = builder(&server.url())
        .api_key("sk-test-key")
        .build()
        .unwrap();
    let messages = [
        Message::system("You are terse."),
        Message::user("What is 2+2?"),
    ];
    let answer = api.complete(&messages, None).unwrap();
    assert_eq!(answer.content(), Some("4"));
    assert_eq!(answer.id, "chatcmpl-9");
    assert_eq!(answer.usage.as_ref().unwrap().total_tokens, 5);
    mock.assert();
}

#[test]
fn base_url_with_v1_and_trailing_slashes() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .with_header("content-type", "application/json")
        .with_body(completion_body("ok"))
        .expect(2)
        .create();
    for base in [
        format!("{}/v1/", server.url()),
        format!("{}//", server.url()),
    ] {
        let api = client(&base);
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
    }
    mock.assert();
}

#[test]
fn a_request_larger_than_the_buffers_goes_out_whole() {
    // 300 KiB: past the 16 KiB output buffer and the 64 KiB write batch.
    let long = "long context ".repeat(300 * 1024 / 13);
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_body(Matcher::PartialJson(json!({
            "messages": [{"role": "user", "content": long}]
        })))
        .with_header("content-type", "application/json")
        .with_body(completion_body("read it all"))
        .expect(2)
        .create();
    let api = client(&server.url());
    for _ in 0..2 {
        let answer = api.complete(&[Message::user(long.as_str())], None).unwrap();
        assert_eq!(answer.content(), Some("read it all"));
    }
    mock.assert();
}

#[test]
fn no_key_means_no_authorization_header() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_header("authorization", Matcher::Missing)
        .with_header("content-type", "application/json")
        .with_body(completion_body("ok"))
        .create();
    let api = ModelApi::builder("test-model", server.url())
        .api_key("")
        .mock_responses(vec![])
        .build()
        .unwrap();
    api.complete(&user("hi"), None).unwrap();
    mock.assert();
}

#[test]
fn mock_response_goes_in_the_body() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_body(Matcher::PartialJson(
            json!({"mock_response": "canned by the server"}),
        ))
        .with_header("content-type", "application/json")
        .with_body(completion_body("canned by the server"))
        .create();
    let api = client(&server.url());
    let answer = api
        .complete(&user("hi"), Some("canned by the server"))
        .unwrap();
    assert_eq!(answer.content(), Some("canned by the server"));
    mock.assert();
}

#[test]
fn value_messages_and_whole_requests_pass_through() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_body(Matcher::Json(json!({
            "model": "other-model",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"}],
            "temperature": 0.2,
            "max_tokens": 5,
            "stream": false
        })))
        .with_header("content-type", "application/json")
        .with_body(completion_body("ok"))
        .create();
    let api = client(&server.url());
    let request = json!({
        "model": "other-model",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}], "name": "ann"}],
        "temperature": 0.2,
        "max_tokens": 5,
        "stream": true
    });
    let serde_json::Value::Object(request) = request else {
        unreachable!()
    };
    api.complete_request(request, None).unwrap();
    mock.assert();

    // A plain Value works as a message as well.
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_body(Matcher::PartialJson(json!({
            "messages": [{"role": "user", "content": "hi", "name": "bob"}]
        })))
        .with_header("content-type", "application/json")
        .with_body(completion_body("ok"))
        .create();
    api.complete(
        &[json!({"role": "user", "content": "hi", "name": "bob"})],
        None,
    )
    .unwrap();
    mock.assert();
}

#[test]
fn custom_headers_are_sent() {
    let mut server = mockito::Server::new();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_header("openai-organization", "org-1")
        .with_header("content-type", "application/json")
        .with_body(completion_body("ok"))
        .create();
    let api = builder(&server.url())
        .header("OpenAI-Organization", "org-1")
        .build()
        .unwrap();
    api.complete(&user("hi"), None).unwrap();
    mock.assert();
}

#[test]
fn complete_keeps_unknown_fields_and_the_raw_body() {
    let mut server = mockito::Server::new();
    let body = r#"{"id":"x","object":"chat.completion","created":5,"model":"m","system_fingerprint":"fp_1","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
    server
        .mock("POST", "/v1/chat/completions")
        .with_header("content-type", "application/json")
        .with_body(body)
        .create();
    let answer = client(&server.url()).complete(&user("hi"), None).unwrap();
    assert_eq!(answer.raw_json(), body);
    assert_eq!(answer.content(), None);
    assert_eq!(answer.finish_reason(), Some("tool_calls"));
    assert_eq!(answer.extra["system_fingerprint"], "fp_1");
    assert_eq!(
        answer.choices[0].message.extra["tool_calls"][0]["function"]["name"],
        "f"
    );
}

#[test]
fn http_errors_carry_status_and_the_servers_message() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(401)
        .with_header("content-type", "application/json")
        .with_body(r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","code":"invalid_api_key"}}"#)
        .expect(1)
        .create();
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    match &err {
        Error::Http {
            status,
            message,
            error_type,
            code,
            ..
        } => {
            assert_eq!(*status, 401);
            assert_eq!(message, "Incorrect API key provided.");
            assert_eq!(error_type.as_deref(), Some("invalid_request_error"));
            assert_eq!(code.as_deref(), Some("invalid_api_key"));
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(err.status(), Some(401));
    assert!(err.to_string().contains("401") && err.to_string().contains("Incorrect API key"));
}

#[test]
fn http_error_without_json_keeps_the_raw_body() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(404)
        .with_header("content-type", "text/html")
        .with_body("<html>no such route</html>")
        .create();
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Http { status: 404, message, body, .. }
        if message == "<html>no such route</html>" && body == "<html>no such route</html>")
    );
}

#[test]
fn non_retryable_status_is_sent_once_and_5xx_is_retried() {
    let mut server = mockito::Server::new();
    let bad_request = server
        .mock("POST", "/v1/chat/completions")
        .with_status(400)
        .with_body(r#"{"error":{"message":"bad"}}"#)
        .expect(1)
        .create();
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert_eq!(err.status(), Some(400));
    bad_request.assert();
    bad_request.remove();

    let unavailable = server
        .mock("POST", "/v1/chat/completions")
        .with_status(503)
        .with_body(r#"{"error":{"message":"overloaded"}}"#)
        .expect(3)
        .create();
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(matches!(&err, Error::Http { status: 503, message, .. } if message == "overloaded"));
    unavailable.assert();
}

#[test]
fn success_status_with_garbage_is_an_invalid_response() {
    let mut server = mockito::Server::new();
    server
        .mock("POST", "/v1/chat/completions")
        .with_status(200)
        .with_header("content-type", "text/html")
        .with_body("<html>Service Unavailable</html>")
        .create();
    let err = client(&server.url())
        .complete(&user("hi"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidResponse(m) if m.contains("<html>")),
        "{err:?}"
    );
}

#[test]
fn stream_sends_stream_true_and_reads_events() {
    let mut server = mockito::Server::new();
    let body = common::stream_events(&["Hel", "lo", " wörld"]).concat();
    let mock = server
        .mock("POST", "/v1/chat/completions")
        .match_header("accept", "text/event-stream")
        .match_body(Matcher::PartialJson(
            json!({"stream": true, "model": "test-model"}),
        ))
        .with_header("content-type", "text/event-stream")
        .with_body(body)
        .create();
    let api = client(&server.url());
    let chunks: Vec<String> = api
        .stream(&user("hi"), None)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(chunks, ["Hel", "lo", " wörld"]);
    mock.assert();
}

#[test]
fn invalid_arguments_are_explained() {
    let err = ModelApi::new("m", "localhost:8000", None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("api_base")),
        "{err}"
    );
    let err = ModelApi::new("", "http://localhost:8000", None).unwrap_err();
    assert!(err.to_string().contains("model"), "{err}");
    let err = builder("http://localhost:1")
        .header("bad header", "x")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("bad header"), "{err}");
    let err = builder("http://localhost:1")
        .timeout(std::time::Duration::ZERO)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("timeout"), "{err}");
    let api = client("http://127.0.0.1:1");
    let err = api.complete(&["just a string"], None).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument(m) if m.contains("messages[0]")),
        "{err}"
    );
}

#[test]
fn clients_are_shared_and_streams_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<ModelApi>();
    send_sync::<modelapi::CancelToken>();
    send::<modelapi::ChatStream>();
    send_sync::<Error>();
}
