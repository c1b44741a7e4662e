//! `ChatRequest`: a request built piece by piece, and the single-message
//! conveniences (`Message::tool_result`, `Message::user_with_image`,
//! `ChatCompletion::assistant_message`), as the server receives them.

mod common;

use common::completion_body;
use common::server::{Reply, TestServer};
use modelapi::{ChatRequest, Error, Message, ModelApi};
use serde_json::json;

#[test]
fn a_built_request_is_sent_as_built() {
    let server = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let api = common::client(&server.url());
    let mut request = ChatRequest::new();
    request
        .message("system", "Quote \"this\"\n\tand \\ that \u{1}")
        .message("user", "Look: 東京 🍣")
        .image_bytes(&[0x89, b'P', b'N', b'G'], "image/png")
        .unwrap()
        .image_url("https://example.test/a.jpg")
        .unwrap()
        .tool_result("call_1", "{\"temp\": 21}")
        .set("temperature", json!(0.5))
        .unwrap()
        .set("max_tokens", json!(12))
        .unwrap()
        .set_json("response_format", r#"{"type": "json_object"}"#)
        .unwrap();
    api.complete_request(request.body(), None).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&request.to_json()).unwrap(),
        serde_json::Value::Object(request.body())
    );
    let sent = server.requests()[0].body_json();
    assert_eq!(
        sent,
        json!({
            "model": "test-model",
            "stream": false,
            "temperature": 0.5,
            "max_tokens": 12,
            "response_format": {"type": "json_object"},
            "messages": [
                {"role": "system", "content": "Quote \"this\"\n\tand \\ that \u{1}"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Look: 東京 🍣"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw=="}},
                    {"type": "image_url", "image_url": {"url": "https://example.test/a.jpg"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
            ],
        })
    );
}

#[test]
fn bad_pieces_are_invalid_arguments_that_name_them() {
    let mut request = ChatRequest::new();
    let err = request.image_url("https://x.test/a.png").unwrap_err();
    assert!(err.to_string().contains("user message"), "{err}");
    request.message("assistant", "hi");
    assert!(matches!(
        request.image_url("https://x.test/a.png"),
        Err(Error::InvalidArgument(_))
    ));
    request.message("user", "see");
    let err = request.image_bytes(b"x", "png").unwrap_err();
    assert!(err.to_string().contains("mime_type"), "{err}");
    let err = request.set_json("tools", "[{").unwrap_err();
    assert!(err.to_string().contains("tools"), "{err}");
    for name in ["messages", "stream", ""] {
        assert!(matches!(
            request.set(name, json!(1)),
            Err(Error::InvalidArgument(_))
        ));
    }
    assert!(request.push(json!({"content": "no role"})).is_err());
    let err = request.assistant_turn_json("{}", false).unwrap_err();
    assert!(err.to_string().contains("completion_json"), "{err}");
    assert_eq!(request.messages().len(), 2);
}

#[test]
fn the_assistant_turn_of_a_completion_and_of_a_stream() {
    let reply = json!({
        "content": null,
        "reasoning_content": "think first",
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}],
    });
    let api = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_replies(vec![reply.clone(), reply])
        .build()
        .unwrap();
    let answer = api.complete(&[Message::user("weather?")], None).unwrap();
    let expected = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}],
    });
    assert_eq!(answer.assistant_message(false).unwrap(), expected);
    let mut with_reasoning = expected.clone();
    with_reasoning["reasoning_content"] = json!("think first");
    assert_eq!(answer.assistant_message(true).unwrap(), with_reasoning);

    let mut stream = api.stream(&[Message::user("weather?")], None).unwrap();
    while stream.next_event().is_some() {}
    let mut request = ChatRequest::new();
    request.message("user", "weather?");
    request.assistant_turn(&stream.completion(), false).unwrap();
    request.tool_result("call_9", "sunny");
    assert_eq!(request.messages()[1], expected);
    assert_eq!(
        Message::tool_result("call_9", "sunny"),
        request.messages()[2].clone()
    );
    // Through JSON, as C hands it in.
    let mut again = ChatRequest::new();
    again.assistant_turn_json(answer.raw_json(), true).unwrap();
    assert_eq!(again.messages()[0], with_reasoning);
    // A plain text answer.
    let text = ModelApi::builder("m", "http://127.0.0.1:9")
        .mock_responses(vec!["hello".into()])
        .build()
        .unwrap()
        .complete(&[Message::user("hi")], None)
        .unwrap();
    assert_eq!(
        text.assistant_message(true).unwrap(),
        json!({"role": "assistant", "content": "hello"})
    );
}

#[test]
fn single_messages_with_an_image() {
    assert_eq!(
        Message::user_with_image("what is it?", b"GIF89a", "image/gif").unwrap(),
        json!({"role": "user", "content": [
            {"type": "text", "text": "what is it?"},
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lGODlh"}},
        ]})
    );
    assert_eq!(
        Message::user_with_image_url("", "https://x.test/i.png"),
        json!({"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
        ]})
    );
    assert!(Message::user_with_image("x", b"1", "image").is_err());
}
