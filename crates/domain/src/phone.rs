//! Phone numbers as people type them, normalised to `+` and digits (E.164 shape).

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a phone number: use 7 to 15 digits, optionally starting with +")]
pub struct PhoneError(pub String);

impl PhoneError {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new("err-phone").arg("input", &self.0)
    }
}

impl PhoneNumber {
    /// Accepts spaces, dashes, dots and brackets; keeps a leading `+`.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let t = input.trim();
        let plus = t.starts_with('+');
        let mut digits = String::new();
        for (i, c) in t.chars().enumerate() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => {}
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(PhoneError(input.to_string())),
            }
        }
        if !(7..=15).contains(&digits.len()) {
            return Err(PhoneError(input.to_string()));
        }
        Ok(PhoneNumber(if plus {
            format!("+{digits}")
        } else {
            digits
        }))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn normalises() {
        assert_eq!(
            PhoneNumber::parse("+52 (951) 123-4567").unwrap().as_str(),
            "+529511234567"
        );
        assert_eq!(
            PhoneNumber::parse("01711 000111").unwrap().as_str(),
            "01711000111"
        );
        assert!(PhoneNumber::parse("12ab5678").is_err());
        assert!(PhoneNumber::parse("123").is_err());
        assert!(PhoneNumber::parse("1+23456789").is_err());
    }
}
