//! The trace hook (`ModelApiBuilder::trace`, `modelapi_set_trace`) and the
//! `log` records: a retried, redirected stream is told step by step, in
//! order; no line ever holds the API key, a credential header or message
//! content, whatever the server answers; the hook runs on the calling
//! thread, on several at once for a shared client.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use common::server::{head, Reply, Step, TestServer};
use common::{completion_body, stream_events, user};
use modelapi::{Message, TraceLevel};

type Lines = Arc<Mutex<Vec<(TraceLevel, String, ThreadId)>>>;

/// A builder whose trace goes into the returned list.
fn traced(url: &str) -> (modelapi::ModelApiBuilder, Lines) {
    let lines: Lines = Arc::default();
    let seen = Arc::clone(&lines);
    let builder = common::builder(url).trace(move |level, line| {
        seen.lock()
            .unwrap()
            .push((level, line.to_string(), std::thread::current().id()))
    });
    (builder, lines)
}

fn texts(lines: &Lines) -> Vec<String> {
    lines.lock().unwrap().iter().map(|l| l.1.clone()).collect()
}

/// Asserts that lines matching each of `steps` come in this order.
fn in_order(lines: &[String], steps: &[&[&str]]) {
    let mut at = 0;
    for step in steps {
        let found = lines[at..]
            .iter()
            .position(|l| step.iter().all(|part| l.contains(part)));
        match found {
            Some(i) => at += i + 1,
            None => panic!(
                "no line with {step:?} after line {at} in:\n{}",
                lines.join("\n")
            ),
        }
    }
}

#[test]
fn a_retried_redirected_stream_is_told_in_order() {
    let calls = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&calls);
    let server = TestServer::start(move |request| {
        match (count.fetch_add(1, Ordering::SeqCst), request.path.as_str()) {
            (0, _) => Reply::json(
                503,
                r#"{"error": {"message": "busy", "type": "overloaded"}}"#,
            )
            .with_header("retry-after-ms", "20"),
            (_, "/v1/chat/completions") => Reply::raw(head(
                307,
                &[
                    ("Location", "/moved/v1/chat/completions".into()),
                    ("Content-Length", "0".into()),
                ],
            ))
            .keep_alive(true),
            _ => {
                let mut events = stream_events(&["Hel", "lo"]);
                events.push("[DONE]".into());
                Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
                    .with_header("x-request-id", "req-trace-1")
            }
        }
    });
    let (builder, lines) = traced(&server.url());
    let api = builder.api_key("sk-trace-key-0001").build().unwrap();
    let text = api.stream(&user("hi"), None).unwrap().into_text().unwrap();
    assert_eq!(text, "Hello");
    let url = server.url();
    let all = texts(&lines);
    if std::env::var_os("SHOW_TRACE").is_some() {
        for (level, line, _) in lines.lock().unwrap().iter() {
            eprintln!("{level:5} {line}");
        }
    }
    in_order(
        &all,
        &[
            &[
                &format!("POST {url}/v1/chat/completions"),
                "bytes of JSON",
                "new connection",
            ],
            &["HTTP 503", "application/json"],
            &[
                "retry 1 of 2",
                "HTTP 503 from the server",
                "type overloaded",
                "asked for",
            ],
            &[&format!("POST {url}/v1/chat/completions")],
            &["HTTP 307"],
            &["following the 307 redirect", "/moved/v1/chat/completions"],
            &[&format!("POST {url}/moved/v1/chat/completions")],
            &[
                "HTTP 200",
                "text/event-stream",
                "x-request-id req-trace-1",
                "after",
            ],
            &["first event after"],
            &["stream finished", "chunks", "bytes", "finish_reason stop"],
        ],
    );
    let levels: Vec<TraceLevel> = lines.lock().unwrap().iter().map(|l| l.0).collect();
    assert!(levels.contains(&TraceLevel::Warn), "the retry is a warning");
    assert!(levels.contains(&TraceLevel::Info), "the redirect is told");
    assert!(!all.iter().any(|l| l.contains("sk-trace-key-0001")));
}

#[test]
fn a_reused_connection_and_an_error_are_told() {
    let server = TestServer::start(|request| {
        if request.body_json()["messages"][0]["content"] == "fail" {
            Reply::json(
                400,
                r#"{"error": {"message": "no", "code": "bad_request"}}"#,
            )
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    });
    let (builder, lines) = traced(&server.url());
    let api = builder.build().unwrap();
    api.complete(&user("hi"), None).unwrap();
    api.complete(&user("hi"), None).unwrap();
    assert!(api.complete(&user("fail"), None).is_err());
    let all = texts(&lines);
    in_order(
        &all,
        &[
            &["new connection"],
            &["HTTP 200"],
            &["answer of", "bytes complete"],
            &["a pooled connection"],
            &["HTTP 400"],
            &[
                "failed: HTTP 400 from the server",
                "code bad_request",
                "bytes of message",
            ],
        ],
    );
    let errors: Vec<_> = lines
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.0 == TraceLevel::Error)
        .map(|l| l.1.clone())
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
}

