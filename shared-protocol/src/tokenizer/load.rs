//! Building a [`Tokenizer`] from `tokenizer.ggml.*` metadata, with the
//! defaults and special-token detection of llama.cpp's `llama_vocab::load`.

use super::bpe::BpeModel;
use super::pretokenize::{PreConfig, supported_pre_names};
use super::spm::{SPACE_MARK, SpmModel};
use super::unicode::char_to_byte;
use super::{FastMap, Model, TokenId, TokenType, Tokenizer, TokenizerError, TokenizerModel};
use crate::gguf::GgufFile;

const KEY_MODEL: &str = "tokenizer.ggml.model";
const KEY_PRE: &str = "tokenizer.ggml.pre";
const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
const KEY_SCORES: &str = "tokenizer.ggml.scores";
const KEY_TYPES: &str = "tokenizer.ggml.token_type";
const KEY_MERGES: &str = "tokenizer.ggml.merges";
const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
const KEY_UNK: &str = "tokenizer.ggml.unknown_token_id";
const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
const KEY_FIM_PRE: &str = "tokenizer.ggml.fim_pre_token_id";
const KEY_FIM_SUF: &str = "tokenizer.ggml.fim_suf_token_id";
const KEY_FIM_MID: &str = "tokenizer.ggml.fim_mid_token_id";
const KEY_FIM_PAD: &str = "tokenizer.ggml.fim_pad_token_id";
const KEY_FIM_REP: &str = "tokenizer.ggml.fim_rep_token_id";
const KEY_FIM_SEP: &str = "tokenizer.ggml.fim_sep_token_id";
const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
const KEY_ADD_PREFIX: &str = "tokenizer.ggml.add_space_prefix";

// Texts llama.cpp recognises when the file does not name the token.
const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

