//! The character classes the pre-tokenizer regexes use, and GPT-2's
//! byte↔unicode table.
//!
//! `\p{L}` is General_Category Letter (Lu, Ll, Lt, Lm, Lo), `\p{N}` is Number
//! (Nd, Nl, No) and `\s` is the White_Space property, which is what
//! Oniguruma (inside HF `tokenizers`) and llama.cpp's `unicode.cpp` use.

use unicode_general_category::{GeneralCategory as Gc, get_general_category};

/// The class of one character as the GPT-2 family of regexes sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Letter,
    Number,
    Whitespace,
    /// Anything else: `[^\s\p{L}\p{N}]`.
    Other,
}

/// The White_Space property (PropList.txt). Stable since Unicode 6.3.
fn is_white_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

pub(crate) fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            '\t'..='\r' | ' ' => Class::Whitespace,
            _ => Class::Other,
        };
    }
    if is_white_space(c) {
        return Class::Whitespace;
    }
    match get_general_category(c) {
        Gc::UppercaseLetter
        | Gc::LowercaseLetter
        | Gc::TitlecaseLetter
        | Gc::ModifierLetter
        | Gc::OtherLetter => Class::Letter,
        Gc::DecimalNumber | Gc::LetterNumber | Gc::OtherNumber => Class::Number,
        _ => Class::Other,
    }
}

/// `\p{P}`: any punctuation category.
pub(crate) fn is_punctuation(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_punctuation()
            && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~');
    }
    matches!(
        get_general_category(c),
        Gc::ConnectorPunctuation
            | Gc::DashPunctuation
            | Gc::OpenPunctuation
            | Gc::ClosePunctuation
            | Gc::InitialPunctuation
            | Gc::FinalPunctuation
            | Gc::OtherPunctuation
    )
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves,
/// the other 68 bytes to U+0100.. in byte order.
pub(crate) fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
        let cp = if printable {
            u32::from(b)
        } else {
            n += 1;
            255 + n
        };
        // Every value is below U+0144, so always a valid char.
        table[usize::from(b)] = char::from_u32(cp).unwrap_or('\0');
    }
    table
}

/// The inverse of [`byte_to_char_table`].
pub(crate) fn char_to_byte(c: char) -> Option<u8> {
    let cp = c as u32;
    match cp {
        0x21..=0x7e | 0xa1..=0xac | 0xae..=0xff => Some(cp as u8),
        // The 68 unprintable bytes in order: 0x00..=0x20, 0x7f..=0xa0, 0xad.
        0x100..=0x120 => Some((cp - 0x100) as u8),
        0x121..=0x142 => Some((cp - 0x121 + 0x7f) as u8),
        0x143 => Some(0xad),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_matches_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[usize::from(b' ')], 'Ġ');
        assert_eq!(t[usize::from(b'\n')], 'Ċ');
        assert_eq!(t[usize::from(b'!')], '!');
        assert_eq!(t[0], 'Ā');
        assert_eq!(t[0xad], 'Ń');
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            assert!(seen.insert(t[usize::from(b)]));
            assert_eq!(char_to_byte(t[usize::from(b)]), Some(b));
        }
        assert_eq!(char_to_byte('é'), Some(0xe9));
        assert_eq!(char_to_byte('€'), None);
        assert_eq!(char_to_byte(' '), None);
    }

    #[test]
    fn classes_follow_unicode_categories() {
        assert_eq!(class('é'), Class::Letter);
        assert_eq!(class('中'), Class::Letter);
        assert_eq!(class('ع'), Class::Letter);
        assert_eq!(class('²'), Class::Number);
        assert_eq!(class('Ⅻ'), Class::Number);
        assert_eq!(class('٣'), Class::Number);
        assert_eq!(class('\u{3000}'), Class::Whitespace);
        assert_eq!(class('\u{a0}'), Class::Whitespace);
        assert_eq!(class('\u{200d}'), Class::Other); // ZWJ is Cf
        assert_eq!(class('\u{301}'), Class::Other); // combining acute is Mn
        assert_eq!(class('😀'), Class::Other);
        assert_eq!(class('\u{1f3fd}'), Class::Other); // skin tone modifier (Sk)
        assert!(is_punctuation('!'));
        assert!(is_punctuation('。'));
        assert!(!is_punctuation('$'));
        assert!(!is_punctuation('a'));
    }
}