/// A small deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

#[test]
fn no_trace_line_holds_the_key_or_the_content_whatever_the_server_answers() {
    const KEY: &str = "sk-fuzzed-key-7f3a9c";
    const HEADER_SECRET: &str = "azure-secret-value-55";
    const CONTENT: &str = "my private prompt about project nightingale";
    // The server echoes what it was sent in every way an error can carry.
    let echoes = Arc::new(Mutex::new(Rng(0x9e37_79b9_7f4a_7c15)));
    let rng = Arc::clone(&echoes);
    let server = TestServer::start(move |_| {
        let mut rng = rng.lock().unwrap();
        let echo = rng.pick(&[KEY, HEADER_SECRET, CONTENT, "Bearer sk-fuzzed-key-7f3a9c"]);
        let status = rng.pick(&["400", "401", "404", "422", "500", "503", "200"]);
        let body = match rng.next() % 6 {
            0 => format!(
                r#"{{"error": {{"message": "bad: {echo}", "type": "{echo}", "code": "{echo}"}}}}"#
            ),
            1 => format!("plain text error echoing {echo}"),
            2 => format!(r#"{{"detail": "{echo}"}}"#),
            3 => format!(r#"{{"error": "{echo}"}}"#),
            4 => format!(r#"{{"message": {{"nested": "{echo}"}}}}"#),
            _ => String::new(),
        };
        match (status, rng.next() % 4) {
            ("200", 0) => Reply::sse(&[
                &common::content_event("partial"),
                &format!(r#"{{"error": {{"message": "mid-stream {echo}"}}}}"#),
            ]),
            ("200", 1) => Reply::script(vec![
                Step::Write(head(200, &[("Content-Type", "text/event-stream".into())])),
                Step::Write(format!("data: {{\"not json {echo}\n\n").into_bytes()),
                Step::Close,
            ]),
            ("200", 2) => Reply::json(200, &format!(r#"{{"choices": "{echo}"}}"#)),
            ("200", _) => Reply::full(
                200,
                "text/event-stream",
                format!("event: error\ndata: {echo}\n\n").as_bytes(),
            ),
            (status, _) => Reply::json(status.parse().unwrap(), &body).with_header(
                "x-request-id",
                if echo == CONTENT { "req-1" } else { "req-2" },
            ),
        }
    });
    let (builder, lines) = traced(&server.url());
    let api = builder
        .api_key(KEY)
        .header("api-key", HEADER_SECRET)
        .max_retries(1)
        .build()
        .unwrap();
    let messages = [Message::user(CONTENT)];
    for round in 0..60 {
        if round % 2 == 0 {
            let _ = api.complete(&messages, None);
        } else if let Ok(stream) = api.stream(&messages, None) {
            let _ = stream.into_text();
        }
    }
    let all = texts(&lines);
    assert!(all.len() > 100, "{} lines", all.len());
    assert!(all.iter().any(|l| l.contains("failed")));
    for line in &all {
        for secret in [KEY, HEADER_SECRET, CONTENT, "nightingale", "fuzzed-key"] {
            assert!(!line.contains(secret), "{secret:?} in the trace: {line}");
        }
    }
}

#[test]
fn the_hook_runs_on_each_calling_thread_of_a_shared_client() {
    let server = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let (builder, lines) = traced(&server.url());
    let api = Arc::new(builder.build().unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let api = Arc::clone(&api);
            std::thread::spawn(move || {
                for _ in 0..5 {
                    api.complete(&user("hi"), None).unwrap();
                }
                std::thread::current().id()
            })
        })
        .collect();
    let ids: Vec<ThreadId> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let lines = lines.lock().unwrap();
    for id in ids {
        let own: Vec<_> = lines.iter().filter(|l| l.2 == id).collect();
        assert_eq!(
            own.iter().filter(|l| l.1.starts_with("HTTP 200")).count(),
            5,
            "each call's lines come on its own thread"
        );
    }
}

/// A `log` logger keeping the records of target "modelapi".
struct Recorder(Mutex<Vec<(log::Level, String)>>);

impl log::Log for Recorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target() == modelapi::LOG_TARGET
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0
                .lock()
                .unwrap()
                .push((record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder(Mutex::new(Vec::new()));

#[test]
fn the_same_lines_go_to_the_log_facade() {
    log::set_logger(&RECORDER).unwrap();
    log::set_max_level(log::LevelFilter::Debug);
    let server = TestServer::start(|_| {
        let mut events = stream_events(&["lo", "gged"]);
        events.push("[DONE]".into());
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
    });
    // No hook: the records alone.
    let api = common::client(&server.url());
    assert_eq!(
        api.stream(&user("hi"), None).unwrap().into_text().unwrap(),
        "logged"
    );
    let records = RECORDER.0.lock().unwrap();
    let lines: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
    in_order(
        &lines,
        &[
            &["POST"],
            &["HTTP 200"],
            &["first event"],
            &["stream finished"],
        ],
    );
    assert!(records.iter().all(|r| r.0 == log::Level::Debug));
}

extern "C" fn collect(
    user_data: *mut c_void,
    level: modelapi::ffi::ModelApiTraceLevel,
    line: *const c_char,
) {
    let lines = unsafe { &*(user_data as *const Mutex<Vec<(i32, String)>>) };
    let text = unsafe { CStr::from_ptr(line) }
        .to_string_lossy()
        .into_owned();
    lines.lock().unwrap().push((level as i32, text));
}

#[test]
fn c_hosts_set_the_hook_with_modelapi_set_trace() {
    use modelapi::ffi::*;
    let server = TestServer::start(|_| Reply::json(500, r#"{"error": {"message": "down"}}"#));
    let lines: Box<Mutex<Vec<(i32, String)>>> = Box::default();
    let model = CString::new("m").unwrap();
    let url = CString::new(server.url()).unwrap();
    let json = CString::new(r#"{"messages": [{"role": "user", "content": "hi"}]}"#).unwrap();
    unsafe {
        let api = modelapi_new(model.as_ptr(), url.as_ptr(), std::ptr::null());
        assert_eq!(
            modelapi_set_max_retries(api, 1),
            ModelApiStatus::MODELAPI_OK
        );
        let user_data = &*lines as *const _ as *mut c_void;
        assert_eq!(
            modelapi_set_trace(api, Some(collect), user_data),
            ModelApiStatus::MODELAPI_OK
        );
        let mut out = std::ptr::null_mut();
        let status = modelapi_complete_json(
            api,
            json.as_ptr(),
            std::ptr::null(),
            &mut out,
            std::ptr::null_mut(),
        );
        assert_eq!(status, ModelApiStatus::MODELAPI_HTTP_ERROR);
        // Off again: nothing more is told.
        assert_eq!(
            modelapi_set_trace(api, None, std::ptr::null_mut()),
            ModelApiStatus::MODELAPI_OK
        );
        let told = lines.lock().unwrap().len();
        let _ = modelapi_complete_json(
            api,
            json.as_ptr(),
            std::ptr::null(),
            &mut out,
            std::ptr::null_mut(),
        );
        assert_eq!(lines.lock().unwrap().len(), told);
        assert_eq!(
            modelapi_set_trace(std::ptr::null_mut(), Some(collect), user_data),
            ModelApiStatus::MODELAPI_INVALID_ARGUMENT
        );
        modelapi_close(api);
    }
    let lines = lines.lock().unwrap();
    let levels: Vec<i32> = lines.iter().map(|l| l.0).collect();
    assert!(
        levels.contains(&(ModelApiTraceLevel::MODELAPI_TRACE_WARN as i32)),
        "{lines:?}"
    );
    assert!(
        levels.contains(&(ModelApiTraceLevel::MODELAPI_TRACE_ERROR as i32)),
        "{lines:?}"
    );
    assert!(
        levels.contains(&(ModelApiTraceLevel::MODELAPI_TRACE_DEBUG as i32)),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.1.contains("retry 1 of 1")),
        "{lines:?}"
    );
}

#[test]
fn tls_and_the_proxy_tunnel_are_told() {
    let server = TestServer::start(|_| Reply::json(200, &completion_body("ok")));
    let relay = common::tls::TlsRelay::start(server.addr());
    let proxy = common::proxy::TestProxy::start(None);
    let (builder, lines) = traced(&relay.url());
    let api = builder
        .ca_file(relay.write_ca_file(std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))))
        .proxy(proxy.url())
        .build()
        .unwrap();
    api.complete(&user("hi"), None).unwrap();
    let all = texts(&lines);
    in_order(
        &all,
        &[
            &[
                "POST https://localhost:",
                "new connection to",
                &format!("through proxy {}", proxy.url()),
                "CONNECT tunnel",
            ],
            &["HTTP 200", "TLSv1_", "certificate verified"],
        ],
    );
}
