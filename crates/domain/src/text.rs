//! Text people type. Control characters (NUL and the other C0/C1 codes, except the line breaks
//! and tab of multi-line fields) are refused with a message naming the field, the same on every
//! database: PostgreSQL cannot store NUL in text, SQLite would store it silently.

use crate::Msg;

/// Why a text was refused: the field is named so the message can say which.
pub fn control_char_error(field: &str) -> Msg {
    Msg::new("err-control-chars").arg("field", field)
}

/// A character no text field accepts. Line breaks and tab are allowed where `multiline`.
pub fn is_forbidden(c: char, multiline: bool) -> bool {
    c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t'))
        // Bidirectional overrides can disguise what a name or address says.
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A one-line field (a name, a phone, an address line): no control characters at all.
pub fn line(s: &str, field: &str) -> Result<(), Msg> {
    if s.chars().any(|c| is_forbidden(c, false)) {
        Err(control_char_error(field))
    } else {
        Ok(())
    }
}

/// A multi-line field (a description, a reason): line breaks and tabs are fine.
pub fn multiline(s: &str, field: &str) -> Result<(), Msg> {
    if s.chars().any(|c| is_forbidden(c, true)) {
        Err(control_char_error(field))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_refused_with_the_field_named() {
        assert!(line("Doña Ana, casa azul", "name").is_ok());
        assert!(line("আম", "name").is_ok());
        let e = line("bad\0name", "name").unwrap_err();
        assert_eq!(e.key, "err-control-chars");
        assert_eq!(e.args, vec![("field", "name".to_string())]);
        assert!(line("two\nlines", "name").is_err());
        assert!(multiline("two\nlines\tand tab\r\n", "description").is_ok());
        assert!(multiline("nul\0", "description").is_err());
        assert!(multiline("bell\u{7}", "description").is_err());
        assert!(line("c1\u{85}", "name").is_err());
        assert!(line("abc\u{202E}cba", "name").is_err());
    }
}
