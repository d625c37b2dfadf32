//! Text normalisation for search: case-folded, Latin accents removed, split into terms. Scripts
//! whose vowel signs are combining marks (Bangla, Devanagari) keep them: only the generic
//! combining diacritics block (U+0300..U+036F) is dropped after canonical decomposition.

use unicode_normalization::UnicodeNormalization;

/// Lowercase, strip Latin diacritics, recompose (NFC) so Bangla conjuncts compare equal.
pub fn fold(text: &str) -> String {
    let stripped: String = text
        .nfd()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .collect();
    stripped.nfc().collect::<String>().to_lowercase()
}

/// The distinct search terms of a text, at most 64 chars each.
pub fn terms(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut out: Vec<String> = Vec::new();
    for w in folded.split(|c: char| !(c.is_alphanumeric() || is_joining_mark(c))) {
        if w.is_empty() {
            continue;
        }
        let w: String = w.chars().take(64).collect();
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Combining marks inside words (Bangla vowel signs, virama, ZWJ/ZWNJ) are part of the word.
fn is_joining_mark(c: char) -> bool {
    matches!(c, '\u{0980}'..='\u{09FF}' | '\u{0900}'..='\u{097F}' | '\u{200C}' | '\u{200D}')
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn accents_and_case() {
        assert_eq!(terms("Café de Olla, CAFÉ!"), vec!["cafe", "de", "olla"]);
        assert_eq!(fold("Jabón artesanal"), "jabon artesanal");
        assert_eq!(fold("ÑANDÚ"), "nandu");
    }
    #[test]
    fn bangla_keeps_vowel_signs() {
        // "নকশি কাঁথা" (nakshi kantha): the candrabindu and vowel signs must survive.
        let t = terms("নকশি কাঁথা");
        assert_eq!(t, vec!["নকশি", "কাঁথা"]);
        assert_eq!(terms("কাঁথা")[0], t[1]);
    }
}
