//! Builds the C examples (once per test binary and flavour) and runs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The two ways the examples are linked.
pub const VARIANTS: [&str; 2] = ["static", "shared"];

/// How an example runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// As it is.
    Plain,
    /// Under valgrind's memcheck: errors or leaks fail the run.
    Valgrind,
    /// Built with `-fsanitize=address,undefined` (LeakSanitizer included).
    Sanitizers,
}

pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Builds the library (debug) and every example; returns the build folder.
pub fn build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| make("examples-c", ""))
}

/// The examples built with the address and undefined-behaviour sanitizers.
pub fn build_sanitized() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| {
        make(
            "examples-c-sanitized",
            "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all",
        )
    })
}

/// Builds the library (debug, `target/debug/libmodelapi.{a,so}`), once
/// per test binary.
pub fn build_library() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args(["build", "--lib", "--quiet"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .expect("cargo runs");
        assert!(
            out.status.success(),
            "cargo build: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// The model-related environment variables, which a program under test
/// must not inherit from the shell running the tests.
pub const MODEL_ENV: [&str; 4] = [
    "MODEL_API_URL",
    "MODEL_NAME",
    "MODEL_API_KEY",
    "DEBUG_MOCK_RESPONSES",
];

fn make(folder: &str, sanitize: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    build_library();
    let build = target_dir().join(folder);
    let out = Command::new("make")
        .arg("-C")
        .arg(root.join("examples-c"))
        .arg("PROFILE=debug")
        .arg(format!("TARGET_DIR={}", target_dir().display()))
        .arg(format!("BUILD={}", build.display()))
        .arg(format!("SANITIZE={sanitize}"))
        .arg("all")
        .output()
        .expect("make is needed to build the C examples");
    assert!(
        out.status.success(),
        "make: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    build
}

/// `program` under valgrind's memcheck: errors or definite and indirect
/// leaks make it exit with 99.
pub fn under_valgrind(program: &Path) -> Command {
    let mut command = Command::new("valgrind");
    command
        .args([
            "--quiet",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99",
        ])
        .arg(program);
    command
}

/// Compiles the C99 program `source` (warnings are errors) against the
/// header and the static debug library, into `target/<name>/<name>`;
/// returns the program.
pub fn compile_static(source: &Path, name: &str) -> PathBuf {
    build_library();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = target_dir().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let program = dir.join(name);
    let native = std::fs::read_to_string(root.join("packaging/native-static-libs")).unwrap();
    let out = Command::new("cc")
        .args([
            "-std=c99",
            "-g",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-I",
        ])
        .arg(root.join("include"))
        .arg(source)
        .arg("-o")
        .arg(&program)
        .arg(target_dir().join("debug/libmodelapi.a"))
        .args(native.split_whitespace())
        .output()
        .expect("a C compiler (cc) is needed: bash tests/run-all.sh installs it");
    assert_ok(&out, &format!("compiling {}", source.display()));
    program
}

/// Runs an example with only the given model-related environment.
pub fn run(
    variant: &str,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &str,
    how: How,
) -> Output {
    let folder = if how == How::Sanitizers {
        build_sanitized()
    } else {
        build()
    };
    let path = folder.join(variant).join(program);
    let mut command = if how == How::Valgrind {
        under_valgrind(&path)
    } else {
        Command::new(&path)
    };
    command.args(args);
    for var in MODEL_ENV {
        command.env_remove(var);
    }
    if how == How::Sanitizers {
        command
            .env("ASAN_OPTIONS", "detect_leaks=1:exitcode=98")
            .env("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1");
    }
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}
