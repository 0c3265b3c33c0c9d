//! The committed header is exactly what the pinned cbindgen generates from
//! this crate, and its version macros match Cargo.toml.

use std::path::Path;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn committed_header() -> String {
    std::fs::read_to_string(crate_dir().join("include/actionq.h"))
        .expect("bindings-c/include/actionq.h is committed")
}

#[test]
fn committed_header_matches_cbindgen_output() {
    let config = cbindgen::Config::from_file(crate_dir().join("cbindgen.toml"))
        .expect("cbindgen.toml parses");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_crate(crate_dir())
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");
    assert!(
        generated == committed_header(),
        "bindings-c/include/actionq.h is stale: regenerate it with `make c-header` \
         (cbindgen 0.29.4) and commit it"
    );
}

fn define(header: &str, name: &str) -> String {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("header lacks #define {name}"))
        .trim()
        .to_owned()
}

#[test]
fn header_version_macros_match_cargo_toml() {
    let header = committed_header();
    assert_eq!(
        define(&header, "AQ_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MAJOR")
    );
    assert_eq!(
        define(&header, "AQ_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_MINOR")
    );
    assert_eq!(
        define(&header, "AQ_VERSION_PATCH"),
        env!("CARGO_PKG_VERSION_PATCH")
    );
}

#[test]
fn header_keeps_its_promised_shape() {
    let header = committed_header();
    for needle in [
        "#ifndef ACTIONQ_H",
        "extern \"C\" {",
        "AQ_STATUS_OK = 0,",
        "AQ_STATUS_INVALID_INPUT = 1,",
        "AQ_STATUS_NOT_FOUND = 2,",
        "AQ_STATUS_NOT_WHITELISTED = 3,",
        "AQ_STATUS_CONFLICT = 4,",
        "AQ_STATUS_STORAGE = 5,",
        "AQ_STATUS_NULL_ARGUMENT = 6,",
        "AQ_STATUS_INVALID_UTF8 = 7,",
        "AQ_STATUS_PANIC = 8,",
        "void aq_string_free(char *s);",
    ] {
        assert!(header.contains(needle), "header lacks {needle:?}");
    }
    // The test hook stays out of the public header.
    assert!(!header.contains("aq_test_panic"));
}
