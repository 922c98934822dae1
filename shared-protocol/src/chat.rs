//! Chat templates: turning a conversation into the prompt text a model was
//! trained on.
//!
//! GGUF files carry their template as Jinja source in
//! `tokenizer.chat_template`. Rather than embed a Jinja engine, the known
//! template families are recognised from that source and rendered in Rust;
//! what varies inside a family (such as the default system message SmolLM2's
//! template inserts) is read from the template text. Unrecognised templates
//! are an error the caller can turn into a warning and a ChatML fallback
//! ([`ChatTemplate::default`]).
//!
//! Supported: ChatML (`<|im_start|>role\n…<|im_end|>\n`: SmolLM2, Qwen 2,
//! Hermes, …) and the Llama 3 header format
//! (`<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`). Tool calls,
//! multimodal content and Llama 3.1's dated system preamble are not rendered.

use crate::gguf::{GgufError, GgufFile};

/// The metadata key holding the Jinja source.
pub const CHAT_TEMPLATE_KEY: &str = "tokenizer.chat_template";

/// One turn of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `"system"`, `"user"` or `"assistant"` (any string is rendered as is).
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChatTemplateError {
    #[error("the file has no chat template ({CHAT_TEMPLATE_KEY})")]
    Missing,
    #[error("unrecognised chat template (supported: ChatML, Llama 3): {excerpt:?}")]
    Unrecognized { excerpt: String },
    #[error(transparent)]
    Gguf(#[from] GgufError),
}

/// A recognised chat template family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>{role}\n{content}<|im_end|>\n` per message.
    ChatMl {
        /// Inserted as a system turn when the first message is not one.
        default_system: Option<String>,
    },
    /// `<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>`
    /// per message, content trimmed. The BOS token (`<|begin_of_text|>`) is
    /// not part of the text: prepend it at the token level when
    /// `Tokenizer::add_bos` says so.
    Llama3 {
        /// Inserted as a system turn when the first message is not one.
        default_system: Option<String>,
    },
}

impl Default for ChatTemplate {
    /// Plain ChatML without a default system message: the fallback for
    /// files whose template is missing or unrecognised.
    fn default() -> Self {
        ChatTemplate::ChatMl {
            default_system: None,
        }
    }
}

const IM_START: &str = "<|im_start|>";
const IM_END: &str = "<|im_end|>";
const HEADER_START: &str = "<|start_header_id|>";
const HEADER_END: &str = "<|end_header_id|>";
const EOT_ID: &str = "<|eot_id|>";

impl ChatTemplate {
    /// Recognises the template in `tokenizer.chat_template`.
    pub fn from_gguf(file: &GgufFile<'_>) -> Result<Self, ChatTemplateError> {
        let source = file
            .get_str(CHAT_TEMPLATE_KEY)?
            .ok_or(ChatTemplateError::Missing)?;
        Self::from_jinja(source)
    }

    /// Recognises a template from its Jinja source.
    pub fn from_jinja(source: &str) -> Result<Self, ChatTemplateError> {
        let texts = literal_texts(source);
        if source.contains(IM_START) {
            let default_system = find_between(&texts, "<|im_start|>system\n", IM_END);
            return Ok(ChatTemplate::ChatMl { default_system });
        }
        if source.contains(HEADER_START) && source.contains(HEADER_END) {
            let default_system = find_between(
                &texts,
                "<|start_header_id|>system<|end_header_id|>\n\n",
                EOT_ID,
            );
            return Ok(ChatTemplate::Llama3 { default_system });
        }
        Err(ChatTemplateError::Unrecognized {
            excerpt: source.chars().take(120).collect(),
        })
    }

