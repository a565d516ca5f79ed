//! The `/token` decision: any `Authorization` values, content type and body
//! through `TokenRequest::parse`, the function the handler calls before it
//! runs a grant. See `src/lib.rs` for the input layout and what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_fuzz::token_request(data);
});
