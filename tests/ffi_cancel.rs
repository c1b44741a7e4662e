//! The C API's cancel tokens, `modelapi_stream_cancel` from another thread,
//! the stream metadata getters, and the offline error mocks, called as C
//! would call them.

mod common;

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::server::{chunked, head, Reply, Step, TestServer};
use common::{content_event, event, stream_events};
use modelapi::ffi::*;
use ModelApiStatus::*;

fn c(text: &str) -> CString {
    CString::new(text).unwrap()
}

fn last_error() -> String {
    unsafe { CStr::from_ptr(modelapi_last_error()) }
        .to_str()
        .unwrap()
        .to_string()
}

fn text(ptr: *const c_char) -> Option<String> {
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_string())
}

const MESSAGES: &str = r#"[{"role":"user","content":"hi"}]"#;

/// Streams one chunk, then stalls; every later request answers at once.
fn stalling_server() -> TestServer {
    TestServer::start(|request| {
        let first_content = request.body_json()["messages"][0]["content"].clone();
        if first_content == "stall" {
            return Reply::script(vec![
                Step::Write(head(
                    200,
                    &[
                        ("Content-Type", "text/event-stream".into()),
                        ("Transfer-Encoding", "chunked".into()),
                    ],
                )),
                Step::Write(chunked(content_event("first").as_bytes())),
                Step::Sleep(Duration::from_secs(10)),
            ]);
        }
        if first_content == "silent" {
            return Reply::script(vec![Step::Sleep(Duration::from_secs(10))]);
        }
        let mut events = stream_events(&["a", "b"]);
        events.insert(
            2,
            event(
                serde_json::json!({"id": "chatcmpl-77", "model": "served-model", "choices": [],
                "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}),
            ),
        );
        Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
            .with_header("x-request-id", "req-c-1")
    })
}

struct Api(*mut ModelApiHandle);
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

/// Taken while the environment holds canned replies, and while a client
/// (which reads the environment) is created.
static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn api(url: &str) -> Api {
    let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
    new_api(url)
}

fn new_api(url: &str) -> Api {
    let api = unsafe { modelapi_new(c("m").as_ptr(), c(url).as_ptr(), ptr::null()) };
    assert!(!api.is_null(), "{}", last_error());
    Api(api)
}

struct Ptr<T>(*mut T);
unsafe impl<T> Send for Ptr<T> {}

/// A cancel token shared by threads, as the C API allows.
struct Token(*mut ModelApiCancel);
unsafe impl Send for Token {}
unsafe impl Sync for Token {}

#[test]
fn stream_cancel_wakes_a_blocked_stream_next() {
    let server = stalling_server();
    let api = api(&server.url());
    let body = c(r#"[{"role":"user","content":"stall"}]"#);
    unsafe {
        let mut stream = ptr::null_mut();
        assert_eq!(
            modelapi_stream_open_json(api.0, body.as_ptr(), ptr::null(), &mut stream),
            MODELAPI_OK
        );
        let (mut chunk, mut len) = (ptr::null(), 0usize);
        assert_eq!(
            modelapi_stream_next(stream, &mut chunk, &mut len),
            MODELAPI_OK
        );
        assert_eq!(text(chunk).as_deref(), Some("first"));

        let handle = Ptr(stream);
        let (tx, rx) = mpsc::channel();
        let canceller = thread::spawn(move || {
            let handle = handle;
            thread::sleep(Duration::from_millis(200));
            let at = Instant::now();
            assert_eq!(modelapi_stream_cancel(handle.0), MODELAPI_OK);
            tx.send(at).unwrap();
        });
        let status = modelapi_stream_next(stream, &mut chunk, &mut len);
        let returned = Instant::now();
        canceller.join().unwrap();
        assert_eq!(status, MODELAPI_ABORTED, "{}", last_error());
        assert!(chunk.is_null() && len == 0);
        let took = returned.saturating_duration_since(rx.recv().unwrap());
        assert!(
            took < Duration::from_millis(500),
            "returned {took:?} after the cancel"
        );
        assert_eq!(
            modelapi_stream_next(stream, &mut chunk, &mut len),
            MODELAPI_DONE
        );
        modelapi_stream_free(stream);
        assert_eq!(
            modelapi_stream_cancel(ptr::null_mut()),
            MODELAPI_INVALID_ARGUMENT
        );
        modelapi_close(api.0);
    }
}

#[test]
fn a_cancel_token_stops_complete_and_stream_calls() {
    let server = stalling_server();
    let api = api(&server.url());
    let silent = c(r#"[{"role":"user","content":"silent"}]"#);
    unsafe {
        let cancel = modelapi_cancel_new();
        assert!(!cancel.is_null());
        let token = Ptr(cancel);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let token = token;
            thread::sleep(Duration::from_millis(200));
            let at = Instant::now();
            modelapi_cancel(token.0);
            tx.send(at).unwrap();
        });
        let mut content: *mut c_char = ptr::dangling_mut();
        let status = modelapi_complete_with(
            api.0,
            silent.as_ptr(),
            ptr::null(),
            cancel,
            ptr::null_mut(),
            &mut content,
        );
        let returned = Instant::now();
        assert_eq!(status, MODELAPI_ABORTED, "{}", last_error());
        assert!(content.is_null());
        assert!(
            returned.saturating_duration_since(rx.recv().unwrap()) < Duration::from_millis(500)
        );

        // Still cancelled: at once; after a reset, the same token works.
        let messages = c(MESSAGES);
        extern "C" fn count(user: *mut c_void, _: *const c_char, _: usize) -> i32 {
            unsafe { *(user as *mut usize) += 1 };
            0
        }
        let mut chunks = 0usize;
        let user = &mut chunks as *mut usize as *mut c_void;
        assert_eq!(
            modelapi_stream_with(
                api.0,
                messages.as_ptr(),
                ptr::null(),
                cancel,
                Some(count),
                user
            ),
            MODELAPI_ABORTED
        );
        assert_eq!(modelapi_cancel_reset(cancel), MODELAPI_OK);
        assert_eq!(
            modelapi_stream_with(
                api.0,
                messages.as_ptr(),
                ptr::null(),
                cancel,
                Some(count),
                user
            ),
            MODELAPI_OK
        );
        assert_eq!(chunks, 2);
        let mut stream = ptr::null_mut();
        assert_eq!(
            modelapi_stream_open_with(
                api.0,
                messages.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut stream
            ),
            MODELAPI_OK
        );
        modelapi_stream_free(stream);
        assert_eq!(modelapi_cancel(ptr::null_mut()), MODELAPI_INVALID_ARGUMENT);
        modelapi_cancel_free(cancel);
        modelapi_cancel_free(ptr::null_mut());
        modelapi_close(api.0);
    }
}

#[test]
fn stream_metadata_getters() {
    let server = stalling_server();
    let api = api(&server.url());
    let messages = c(MESSAGES);
    unsafe {
        let mut stream = ptr::null_mut();
        assert_eq!(
            modelapi_stream_open_json(api.0, messages.as_ptr(), ptr::null(), &mut stream),
            MODELAPI_OK
        );
        assert_eq!(
            text(modelapi_stream_request_id(stream)).as_deref(),
            Some("req-c-1")
        );
        assert_eq!(
            text(modelapi_stream_finish_reason(stream)),
            None,
            "not before the end"
        );
        let (mut chunk, mut len) = (ptr::null(), 0usize);
        let mut all = String::new();
        while modelapi_stream_next(stream, &mut chunk, &mut len) == MODELAPI_OK {
            all.push_str(text(chunk).as_deref().unwrap());
        }
        assert_eq!(all, "ab");
        let finish = modelapi_stream_finish_reason(stream);
        assert_eq!(text(finish).as_deref(), Some("stop"));
        assert_eq!(
            modelapi_stream_finish_reason(stream),
            finish,
            "the same text on every call"
        );
        assert_eq!(
            text(modelapi_stream_id(stream)).as_deref(),
            Some("chatcmpl-1")
        );
        assert_eq!(
            text(modelapi_stream_model(stream)).as_deref(),
            Some("test-model")
        );
        let (mut p, mut c_, mut t) = (9u64, 9u64, 9u64);
        assert_eq!(modelapi_stream_usage(stream, &mut p, &mut c_, &mut t), 1);
        assert_eq!((p, c_, t), (5, 2, 7));
        assert_eq!(
            modelapi_stream_usage(stream, ptr::null_mut(), ptr::null_mut(), &mut t),
            1
        );
        modelapi_stream_free(stream);
        assert_eq!(
            modelapi_stream_usage(ptr::null_mut(), &mut p, &mut c_, &mut t),
            0
        );
        assert_eq!((p, c_, t), (0, 0, 0));
        assert!(modelapi_stream_id(ptr::null_mut()).is_null());
        modelapi_close(api.0);
    }
}

#[test]
fn offline_error_mocks() {
    let env = r#"["litellm.RateLimitError", "litellm.InternalServerError", "Exception: mock_streaming_error", "fine"]"#;
    let api = {
        let _env = ENV.lock().unwrap_or_else(|p| p.into_inner());
        std::env::set_var("DEBUG_MOCK_RESPONSES", env);
        let api = new_api("http://127.0.0.1:9");
        std::env::remove_var("DEBUG_MOCK_RESPONSES");
        api
    };
    let messages = c(MESSAGES);
    unsafe {
        let mut content = ptr::null_mut();
        assert_eq!(
            modelapi_complete_json(
                api.0,
                messages.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut content
            ),
            MODELAPI_HTTP_ERROR
        );
        assert_eq!(modelapi_last_http_status(), 429);
        assert!(
            last_error().contains("litellm.RateLimitError"),
            "{}",
            last_error()
        );
        let mut stream = ptr::null_mut();
        assert_eq!(
            modelapi_stream_open_json(api.0, messages.as_ptr(), ptr::null(), &mut stream),
            MODELAPI_HTTP_ERROR
        );
        assert_eq!(modelapi_last_http_status(), 500);
        assert_eq!(
            modelapi_stream_open_json(api.0, messages.as_ptr(), ptr::null(), &mut stream),
            MODELAPI_OK
        );
        let (mut chunk, mut len) = (ptr::null(), 0usize);
        let mut before = String::new();
        let status = loop {
            match modelapi_stream_next(stream, &mut chunk, &mut len) {
                MODELAPI_OK => before.push_str(text(chunk).as_deref().unwrap()),
                other => break other,
            }
        };
        assert_eq!(status, MODELAPI_SERVER_ERROR);
        assert_eq!(before, modelapi::MOCK_TEXT_BEFORE_ERROR);
        assert!(last_error().contains("mock_streaming_error"));
        modelapi_stream_free(stream);
        assert_eq!(
            modelapi_complete_json(
                api.0,
                messages.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                &mut content
            ),
            MODELAPI_OK
        );
        assert_eq!(text(content).as_deref(), Some("fine"));
        modelapi_string_free(content);
        modelapi_close(api.0);
    }
}

/// The client's timeout in the shared-token test: far longer than the 2 s
/// within which every call must return after the cancel.
const LONG_TIMEOUT_MS: u64 = 20_000;

/// Polls a stream started with `modelapi_stream_start` as a host loop
/// does (waiting on `modelapi_stream_fd` with poll(2), up to
/// `modelapi_stream_wake_ms`), telling `first` after the first event;
/// returns the status that ended it.
unsafe fn host_loop(stream: *mut ModelApiStream, first: mpsc::Sender<()>) -> ModelApiStatus {
    let started = Instant::now();
    let mut told = false;
    loop {
        assert!(
            started.elapsed() < Duration::from_millis(2 * LONG_TIMEOUT_MS),
            "the polled stream never ended"
        );
        let mut event = std::mem::MaybeUninit::<ModelApiEvent>::zeroed();
        match modelapi_stream_poll(stream, 0, event.as_mut_ptr()) {
            MODELAPI_PENDING => {}
            MODELAPI_OK => {
                if !told {
                    told = true;
                    first.send(()).unwrap();
                }
                continue;
            }
            other => return other,
        }
        let mut wants_write = 0;
        let fd = modelapi_stream_fd(stream, &mut wants_write);
        let wake_ms = modelapi_stream_wake_ms(stream).clamp(0, i32::MAX.into()) as i32;
        if fd < 0 {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let mut pollfd = libc::pollfd {
            fd,
            events: if wants_write != 0 {
                libc::POLLIN | libc::POLLOUT
            } else {
                libc::POLLIN
            },
            revents: 0,
        };
        libc::poll(&mut pollfd, 1, wake_ms);
    }
}

#[test]
fn one_cancel_token_stops_every_call_that_shares_it() {
    let server = stalling_server();
    let api = api(&server.url());
    let silent = c(r#"[{"role":"user","content":"silent"}]"#);
    let stall = c(r#"[{"role":"user","content":"stall"}]"#);
    unsafe {
        assert_eq!(modelapi_set_timeout_ms(api.0, LONG_TIMEOUT_MS), MODELAPI_OK);
        let cancel = modelapi_cancel_new();
        assert!(!cancel.is_null());
        let token = Token(cancel);
        let (cancel_at, returns) = thread::scope(|scope| {
            let (api, token) = (&api, &token);
            let (silent, stall) = (&silent, &stall);
            let mut calls = Vec::new();
            // Three complete calls waiting for an answer that never comes.
            for i in 0..3 {
                calls.push(scope.spawn(move || {
                    let mut content: *mut c_char = ptr::null_mut();
                    let status = modelapi_complete_with(
                        api.0,
                        silent.as_ptr(),
                        ptr::null(),
                        token.0,
                        ptr::null_mut(),
                        &mut content,
                    );
                    assert!(content.is_null());
                    (format!("complete {i}"), Instant::now(), status)
                }));
            }
            // A pull stream blocked in modelapi_stream_next, mid-body.
            let (first_tx, first_rx) = mpsc::channel();
            calls.push(scope.spawn(move || {
                let mut stream = ptr::null_mut();
                assert_eq!(
                    modelapi_stream_open_with(
                        api.0,
                        stall.as_ptr(),
                        ptr::null(),
                        token.0,
                        &mut stream
                    ),
                    MODELAPI_OK
                );
                let (mut chunk, mut len) = (ptr::null(), 0usize);
                assert_eq!(
                    modelapi_stream_next(stream, &mut chunk, &mut len),
                    MODELAPI_OK
                );
                first_tx.send(()).unwrap();
                let status = modelapi_stream_next(stream, &mut chunk, &mut len);
                let at = Instant::now();
                modelapi_stream_free(stream);
                ("pull stream".to_string(), at, status)
            }));
            // A polled stream mid-body, its host waiting on its socket.
            let (polled_tx, polled_rx) = mpsc::channel();
            calls.push(scope.spawn(move || {
                let mut stream = ptr::null_mut();
                assert_eq!(
                    modelapi_stream_start(api.0, stall.as_ptr(), ptr::null(), token.0, &mut stream),
                    MODELAPI_OK
                );
                let status = host_loop(stream, polled_tx);
                let at = Instant::now();
                modelapi_stream_free(stream);
                ("polled stream".to_string(), at, status)
            }));
            let got = server.wait_requests(5, Duration::from_secs(10)).len();
            assert_eq!(got, 5, "every call reached the server");
            first_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            polled_rx.recv_timeout(Duration::from_secs(10)).unwrap();
            let cancel_at = Instant::now();
            assert_eq!(modelapi_cancel(token.0), MODELAPI_OK);
            let returns: Vec<_> = calls.into_iter().map(|c| c.join().unwrap()).collect();
            (cancel_at, returns)
        });
        let took: Vec<_> = returns
            .iter()
            .map(|(what, at, status)| (what, at.saturating_duration_since(cancel_at), *status))
            .collect();
        eprintln!("returned after the cancel: {took:?}");
        for (what, took, status) in took {
            assert_eq!(status, MODELAPI_ABORTED, "{what}");
            assert!(
                took < Duration::from_secs(2),
                "{what} returned {took:?} after the cancel (timeout {LONG_TIMEOUT_MS} ms)"
            );
        }
        assert_eq!(server.requests().len(), 5, "no call was retried");
        modelapi_cancel_free(cancel);
        modelapi_close(api.0);
    }
}
