//! Generates the C header, `include/modelapi.h`, with cbindgen.
//!
//! The header is written to `$OUT_DIR/modelapi.h` on every build, and to
//! `include/modelapi.h` when that file is missing or when
//! `MODELAPI_UPDATE_HEADER=1` is set. The committed header is checked
//! against the generated one by `tests/header.rs`.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=MODELAPI_UPDATE_HEADER");

    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));

    let mut config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let version = |part: &str| env::var(format!("CARGO_PKG_VERSION_{part}")).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n#define MODELAPI_VERSION_MAJOR {}\n#define MODELAPI_VERSION_MINOR {}\n\
         #define MODELAPI_VERSION_PATCH {}\n#define MODELAPI_VERSION \"{}\"",
        version("MAJOR"),
        version("MINOR"),
        version("PATCH"),
        env::var("CARGO_PKG_VERSION").expect("set by cargo"),
    ));

    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from src/ffi");
    bindings.write_to_file(out_dir.join("modelapi.h"));

    let committed = crate_dir.join("include").join("modelapi.h");
    if !committed.exists() || env::var_os("MODELAPI_UPDATE_HEADER").is_some_and(|v| v == "1") {
        bindings.write_to_file(committed);
    }
}
