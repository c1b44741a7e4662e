//! The committed C header is the one the build generates, its version
//! macros agree with Cargo.toml and `modelapi_version()`, and the shared
//! library exports nothing but `modelapi_*`.

use std::ffi::CStr;
use std::path::Path;
use std::process::Command;

fn committed_header() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/modelapi.h");
    std::fs::read_to_string(path).expect("include/modelapi.h is committed")
}

#[test]
fn committed_header_is_the_generated_one() {
    let generated = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/modelapi.h")).unwrap();
    assert!(
        committed_header() == generated,
        "include/modelapi.h is stale: run `MODELAPI_UPDATE_HEADER=1 cargo build` and commit it"
    );
}

#[test]
fn version_macros_agree_with_cargo_and_the_library() {
    let header = committed_header();
    let macro_value = |name: &str| {
        let prefix = format!("#define {name} ");
        header
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} is missing from the header"))
            .trim()
            .to_string()
    };
    assert_eq!(
        macro_value("MODELAPI_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        macro_value("MODELAPI_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        macro_value("MODELAPI_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
    assert_eq!(
        macro_value("MODELAPI_VERSION"),
        format!("\"{}\"", env!("CARGO_PKG_VERSION"))
    );
    let version = unsafe { CStr::from_ptr(modelapi::ffi::modelapi_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn header_declares_every_contract_function() {
    let header = committed_header();
    for name in [
        "modelapi_new",
        "modelapi_from_env",
        "modelapi_set_timeout_ms",
        "modelapi_set_max_retries",
        "modelapi_set_header",
        "modelapi_complete",
        "modelapi_complete_json",
        "modelapi_stream",
        "modelapi_stream_json",
        "modelapi_stream_open",
        "modelapi_stream_open_json",
        "modelapi_stream_next",
        "modelapi_stream_free",
        "modelapi_close",
        "modelapi_string_free",
        "modelapi_last_error",
        "modelapi_last_http_status",
        "modelapi_version",
    ] {
        assert!(
            header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
            "{name} is not declared"
        );
    }
    for item in [
        "typedef struct ModelApi ModelApi;",
        "typedef struct ModelApiStream ModelApiStream;",
        "typedef enum ModelApiStatus",
        "MODELAPI_SERVER_ERROR = 10",
        "typedef int (*ModelApiChunkFn)(void *user_data, const char *chunk, size_t len);",
        "#ifdef __cplusplus",
        "#ifndef MODELAPI_H",
    ] {
        assert!(header.contains(item), "{item} is missing");
    }
}

#[test]
fn header_compiles_as_strict_c99_and_cpp11() {
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let source = "#include \"modelapi.h\"\nint main(void) { return modelapi_version() == 0; }\n";
    for (compiler, std, file) in [("cc", "-std=c99", "h.c"), ("c++", "-std=c++11", "h.cpp")] {
        let path = dir.join(file);
        std::fs::write(&path, source).unwrap();
        let out = Command::new(compiler)
            .args([
                std,
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                "-fsyntax-only",
                "-I",
            ])
            .arg(&include)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("{compiler} is needed for this test (`bash tests/run-all.sh` installs it: tests/tools.sh): {e}"));
        assert!(
            out.status.success(),
            "{compiler} {std}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
