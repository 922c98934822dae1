use super::*;
use crate::gguf::{GgufWriter, MetaValue};

const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const PLAIN_CHATML: &str = r#"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"#;

const LLAMA3: &str = r#"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"#;

#[test]
fn smollm2_default_system_is_read_from_the_template() {
    let t = ChatTemplate::from_jinja(SMOLLM2).unwrap();
    assert_eq!(
        t,
        ChatTemplate::ChatMl {
            default_system: Some(
                "You are a helpful AI assistant named SmolLM, trained by Hugging Face".into()
            )
        }
    );
    assert_eq!(
        t.render(&[ChatMessage::user("Hi")], true),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(
        t.render(
            &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
            false
        ),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
    // No messages: the template's loop never runs, so no system turn either.
    assert_eq!(t.render(&[], true), "<|im_start|>assistant\n");
    assert_eq!(t.stop_pieces(), ["<|im_end|>"]);
    assert_eq!(t.name(), "chatml");
}

#[test]
fn escaped_newlines_in_literals_are_resolved() {
    let escaped = SMOLLM2.replace('\n', "\\n");
    let t = ChatTemplate::from_jinja(&escaped).unwrap();
    assert_eq!(t, ChatTemplate::from_jinja(SMOLLM2).unwrap());
}

#[test]
fn plain_chatml_has_no_default_system() {
    let t = ChatTemplate::from_jinja(PLAIN_CHATML).unwrap();
    assert_eq!(t, ChatTemplate::default());
    let msgs = [
        ChatMessage::user("a"),
        ChatMessage::assistant("b"),
        ChatMessage::user("c"),
    ];
    assert_eq!(
        t.render(&msgs, false),
        "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
    );
}

#[test]
fn llama3_headers_trim_content() {
    let t = ChatTemplate::from_jinja(LLAMA3).unwrap();
    assert_eq!(
        t,
        ChatTemplate::Llama3 {
            default_system: None
        }
    );
    assert_eq!(
        t.render(
            &[ChatMessage::system("sys "), ChatMessage::user("\nhello\n")],
            true
        ),
        "<|start_header_id|>system<|end_header_id|>\n\nsys<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    );
    assert!(t.stop_pieces().contains(&"<|eot_id|>"));
}

#[test]
fn unknown_and_missing_templates_are_errors() {
    let e = ChatTemplate::from_jinja("{{ messages[0]['content'] }} [INST]").unwrap_err();
    assert!(matches!(e, ChatTemplateError::Unrecognized { .. }), "{e}");
    assert!(e.to_string().contains("[INST]"));

    let bytes = GgufWriter::new().to_bytes().unwrap();
    let file = GgufFile::parse(&bytes).unwrap();
    assert!(matches!(
        ChatTemplate::from_gguf(&file),
        Err(ChatTemplateError::Missing)
    ));

    let mut w = GgufWriter::new();
    w.metadata(CHAT_TEMPLATE_KEY, MetaValue::String(SMOLLM2.into()));
    let bytes = w.to_bytes().unwrap();
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(ChatTemplate::from_gguf(&file).unwrap().name(), "chatml");
}

#[test]
fn literal_scanner_handles_quotes_and_raw_text() {
    let texts = literal_texts("raw {{ 'a}}b' + \"c\\\"d\" }} mid {# '{{x}}' #}{% if x %}end");
    assert_eq!(texts, ["raw ", "a}}b", "c\"d", " mid ", "end"]);
}