    /// A short name for logs and `titan inspect`.
    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "chatml",
            ChatTemplate::Llama3 { .. } => "llama3",
        }
    }

    /// Renders `messages`, inserting the template's default system message
    /// when the first message is not a system one. With
    /// `add_generation_prompt`, ends with the header of an assistant turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let default_system = match self {
            ChatTemplate::ChatMl { default_system } | ChatTemplate::Llama3 { default_system } => {
                default_system.as_deref()
            }
        };
        let mut out = String::new();
        if let (Some(system), Some(first)) = (default_system, messages.first())
            && first.role != "system"
        {
            self.push_turn(&mut out, "system", system);
        }
        for m in messages {
            self.push_turn(&mut out, &m.role, &m.content);
        }
        if add_generation_prompt {
            match self {
                ChatTemplate::ChatMl { .. } => out.push_str("<|im_start|>assistant\n"),
                ChatTemplate::Llama3 { .. } => {
                    out.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
                }
            }
        }
        out
    }

    fn push_turn(&self, out: &mut String, role: &str, content: &str) {
        match self {
            ChatTemplate::ChatMl { .. } => {
                out.push_str(IM_START);
                out.push_str(role);
                out.push('\n');
                out.push_str(content);
                out.push_str(IM_END);
                out.push('\n');
            }
            ChatTemplate::Llama3 { .. } => {
                out.push_str(HEADER_START);
                out.push_str(role);
                out.push_str(HEADER_END);
                out.push_str("\n\n");
                out.push_str(content.trim());
                out.push_str(EOT_ID);
            }
        }
    }

    /// Text pieces that end an assistant turn, for stop handling.
    pub fn stop_pieces(&self) -> &'static [&'static str] {
        match self {
            ChatTemplate::ChatMl { .. } => &[IM_END],
            ChatTemplate::Llama3 { .. } => &[EOT_ID, "<|eom_id|>"],
        }
    }
}

/// The constant text of a Jinja template: string literals inside `{{ }}` and
/// `{% %}` (with escapes resolved) and the raw text between tags.
fn literal_texts(source: &str) -> Vec<String> {
    let mut texts = Vec::new();
    let mut rest = source;
    while !rest.is_empty() {
        let tag = ["{{", "{%", "{#"]
            .iter()
            .filter_map(|open| rest.find(open))
            .min();
        let Some(start) = tag else {
            texts.push(rest.to_owned());
            break;
        };
        if start > 0 {
            texts.push(rest[..start].to_owned());
        }
        let body = &rest[start + 2..];
        let close = match &rest[start..start + 2] {
            "{{" => "}}",
            "{%" => "%}",
            _ => "#}",
        };
        let (inside, after) = split_tag(body, close);
        if close != "#}" {
            texts.extend(string_literals(inside));
        }
        rest = after;
    }
    texts
}

/// Splits a tag body at its closing delimiter, skipping delimiters inside
/// string literals.
fn split_tag<'a>(body: &'a str, close: &str) -> (&'a str, &'a str) {
    let mut quote = None;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => quote = Some(c),
            None if body[i..].starts_with(close) => return (&body[..i], &body[i + close.len()..]),
            None => {}
        }
    }
    (body, "")
}

/// The string literals of a Jinja expression, escapes resolved.
fn string_literals(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if c != '\'' && c != '"' {
            continue;
        }
        let mut lit = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\\' => match chars.next() {
                    Some('n') => lit.push('\n'),
                    Some('t') => lit.push('\t'),
                    Some('r') => lit.push('\r'),
                    Some(other) => lit.push(other),
                    None => {}
                },
                d if d == c => break,
                d => lit.push(d),
            }
        }
        out.push(lit);
    }
    out
}

/// The first non-empty text between `open` and `close` within one constant
/// piece of the template.
fn find_between(texts: &[String], open: &str, close: &str) -> Option<String> {
    texts.iter().find_map(|t| {
        let start = t.find(open)? + open.len();
        let len = t[start..].find(close)?;
        let found = &t[start..start + len];
        (!found.is_empty()).then(|| found.to_owned())
    })
}

#[cfg(test)]
mod tests;
