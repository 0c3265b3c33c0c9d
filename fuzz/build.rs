//! Mirrors bindings-c/src into OUT_DIR so src/lib.rs can compile the C ABI as
//! part of this (instrumented) crate: the crate root's inner attributes and
//! inner doc comments are dropped (they cannot appear inside `include!`),
//! `mod x;` declarations get an absolute `#[path]`, and the test module is left
//! out; `use crate::ffi_boundary;` imports become `#[macro_use]` (a macro
//! defined inside `include!` cannot be named by path). Nothing else changes.

use std::fs;
use std::path::PathBuf;

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bindings-c/src");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("actionq_c");
    fs::create_dir_all(&out).unwrap();
    println!("cargo:rerun-if-changed={}", src.display());
    for entry in fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name == "lib.rs" || !name.ends_with(".rs") {
            continue;
        }
        // `use crate::ffi_boundary;` cannot name a macro defined inside an
        // `include!`; `#[macro_use]` on the module declarations below brings
        // it into textual scope instead.
        let text: String = fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("use crate::ffi_boundary"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(out.join(&name), text).unwrap();
    }
    let lib = fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut root = String::new();
    let mut skip_next_mod = false;
    for line in lib.lines() {
        let t = line.trim_start();
        if t.starts_with("#![") || t.starts_with("//!") {
            continue;
        }
        if t == "#[cfg(test)]" {
            skip_next_mod = true;
            continue;
        }
        if let Some(m) = t
            .strip_prefix("mod ")
            .or_else(|| t.strip_prefix("pub mod "))
            .and_then(|r| r.strip_suffix(';'))
        {
            if std::mem::take(&mut skip_next_mod) {
                continue;
            }
            let vis = if t.starts_with("pub ") { "pub " } else { "" };
            root.push_str(&format!(
                "#[path = {:?}]\n#[macro_use]\n{vis}mod {m};\n",
                out.join(format!("{m}.rs")).display().to_string()
            ));
            continue;
        }
        skip_next_mod = false;
        root.push_str(line);
        root.push('\n');
    }
    fs::write(out.join("root.rs"), root).unwrap();
}
