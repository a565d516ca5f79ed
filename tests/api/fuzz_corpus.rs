//! The fuzz targets' committed corpus, run through the targets' own checks
//! on every `cargo test`: no fuzzer or nightly compiler needed, and a seed
//! that stops being accepted (`ok-*`) or refused (`refused-*`) fails here.
//! `fuzz/seeds.py` writes the named seeds; the fuzzer may add others.

use std::path::Path;

#[path = "../../fuzz/src/lib.rs"]
mod checks;

use checks::Verdict;

/// Every file of `fuzz/corpus/<target>/`, by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Runs a target over its corpus and checks the verdict of each named seed.
fn run(target: &str, check: fn(&[u8]) -> Verdict) {
    let files = corpus(target);
    let (mut accepted, mut refused) = (0, 0);
    for (name, data) in &files {
        let verdict = check(data);
        if name.starts_with("ok-") {
            assert_eq!(verdict, Verdict::Accepted, "{target}/{name}");
            accepted += 1;
        } else if name.starts_with("refused-") {
            assert_eq!(verdict, Verdict::Refused, "{target}/{name}");
            refused += 1;
        }
    }
    assert!(
        accepted > 0 && refused > 0,
        "{target}: {accepted} ok- and {refused} refused- seeds; run fuzz/seeds.py"
    );
}

#[test]
fn the_token_verify_corpus_keeps_every_rule() {
    run("token_verify", checks::token_verify);
}

#[test]
fn the_token_request_corpus_keeps_every_rule() {
    run("token_request", checks::token_request);
}
