//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that
//! replays their corpus on stable (`tests/fuzz_corpus.rs`), as rustls does.
//! The property is the same in both: no input panics, and what parses can be
//! used.

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// Parses `data` as GGUF; if that works, walks every metadata value and
/// tensor, builds the tokenizer and chat template, and tokenizes some text.
pub fn gguf(data: &[u8]) {
    let Ok(file) = GgufFile::parse(data) else {
        return;
    };
    for (key, value) in &file.metadata {
        let _ = file.get(key);
        if let Some(array) = value.as_array() {
            for i in 0..array.len().min(64) {
                let _ = array.get(i);
            }
            let _ = array.to_strs(key);
            let _ = array.to_f32s(key);
            let _ = array.to_i64s(key);
        }
    }
    for tensor in &file.tensors {
        let bytes = file.tensor_data(tensor);
        assert_eq!(bytes.len() as u64, tensor.size);
    }
    if let Ok(tokenizer) = Tokenizer::from_gguf(&file) {
        let ids = tokenizer.encode("Hello <|im_start|> wörld 123 🙂\n\t  x", true);
        let _ = tokenizer.decode(&ids, true);
    }
    let _ = crate::chat::ChatTemplate::from_gguf(&file);
}
