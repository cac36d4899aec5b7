//! libFuzzer entry point for [`collab_fuzz::text_operation`]. Run with `fuzz/run.sh text_operation`.
#![no_main]
#![allow(unsafe_code)] // libfuzzer-sys' entry point is #[no_mangle]

libfuzzer_sys::fuzz_target!(|data: &[u8]| collab_fuzz::text_operation(data));
