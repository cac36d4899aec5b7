//! libFuzzer entry point for [`collab_fuzz::frame`]. Run with `fuzz/run.sh frame`.
#![no_main]
#![allow(unsafe_code)] // libfuzzer-sys' entry point is #[no_mangle]

libfuzzer_sys::fuzz_target!(|data: &[u8]| collab_fuzz::frame(data));
