//! The library never starts a thread: `complete` and `stream` run entirely
//! on the caller's thread, DNS lookup included.
//!
//! Two witnesses: the entries of /proc/self/task, sampled while calls are in
//! flight, and a count of every `pthread_create` in this process (this
//! binary defines the symbol, so every thread creation passes through it).
//! This file holds a single test, so no other test's threads interfere.

mod common;

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::server::{Reply, TestServer};
use common::{completion_body, stream_events, user};

static THREADS_CREATED: AtomicUsize = AtomicUsize::new(0);

type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    *mut libc::c_void,
) -> libc::c_int;

/// Counts, then forwards to the C library's `pthread_create`.
///
/// # Safety
/// Called by the C library's thread machinery with its own arguments.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: extern "C" fn(*mut libc::c_void) -> *mut libc::c_void,
    arg: *mut libc::c_void,
) -> libc::c_int {
    THREADS_CREATED.fetch_add(1, Ordering::SeqCst);
    let real = libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr());
    assert!(
        !real.is_null(),
        "the C library's pthread_create is not found"
    );
    let real: PthreadCreate = std::mem::transmute(real);
    real(thread, attr, start, arg)
}

fn tasks() -> BTreeSet<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn complete_and_stream_start_no_thread() {
    let server = TestServer::start(|request| {
        if request.body_json()["stream"] == true {
            let events = stream_events(&["one ", "two ", "three"]);
            Reply::sse(&events.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            Reply::json(200, &completion_body("ok"))
        }
    });
    // "localhost", so that a name is resolved, with a timeout set: the
    // setting under which ureq's default resolver would start a thread.
    let url = server.url().replace("127.0.0.1", "localhost");
    let api = modelapi::ModelApi::builder("m", url)
        .mock_responses(vec![])
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();

    let before = tasks();
    let created_before = THREADS_CREATED.load(Ordering::SeqCst);
    for _ in 0..3 {
        assert_eq!(
            api.complete(&user("hi"), None).unwrap().content(),
            Some("ok")
        );
        let mut during = Vec::new();
        api.stream_with(&user("hi"), None, |_| {
            during.push(tasks());
            ControlFlow::Continue(())
        })
        .unwrap();
        for seen in during {
            assert_eq!(seen, before, "a thread appeared during a stream");
        }
        let text: String = api
            .stream(&user("hi"), None)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(text, "one two three");
    }
    api.close();
    assert_eq!(tasks(), before);
    assert_eq!(
        THREADS_CREATED.load(Ordering::SeqCst),
        created_before,
        "pthread_create was called"
    );
    // The witness works: a thread made here is counted.
    std::thread::spawn(|| {}).join().unwrap();
    assert_eq!(THREADS_CREATED.load(Ordering::SeqCst), created_before + 1);
}
