//! libFuzzer entry point for [`collab_fuzz::document_sync`]. Run with `fuzz/run.sh document_sync`.
#![no_main]
#![allow(unsafe_code)] // libfuzzer-sys' entry point is #[no_mangle]

libfuzzer_sys::fuzz_target!(|data: &[u8]| collab_fuzz::document_sync(data));
