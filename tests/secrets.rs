//! The API key never shows in Debug, Display or error texts, even when a
//! server echoes it back.

mod common;

use common::server::{Reply, TestServer};
use common::{content_event, user};
use modelapi::ModelApi;

const KEY: &str = "sk-very-secret-key-0123456789";

#[test]
fn debug_never_shows_the_key() {
    let builder = ModelApi::builder("m", "http://localhost:8000")
        .api_key(KEY)
        .header("api-key", "azure-secret-9876")
        .mock_responses(vec![]);
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains(KEY) && !debug.contains("azure-secret"),
        "{debug}"
    );
    let api = builder.build().unwrap();
    let debug = format!("{api:?} {api:#?}");
    assert!(
        !debug.contains(KEY) && !debug.contains("azure-secret"),
        "{debug}"
    );
    assert!(debug.contains("<redacted>"));
}

#[test]
fn errors_that_echo_the_key_are_scrubbed() {
    let server = TestServer::start(|request| {
        let auth = request.header("authorization").unwrap_or("").to_string();
        if request.body_json()["stream"] == true {
            let bad = format!("data: {{\"error\": {{\"message\": \"bad token {auth}\"}}}}\n\n");
            return Reply::sse(&[content_event("x").as_str(), bad.as_str()]);
        }
        let body = serde_json::json!({"error": {"message": format!("Incorrect API key: {auth}")}});
        Reply::json(401, &body.to_string())
    });
    let api = common::builder(&server.url()).api_key(KEY).build().unwrap();
    let err = api.complete(&user("hi"), None).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(KEY), "{text}");
    assert!(
        text.contains("Incorrect API key: Bearer [REDACTED]"),
        "{text}"
    );

    let (_, err) = common::collect(api.stream(&user("hi"), None).unwrap());
    let text = format!("{:?}", err.unwrap());
    assert!(!text.contains(KEY) && text.contains("[REDACTED]"), "{text}");
    assert_eq!(
        server.requests()[0].header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
}
