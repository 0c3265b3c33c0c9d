//! Tests of the C ABI from Rust.
