//! The first-token deadline, fallbacks and hedging through the C ABI and
//! the C++ header: tests/c_failover/failover.c and failover.cpp, built
//! against the debug library, run against a stalling endpoint and one
//! that answers. Each key to its own endpoint.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::cbuild::{assert_ok, build_library, target_dir, text};
use common::stall::{Behaviour, StallServer};

/// Compiles `source` with `compiler` into the test's temporary folder.
fn compile(compiler: &str, source: &str, extra: &[&str]) -> std::path::PathBuf {
    build_library();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = target_dir().join("debug");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{source}.bin"));
    let built = Command::new(compiler)
        .args(extra)
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-o"])
        .arg(&out)
        .arg(root.join("tests/c_failover").join(source))
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-L{}", lib.display()))
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-lmodelapi")
        .output()
        .unwrap_or_else(|e| panic!("{compiler} is needed for this test: {e}"));
    assert_ok(&built, &format!("{compiler} {source}"));
    out
}

fn run(program: &Path, stalling: &StallServer, fallback: &StallServer) {
    let out = Command::new(program)
        .arg(stalling.url())
        .arg(fallback.url())
        .env_remove("DEBUG_MOCK_RESPONSES")
        .output()
        .unwrap();
    assert_ok(&out, &program.display().to_string());
    let stdout = text(&out.stdout);
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(!stdout.contains("not ok"), "{stdout}");
}

fn endpoints() -> (StallServer, StallServer) {
    let stalling = StallServer::start(Behaviour::KeepAliveComments {
        every: Duration::from_millis(50),
    });
    let fallback = StallServer::start(Behaviour::Answer {
        delay: Duration::ZERO,
        text: "rescued".into(),
    });
    (stalling, fallback)
}

fn keys_stay_home(stalling: &StallServer, fallback: &StallServer, mine: &str, theirs: &str) {
    for seen in stalling.seen() {
        assert!(!seen.request.contains(theirs), "{}", seen.request);
    }
    for seen in fallback.seen() {
        assert!(!seen.request.contains(mine), "{}", seen.request);
    }
}

#[test]
fn from_c() {
    let program = compile("cc", "failover.c", &["-std=c99"]);
    let (stalling, fallback) = endpoints();
    run(&program, &stalling, &fallback);
    keys_stay_home(
        &stalling,
        &fallback,
        "sk-c-primary-key",
        "sk-c-fallback-key",
    );
    assert!(fallback
        .seen()
        .iter()
        .any(|s| s.request.contains("Bearer sk-c-fallback-key")));
}

#[test]
fn from_cpp() {
    let program = compile("c++", "failover.cpp", &["-std=c++17"]);
    let (stalling, fallback) = endpoints();
    run(&program, &stalling, &fallback);
    keys_stay_home(
        &stalling,
        &fallback,
        "sk-cpp-primary-key",
        "sk-cpp-fallback-key",
    );
}
