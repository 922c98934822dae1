#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| shared_protocol::fuzzing::wire(data));
