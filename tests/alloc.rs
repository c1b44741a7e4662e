//! No heap allocation per chunk in steady state, on the allocation-free
//! paths (`ChatStream::next_chunk` and `next_event`, which the callback
//! forms and the C API use); counted by a counting global allocator, on
//! this thread only. The one thing that grows is the assembled answer
//! (`ChatStream::completion`), whose buffer doubles: a few allocations per
//! stream, logarithmic in its length, never one per chunk.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::server::{Reply, TestServer};
use common::{stream_events, user};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|a| a.set(a.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations over chunks 1,000..N of a stream of `pieces`, read as
/// chunks or as events.
fn steady_state_allocations(piece: &str, events: bool) -> (u64, u64) {
    const CHUNKS: usize = 20_000;
    let pieces: Vec<String> = (0..CHUNKS).map(|_| piece.to_string()).collect();
    let sse = stream_events(&pieces.iter().map(String::as_str).collect::<Vec<_>>());
    let server =
        TestServer::start(move |_| Reply::sse(&sse.iter().map(String::as_str).collect::<Vec<_>>()));
    let api = common::client(&server.url());
    let mut stream = api.stream(&user("hi"), None).unwrap();
    let mut seen = 0;
    let (mut first, mut last) = (0, 0);
    loop {
        if events {
            match stream.next_event() {
                None => break,
                Some(event) => assert_eq!(event.unwrap(), modelapi::StreamEvent::Content(piece)),
            }
        } else {
            match stream.next_chunk() {
                None => break,
                Some(chunk) => assert_eq!(chunk.unwrap(), piece),
            }
        }
        seen += 1;
        // From chunk 1,000 to the last one: the stream's end (which
        // records the finish_reason) is not per chunk.
        match seen {
            1_000 => first = allocations(),
            CHUNKS => last = allocations(),
            _ => {}
        }
    }
    assert_eq!(seen, CHUNKS);
    (last - first, (CHUNKS - 1_000) as u64)
}

#[test]
fn no_allocation_per_chunk() {
    for events in [false, true] {
        for piece in ["token ", "é ✓ 🦀", "line\nbreak \"quoted\" \\ tab\t"] {
            let (allocs, chunks) = steady_state_allocations(piece, events);
            eprintln!("{piece:?} (events: {events}): {allocs} allocations over {chunks} chunks");
            // The answer's buffer doubles: from chunk 1,000 to 20,000 it
            // grows 20-fold, which is at most five doublings (and a
            // reallocation may take two calls of the allocator).
            assert!(
                allocs <= 10,
                "{piece:?}: {allocs} allocations over {chunks} chunks"
            );
        }
    }
}

/// A detached stream that is over (finished, failed) keeps nothing a host
/// goes on feeding: 64 MiB more cost no allocation.
#[test]
fn a_detached_stream_that_is_over_keeps_nothing_fed() {
    let api = common::client("http://127.0.0.1:9");
    for (what, body) in [
        (
            "finished",
            format!("{}data: [DONE]\n\n", common::content_event("hi")),
        ),
        ("failed", "data: {not json\n\n".to_string()),
    ] {
        let mut stream = api.stream_detached(&user("hi"), None).unwrap();
        stream.feed_head(200, Some("text/event-stream")).unwrap();
        stream.feed(body.as_bytes()).unwrap();
        while let Some(Ok(_)) = stream.next_event() {}
        assert!(stream.next_event().is_none(), "{what}: over");
        let piece = vec![b'x'; 64 * 1024];
        let before = allocations();
        for _ in 0..1024 {
            stream.feed(&piece).unwrap();
        }
        assert_eq!(allocations() - before, 0, "{what}: what is fed is dropped");
        stream.feed_end().unwrap();
    }
}
