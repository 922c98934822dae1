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

/// Decodes `data` as every kind of mesh message; whatever decodes must
/// re-encode to exactly the same bytes (the encoding is canonical).
pub fn wire(data: &[u8]) {
    use crate::wire::gossip::GossipMessage;
    use crate::wire::verify::{Request, Response};
    if let Ok(m) = Request::decode(data) {
        assert_eq!(m.encode(), data, "request re-encodes differently");
    }
    if let Ok(m) = Response::decode(data) {
        assert_eq!(m.encode(), data, "response re-encodes differently");
    }
    if let Ok(m) = GossipMessage::decode(data) {
        assert_eq!(m.encode(), data, "gossip re-encodes differently");
    }
    if data.len() >= 4 {
        let header = [data[0], data[1], data[2], data[3]];
        let _ = crate::wire::frame_len(header, crate::wire::MAX_FRAME);
    }
}
