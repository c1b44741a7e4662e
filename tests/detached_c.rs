//! Detached streams from C: `tests/detached_c/detached.c`, built with the
//! system compiler against the static library, run as it is and under
//! valgrind (errors and leaks fail). It feeds streams directly (no network):
//! the request handed out (URL, headers with the key and the client's own,
//! body), PENDING from `modelapi_stream_next`, `_next_event` and `_poll`,
//! an event as soon as its blank line is fed, `modelapi_stream_fd` -1,
//! HTTP errors (`modelapi_last_http_status`), truncation after the end, a
//! stream that is not detached and canned replies, and every NULL pointer
//! and out-of-order call refused with `MODELAPI_INVALID_ARGUMENT` without
//! changing the stream.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cbuild;

fn program() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        cbuild::compile_static(&root.join("tests/detached_c/detached.c"), "detached_c")
    })
}

fn run(valgrind: bool) {
    let mut command = if valgrind {
        cbuild::under_valgrind(program())
    } else {
        Command::new(program())
    };
    for var in cbuild::MODEL_ENV {
        command.env_remove(var);
    }
    let out = command
        .output()
        .expect("valgrind is needed (tests/tools.sh installs it)");
    let what = if valgrind { "under valgrind" } else { "plain" };
    cbuild::assert_ok(&out, &format!("detached.c {what}"));
    assert_eq!(cbuild::text(&out.stdout), "ok\n", "{what}");
}

#[test]
fn detached_streams_from_c() {
    run(false);
}

#[test]
fn detached_streams_from_c_under_valgrind() {
    run(true);
}
