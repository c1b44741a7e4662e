//! The library built without its network code (`cargo build
//! --no-default-features`): it makes no socket, name-lookup or poll call
//! (its shared library imports none), its header is the one of the full
//! build, and from C its canned replies and detached streams work while
//! the network calls say the build has none.
//!
//! Built in its own target folder (`target/no-net`), so that it never
//! replaces the full build's library that the other tests link. The
//! Rust-level checks at the end run in the build without the network:
//! `bash tests/run-all.sh` runs this file (and tests/detached.rs) with
//! `--no-default-features` too.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::cbuild::{self, text};

/// What a library that opens no connection must not import: sockets,
/// name lookups, readiness waits.
const NETWORK_CALLS: &[&str] = &[
    "socket",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "shutdown",
    "send",
    "sendto",
    "sendmsg",
    "recv",
    "recvfrom",
    "recvmsg",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "getaddrinfo",
    "freeaddrinfo",
    "gethostbyname",
    "gethostbyname_r",
    "poll",
    "ppoll",
    "select",
    "pselect",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Builds the library without its network code, once per test binary;
/// returns its folder (`target/no-net/debug`).
fn no_net_library() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let target = cbuild::target_dir();
        // In the run with --no-default-features, this binary's own target
        // folder is target/no-net already.
        let target = if target.ends_with("no-net") {
            target
        } else {
            target.join("no-net")
        };
        let out = Command::new(env!("CARGO"))
            .args(["build", "--lib", "--quiet", "--no-default-features"])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(root())
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build --no-default-features: {}",
            text(&out.stderr)
        );
        target.join("debug")
    })
}

