//! Replays the committed fuzz corpus through the fuzz entry point on stable.

use std::path::PathBuf;

#[test]
fn gguf_fuzz_corpus_replays_without_panics() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("fuzz/corpus/gguf_parse");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        shared_protocol::fuzzing::gguf(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus at {} has only {n} inputs", dir.display());
}

#[test]
fn wire_fuzz_corpus_replays_without_panics() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .join("fuzz/corpus/wire_decode");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        shared_protocol::fuzzing::wire(&data);
        n += 1;
    }
    assert!(n >= 10, "corpus at {} has only {n} inputs", dir.display());
}
