//! Stop strings on a stream of text: text is released as soon as it can no
//! longer be the start of a stop string, and cut where one matches.

/// Watches generated text for any of the request's stop strings.
#[derive(Debug, Default)]
pub(super) struct StopMatcher {
    stops: Vec<String>,
    /// Text received but not yet released: it may still begin a stop string.
    held: String,
}

/// What the matcher says about the text pushed so far.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum StopState {
    /// Text safe to send; keep generating.
    Running(String),
    /// A stop string matched: the text before it, and generation ends.
    Stopped(String),
}

impl StopMatcher {
    pub(super) fn new(stops: Vec<String>) -> Self {
        Self {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            held: String::new(),
        }
    }

    pub(super) fn push(&mut self, text: &str) -> StopState {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return StopState::Stopped(before);
        }
        // Hold back the longest suffix that is a proper prefix of a stop string.
        let keep = self
            .stops
            .iter()
            .map(|s| longest_suffix_prefix(&self.held, s))
            .max()
            .unwrap_or(0);
        let release = self.held.len() - keep;
        let out = self.held[..release].to_owned();
        self.held.drain(..release);
        StopState::Running(out)
    }

    /// Whatever is held when generation ends for another reason.
    pub(super) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

/// Length in bytes of the longest suffix of `text` that is a proper prefix of
/// `stop`, on character boundaries.
fn longest_suffix_prefix(text: &str, stop: &str) -> usize {
    let max = stop.len().saturating_sub(1).min(text.len());
    (1..=max)
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n)
                && stop.is_char_boundary(n)
                && text.ends_with(&stop[..n])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&str]) -> (String, bool) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()).collect());
        let mut out = String::new();
        for p in pieces {
            match m.push(p) {
                StopState::Running(t) => out.push_str(&t),
                StopState::Stopped(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&m.finish());
        (out, false)
    }

    #[test]
    fn cuts_at_a_stop_split_across_pieces() {
        assert_eq!(
            run(&["\n\n"], &["Hello", " world\n", "\nMore"]),
            ("Hello world".into(), true)
        );
        assert_eq!(
            run(&["END", "stop"], &["a s", "to", "p b"]),
            ("a ".into(), true)
        );
    }

    #[test]
    fn releases_text_that_cannot_start_a_stop() {
        let mut m = StopMatcher::new(vec!["xyz".into()]);
        assert_eq!(m.push("abcx"), StopState::Running("abc".into()));
        assert_eq!(m.push("a"), StopState::Running("xa".into()));
        assert_eq!(run(&["xyz"], &["abx", "y"]), ("abxy".into(), false));
        assert_eq!(run(&[], &["a", "b"]), ("ab".into(), false));
    }

    #[test]
    fn handles_multibyte_text() {
        assert_eq!(run(&["é!"], &["café", "!x"]), ("caf".into(), true));
        assert_eq!(run(&["🙂"], &["ok 🙂 no"]), ("ok ".into(), true));
    }
}