/// The C functions a shared library imports.
fn imports(library: &Path) -> Vec<String> {
    let out = Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(library)
        .output()
        .expect("nm (binutils) is needed: bash tests/run-all.sh installs it");
    assert!(out.status.success(), "nm: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().last())
        .map(|symbol| symbol.split('@').next().unwrap_or(symbol).to_string())
        .collect()
}

fn network_imports(library: &Path) -> Vec<String> {
    imports(library)
        .into_iter()
        .filter(|symbol| NETWORK_CALLS.contains(&symbol.as_str()))
        .collect()
}

#[test]
fn the_build_without_the_network_imports_no_network_call() {
    let offline = no_net_library().join("libmodelapi.so");
    let found = network_imports(&offline);
    assert!(
        found.is_empty(),
        "{} imports network calls: {found:?}",
        offline.display()
    );
    // The check sees them where they are: the full build imports those
    // it makes through the C library (rustix makes the others as system
    // calls of its own, hence the test below).
    #[cfg(feature = "net")]
    {
        cbuild::build_library();
        let full = cbuild::target_dir().join("debug/libmodelapi.so");
        let found = network_imports(&full);
        for call in ["getaddrinfo", "poll", "shutdown"] {
            assert!(
                found.iter().any(|s| s == call),
                "{} does not import {call}? it imports {found:?}",
                full.display()
            );
        }
    }
}

/// rustix makes its system calls itself (no C library in between, so `nm`
/// cannot see them): the build without the network does not link it, nor
/// anything else that reaches the OS beyond std.
#[test]
fn the_build_without_the_network_links_no_os_crate() {
    let tree = |features: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .args(["tree", "--edges", "normal", "--prefix", "none", "--offline"])
            .args(features)
            .current_dir(root())
            .output()
            .expect("cargo runs");
        assert!(out.status.success(), "cargo tree: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let offline = tree(&["--no-default-features"]);
    for os_crate in [
        "rustix",
        "linux-raw-sys",
        "rustls",
        "ring",
        "socket2",
        "mio",
    ] {
        assert!(
            !offline
                .lines()
                .any(|l| l.starts_with(&format!("{os_crate} "))),
            "the build without the network links {os_crate}:\n{offline}"
        );
    }
    assert!(
        tree(&[]).lines().any(|l| l.starts_with("rustix ")),
        "the full build links rustix: the check can see it"
    );
}

#[test]
fn the_header_is_the_same_in_both_builds() {
    let folder = no_net_library().join("build");
    // build.rs writes the header it generated to its OUT_DIR; the newest
    // is this build's.
    let generated = std::fs::read_dir(&folder)
        .unwrap()
        .filter_map(|entry| {
            let header = entry.ok()?.path().join("out/modelapi.h");
            let modified = header.metadata().ok()?.modified().ok()?;
            Some((modified, header))
        })
        .max()
        .map(|(_, header)| header)
        .unwrap_or_else(|| panic!("no modelapi.h under {}", folder.display()));
    let committed = std::fs::read_to_string(root().join("include/modelapi.h")).unwrap();
    assert!(
        std::fs::read_to_string(&generated).unwrap() == committed,
        "{} differs from include/modelapi.h",
        generated.display()
    );
}

#[test]
fn from_c_canned_replies_and_detached_streams_work_and_the_network_says_it_is_missing() {
    let folder = no_net_library();
    let program = folder.join("no-net-offline");
    let out = Command::new("gcc")
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg(root().join("tests/no_net/offline.c"))
        .arg("-I")
        .arg(root().join("include"))
        .arg("-L")
        .arg(folder)
        .arg(format!("-Wl,-rpath,{}", folder.display()))
        .args(["-lmodelapi", "-o"])
        .arg(&program)
        .output()
        .expect("gcc is needed: bash tests/run-all.sh installs it");
    assert!(out.status.success(), "gcc: {}", text(&out.stderr));
    let mut run = cbuild::under_valgrind(&program);
    for var in cbuild::MODEL_ENV {
        run.env_remove(var);
    }
    // cargo points the loader at the full build's folder: this program
    // must load the library it was linked with.
    run.env("LD_LIBRARY_PATH", folder);
    let out = run
        .output()
        .expect("valgrind is needed: bash tests/run-all.sh installs it");
    cbuild::assert_ok(&out, "tests/no_net/offline.c");
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("complete: transport error: this build of modelapi has no network support"),
        "{stdout}"
    );
    assert!(
        stdout.contains("detached: Hello offline (stop)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("canned: canned without a network"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-offline"), "the key leaked: {stdout}");
}

/// What the Rust API does in the build without the network.
#[cfg(not(feature = "net"))]
mod offline {
    use std::task::Poll;
    use std::time::Duration;

    use modelapi::{Error, Message, ModelApi, StreamEvent};

    fn no_network(error: Error) {
        match error {
            Error::Transport(message) => assert!(
                message.contains("no network support"),
                "the error says why: {message}"
            ),
            other => panic!("a transport error, not {other:?}"),
        }
    }

    #[test]
    fn the_calls_that_need_the_network_say_the_build_has_none() {
        let api = ModelApi::new("m", "http://127.0.0.1:9", None).unwrap();
        let hi = [Message::user("hi")];
        no_network(api.complete(&hi, None).unwrap_err());
        no_network(api.stream(&hi, None).unwrap_err());
        // A started stream reports it from its first poll, as network
        // errors of the full build.
        let mut started = api.stream_start(&hi, None).unwrap();
        match started.poll_event(Duration::ZERO) {
            Poll::Ready(Some(Err(error))) => no_network(error),
            other => panic!("the first poll gives the error, not {other:?}"),
        }
    }

    #[test]
    fn detached_streams_and_canned_replies_work() {
        let api = ModelApi::new("m", "http://127.0.0.1:9", None).unwrap();
        let mut stream = api.stream_detached(&[Message::user("hi")], None).unwrap();
        stream
            .feed_head(200, Some("text/event-stream; charset=utf-8"))
            .unwrap();
        stream
            .feed(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fed\"},\"finish_reason\":\"stop\"}]}\n\n")
            .unwrap();
        stream.feed_end().unwrap();
        let mut text = String::new();
        while let Poll::Ready(Some(event)) = stream.poll_event(Duration::ZERO) {
            if let StreamEvent::Content(piece) = event.unwrap() {
                text.push_str(piece);
            }
        }
        assert_eq!(text, "fed");
        assert!(stream.is_finished());

        let api = ModelApi::builder("m", "http://127.0.0.1:9")
            .mock_responses(vec!["canned".into()])
            .build()
            .unwrap();
        let text = api
            .stream(&[Message::user("hi")], None)
            .unwrap()
            .into_text()
            .unwrap();
        assert_eq!(text, "canned");
    }
}