pub(super) fn from_gguf(file: &GgufFile<'_>) -> Result<Tokenizer, TokenizerError> {
    let model_name = file
        .get_str(KEY_MODEL)?
        .ok_or(TokenizerError::MissingKey(KEY_MODEL))?;
    let kind = match model_name {
        "gpt2" => TokenizerModel::BytePairGpt2,
        "llama" => TokenizerModel::SentencePiece,
        other => return Err(TokenizerError::UnsupportedModel(other.to_owned())),
    };

    let tokens = file
        .get_array(KEY_TOKENS)?
        .ok_or(TokenizerError::MissingKey(KEY_TOKENS))?
        .to_strs(KEY_TOKENS)?;
    let n = tokens.len();
    if n == 0 {
        return Err(TokenizerError::EmptyVocabulary);
    }
    if n > TokenId::MAX as usize {
        return Err(TokenizerError::LengthMismatch {
            key: KEY_TOKENS,
            len: n,
            tokens: TokenId::MAX as usize,
        });
    }
    let check_len = |key: &'static str, len: usize| {
        if len == n {
            Ok(())
        } else {
            Err(TokenizerError::LengthMismatch {
                key,
                len,
                tokens: n,
            })
        }
    };
    let mut types = match file.get_array(KEY_TYPES)? {
        Some(a) => {
            let v = a.to_i64s(KEY_TYPES)?;
            check_len(KEY_TYPES, v.len())?;
            v.into_iter().map(TokenType::from_gguf).collect()
        }
        None => vec![TokenType::Normal; n],
    };
    let scores = match file.get_array(KEY_SCORES)? {
        Some(a) => {
            let v = a.to_f32s(KEY_SCORES)?;
            check_len(KEY_SCORES, v.len())?;
            v
        }
        None => vec![0.0; n],
    };

    let mut pieces = Vec::with_capacity(n);
    let mut ids: FastMap<Box<str>, TokenId> = FastMap::default();
    ids.reserve(n);
    for (i, &t) in tokens.iter().enumerate() {
        let piece: Box<str> = if t.is_empty() {
            // llama.cpp's stand-in, so the entry stays addressable.
            format!("[EMPTY_{i}]").into()
        } else {
            t.into()
        };
        if let Some(&first) = ids.get(&piece) {
            return Err(TokenizerError::DuplicateToken {
                piece: piece.into(),
                first,
                second: i as TokenId,
            });
        }
        ids.insert(piece.clone(), i as TokenId);
        pieces.push(piece);
    }

    // Special token ids. Those generation depends on must be valid; the
    // rest are dropped when out of range, as llama.cpp does.
    let spm = kind == TokenizerModel::SentencePiece;
    let special_id = |key: &'static str, default: Option<TokenId>, strict: bool| {
        let default = default.filter(|&d| (d as usize) < n);
        match file.get_i64(key)? {
            None => Ok(default),
            Some(v) if v < 0 => Ok(None),
            Some(v) if (v as u64) < n as u64 => Ok(Some(v as TokenId)),
            Some(v) if strict => Err(TokenizerError::IdOutOfRange {
                key,
                id: v,
                vocab_size: n,
            }),
            Some(_) => Ok(default),
        }
    };
    let bos = special_id(KEY_BOS, spm.then_some(1), true)?;
    let eos = special_id(KEY_EOS, spm.then_some(2), true)?;
    let unk = special_id(KEY_UNK, spm.then_some(0), true)?;
    let pad = special_id(KEY_PAD, None, false)?;

    // Tokens found by their text (the first of the list the vocabulary has)
    // are forced to control type, as llama.cpp does.
    let find = |texts: &[&str]| texts.iter().find_map(|t| ids.get(*t).copied());
    let mut detected = Vec::new();
    let mut id_or_text = |key: &'static str, texts: &[&str], strict: bool| {
        let id = special_id(key, None, strict)?;
        if id.is_some() {
            return Ok::<_, TokenizerError>(id);
        }
        let found = find(texts);
        detected.extend(found);
        Ok(found)
    };
    let eot = id_or_text(KEY_EOT, EOT_TEXTS, true)?;
    let eom = id_or_text(KEY_EOM, EOM_TEXTS, true)?;
    id_or_text(KEY_FIM_PRE, FIM_PRE_TEXTS, false)?;
    id_or_text(KEY_FIM_SUF, FIM_SUF_TEXTS, false)?;
    id_or_text(KEY_FIM_MID, FIM_MID_TEXTS, false)?;
    let fim_pad = id_or_text(KEY_FIM_PAD, FIM_PAD_TEXTS, false)?;
    let fim_rep = id_or_text(KEY_FIM_REP, FIM_REP_TEXTS, false)?;
    let fim_sep = id_or_text(KEY_FIM_SEP, FIM_SEP_TEXTS, false)?;

    let eog_by_text: Vec<TokenId> = EOG_TEXTS
        .iter()
        .filter_map(|t| ids.get(*t).copied())
        .collect();
    for &id in detected.iter().chain(&eog_by_text) {
        types[id as usize] = TokenType::Control;
    }
    let mut eog: Vec<TokenId> = [fim_pad, fim_rep, fim_sep, eos, eot, eom]
        .into_iter()
        .flatten()
        .chain(eog_by_text)
        .collect();
    eog.sort_unstable();
    eog.dedup();

    let mut specials: Vec<TokenId> = (0..n as TokenId)
        .filter(|&id| {
            matches!(
                types[id as usize],
                TokenType::Control | TokenType::UserDefined | TokenType::Unknown
            )
        })
        .collect();
    specials.sort_by_key(|&id| (std::cmp::Reverse(pieces[id as usize].len()), id));

    let (model, default_add_bos, pre_name) = match kind {
        TokenizerModel::BytePairGpt2 => {
            let name = file.get_str(KEY_PRE)?.unwrap_or("default");
            let cfg =
                PreConfig::from_name(name).ok_or_else(|| TokenizerError::UnknownPreTokenizer {
                    name: name.to_owned(),
                    supported: supported_pre_names(),
                })?;
            let merges = file
                .get_array(KEY_MERGES)?
                .ok_or(TokenizerError::MissingKey(KEY_MERGES))?
                .to_strs(KEY_MERGES)?;
            let m = BpeModel::new(cfg.pre, cfg.ignore_merges, &ids, &merges)?;
            (Model::Bpe(m), cfg.add_bos, Some(name.to_owned()))
        }
        TokenizerModel::SentencePiece => {
            let mut mergeable = FastMap::default();
            for (i, piece) in pieces.iter().enumerate() {
                if matches!(types[i], TokenType::Normal | TokenType::UserDefined) {
                    mergeable.insert(piece.clone(), (i as TokenId, scores[i]));
                }
            }
            let mut byte_tokens = [None; 256];
            for (b, slot) in byte_tokens.iter_mut().enumerate() {
                *slot = ids
                    .get(format!("<0x{b:02X}>").as_str())
                    .copied()
                    .or_else(|| {
                        let c = char::from(b as u8);
                        (b < 0x80).then(|| ids.get(c.to_string().as_str()).copied())?
                    });
            }
            (
                Model::Spm(SpmModel::new(mergeable, byte_tokens, unk)),
                true,
                None,
            )
        }
    };

    let add_bos = file.get_bool(KEY_ADD_BOS)?.unwrap_or(default_add_bos);
    if add_bos && bos.is_none() {
        return Err(TokenizerError::AddBosWithoutBos);
    }
    let add_space_prefix = file.get_bool(KEY_ADD_PREFIX)?.unwrap_or(spm);

    let decoded = pieces
        .iter()
        .zip(&types)
        .map(|(p, &t)| decode_piece(kind, p, t))
        .collect();

    Ok(Tokenizer {
        model,
        pieces,
        types,
        ids,
        specials,
        decoded,
        bos,
        eos,
        eot,
        unk,
        pad,
        eog,
        add_bos,
        add_space_prefix,
        pre_name,
    })
}

/// The bytes a vocabulary entry stands for (llama.cpp's `token_to_piece`
/// with `special = true`).
fn decode_piece(kind: TokenizerModel, piece: &str, ty: TokenType) -> Box<[u8]> {
    match ty {
        TokenType::Control | TokenType::Unknown | TokenType::UserDefined => piece.as_bytes().into(),
        TokenType::Byte => {
            parse_byte_token(piece).map_or_else(|| Box::from([]), |b| Box::from([b]))
        }
        TokenType::Unused | TokenType::Undefined => Box::from([]),
        TokenType::Normal => match kind {
            TokenizerModel::SentencePiece => piece.replace(SPACE_MARK, " ").into_bytes().into(),
            TokenizerModel::BytePairGpt2 => {
                let mut out = Vec::with_capacity(piece.len());
                let mut buf = [0u8; 4];
                for c in piece.chars() {
                    match char_to_byte(c) {
                        Some(b) => out.push(b),
                        // Not from the byte table: keep the character itself.
                        None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
                    }
                }
                out.into()
            }
        },
    }
}

/// `<0xXX>` → the byte.
fn parse_byte_token(piece: &str) -> Option<u8> {
    let hex = piece.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}
