//! Token verification: any bytes as a compact JWS, or (after `sign:`) any
//! header and claims JSON signed with the server's own key, so that the
//! fuzzer reaches the claim checks behind the signature. See `src/lib.rs`
//! for what must hold.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    gatehouse_fuzz::token_verify(data);
});
