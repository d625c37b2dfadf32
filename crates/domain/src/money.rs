//! Money as integer minor units with an ISO-4217 currency. Never a float.

use std::fmt;

/// An ISO-4217 alphabetic code, e.g. `MXN`, `BDT`, `KES`. Only valid codes can be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let b = code.trim().as_bytes();
        if b.len() == 3 && b.iter().all(|c| c.is_ascii_uppercase()) {
            Ok(Currency([b[0], b[1], b[2]]))
        } else {
            Err(MoneyError::BadCurrency(code.to_string()))
        }
    }
    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
    /// Digits after the decimal point (ISO-4217 exponent) for the currencies we know; 2 otherwise.
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "CLP" | "PYG" | "UGX" | "RWF" | "VND" | "XOF" | "XAF" => 0,
            "KWD" | "BHD" | "OMR" | "TND" | "JOD" => 3,
            _ => 2,
        }
    }
}

impl std::ops::Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money::new(-self.minor, self.currency)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}
impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.as_str().to_string()
    }
}
impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("'{0}' is not a three-letter currency code")]
    BadCurrency(String),
    #[error("cannot combine {0} with {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
    #[error("'{0}' is not an amount (use digits, e.g. 12.50)")]
    BadAmount(String),
    #[error("an amount may not be negative")]
    Negative,
    #[error("'{text}' has more than {digits} digits after the decimal point")]
    TooManyDecimals { text: String, digits: u32 },
}

impl MoneyError {
    pub fn msg(&self) -> crate::Msg {
        use crate::Msg;
        match self {
            MoneyError::BadCurrency(c) => Msg::new("err-currency").arg("code", c),
            MoneyError::CurrencyMismatch(..) => Msg::new("err-currency-mismatch"),
            MoneyError::Overflow => Msg::new("err-amount-range"),
            MoneyError::BadAmount(t) => Msg::new("err-amount").arg("text", t),
            MoneyError::Negative => Msg::new("err-amount-negative"),
            MoneyError::TooManyDecimals { text, digits } => Msg::new("err-amount-decimals")
                .arg("text", text)
                .arg("digits", digits),
        }
    }
}

/// An amount in minor units (cents, paisa, centavos) of one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Self {
        Money { minor, currency }
    }
    pub fn zero(currency: Currency) -> Self {
        Money { minor: 0, currency }
    }
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.minor
            .checked_add(other.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or(MoneyError::Overflow)
    }
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same(other)?;
        self.minor
            .checked_sub(other.minor)
            .map(|m| Money::new(m, self.currency))
            .ok_or(MoneyError::Overflow)
    }
    pub fn checked_mul(self, qty: i64) -> Result<Money, MoneyError> {
        self.minor
            .checked_mul(qty)
            .map(|m| Money::new(m, self.currency))
            .ok_or(MoneyError::Overflow)
    }
    /// `self * bps / 10_000`, rounded half up (fees are quoted in basis points).
    pub fn basis_points(self, bps: u32) -> Result<Money, MoneyError> {
        let v = (self.minor as i128) * (bps as i128);
        let r = (v + 5_000).div_euclid(10_000);
        i64::try_from(r)
            .map(|m| Money::new(m, self.currency))
            .map_err(|_| MoneyError::Overflow)
    }
    fn same(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }

    /// Parse a decimal amount typed by a person ("12", "12.5", "12,50", "1 200.00") into minor
    /// units. Grouping separators (space, apostrophe) are ignored; the last `.` or `,` is the
    /// decimal mark when followed by at most `exponent` digits.
    /// The amount as a plain decimal ("1234.50"), for messages and forms.
    pub fn to_decimal(&self) -> String {
        let exp = self.currency.exponent();
        let scale = 10i64.pow(exp);
        let sign = if self.minor < 0 { "-" } else { "" };
        let abs = self.minor.unsigned_abs();
        if exp == 0 {
            return format!("{sign}{abs}");
        }
        format!(
            "{sign}{}.{:0w$}",
            abs / scale as u64,
            abs % scale as u64,
            w = exp as usize
        )
    }

    pub fn parse_decimal(text: &str, currency: Currency) -> Result<Money, MoneyError> {
        let bad = || MoneyError::BadAmount(text.to_string());
        let t: String = text
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '\'' | '\u{a0}' | '_'))
            .collect();
        if t.starts_with('-') {
            return Err(MoneyError::Negative);
        }
        if t.is_empty() || t.len() > 24 {
            return Err(bad());
        }
        // Digits and separators only, before anything is sliced: text in another script is
        // a clear error, never a cut through a character.
        if !t
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == ',')
        {
            return Err(bad());
        }
        let exp = currency.exponent() as usize;
        let too_precise = || MoneyError::TooManyDecimals {
            text: text.to_string(),
            digits: exp as u32,
        };
        let (int_part, frac_part) = match t.rfind(['.', ',']) {
            Some(i) => {
                let sep = t.as_bytes()[i];
                let digits = t.len() - i - 1;
                let repeated = t[..i].bytes().any(|b| b == sep);
                if digits == 0 {
                    return Err(bad());
                } else if digits <= exp {
                    (&t[..i], &t[i + 1..])
                } else if digits == 3 && (exp == 0 || sep == b',' || repeated) {
                    // "1,200", "1.234.567", or any separator where there are no decimals.
                    (&t[..], "")
                } else if digits == 3 {
                    // "12.345": twelve and more decimals than the currency has, or twelve
                    // thousand? Never guessed.
                    return Err(too_precise());
                } else if t[i + 1 + exp..].bytes().all(|b| b == b'0') {
                    // "1500.0" for a currency without decimals: the zeros change nothing.
                    (&t[..i], &t[i + 1..i + 1 + exp])
                } else {
                    return Err(too_precise());
                }
            }
            None => (&t[..], ""),
        };
        let int_digits: String = int_part
            .chars()
            .filter(|c| !matches!(c, '.' | ','))
            .collect();
        if int_digits.is_empty() && frac_part.is_empty() {
            return Err(bad());
        }
        if !int_digits.chars().all(|c| c.is_ascii_digit())
            || !frac_part.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: i64 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| MoneyError::Overflow)?
        };
        let mut frac: i64 = if frac_part.is_empty() {
            0
        } else {
            frac_part.parse().map_err(|_| bad())?
        };
        for _ in frac_part.len()..exp {
            frac *= 10;
        }
        let scale = 10i64.pow(exp as u32);
        whole
            .checked_mul(scale)
            .and_then(|w| w.checked_add(frac))
            .map(|m| Money::new(m, currency))
            .ok_or(MoneyError::Overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn mxn() -> Currency {
        Currency::parse("MXN").unwrap()
    }
    #[test]
    fn currency_codes() {
        assert!(Currency::parse("mxn").is_err());
        assert!(Currency::parse("MX").is_err());
        assert_eq!(Currency::parse("BDT").unwrap().as_str(), "BDT");
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
    }
    #[test]
    fn parses_amounts() {
        let p = |s| Money::parse_decimal(s, mxn()).map(|m| m.minor);
        assert_eq!(p("12"), Ok(1200));
        assert_eq!(p("12.5"), Ok(1250));
        assert_eq!(p("12,50"), Ok(1250));
        assert_eq!(p("1 200.00"), Ok(120000));
        assert_eq!(p("1,200"), Ok(120000));
        assert_eq!(p("0.05"), Ok(5));
        assert!(p("-1").is_err());
        assert!(p("abc").is_err());
        assert!(p("1.234.5678").is_err());
        assert!(p("").is_err());
        assert!(p("99999999999999999999").is_err());
        // More decimals than the currency has is refused, never read as thousands.
        assert!(matches!(
            p("12.345"),
            Err(MoneyError::TooManyDecimals { digits: 2, .. })
        ));
        assert!(p("12.3456").is_err());
        assert_eq!(p("12.3400"), Ok(1234));
        assert_eq!(p("1.234.567"), Ok(123456700));
        assert_eq!(p("1.200,50"), Ok(120050));
        assert!(p("12.").is_err());
    }
    #[test]
    fn currencies_without_decimals_take_what_forms_print() {
        let ugx = Currency::parse("UGX").unwrap();
        let p = |s| Money::parse_decimal(s, ugx).map(|m| m.minor);
        assert_eq!(p("1500"), Ok(1500));
        assert_eq!(p("1500.0"), Ok(1500));
        assert_eq!(p("1,500"), Ok(1500));
        assert_eq!(p("1.500"), Ok(1500));
        assert!(p("1500.5").is_err());
        // Another script after a separator was sliced through a character (found by the
        // parser property test): now a clear error.
        assert!(p("\\L.𑐅ᡮ").is_err());
        assert!(p("12.৫০").is_err());
        // What an edit form shows parses back to the same amount.
        for minor in [0, 5, 1500, 1_234_567] {
            let m = Money::new(minor, ugx);
            assert_eq!(Money::parse_decimal(&m.to_decimal(), ugx), Ok(m));
            let m = Money::new(minor, mxn());
            assert_eq!(Money::parse_decimal(&m.to_decimal(), mxn()), Ok(m));
        }
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(
            Money::parse_decimal("12.345", kwd).map(|m| m.minor),
            Ok(12345)
        );
    }
    #[test]
    fn basis_points_round_half_up() {
        let m = Money::new(1999, mxn());
        assert_eq!(m.basis_points(500).unwrap().minor, 100); // 99.95 -> 100
        assert_eq!(Money::new(10, mxn()).basis_points(500).unwrap().minor, 1); // 0.5 -> 1
        assert_eq!(Money::new(9, mxn()).basis_points(500).unwrap().minor, 0);
    }
    #[test]
    fn mismatched_currencies_do_not_add() {
        let bdt = Currency::parse("BDT").unwrap();
        assert!(
            Money::new(1, mxn())
                .checked_add(Money::new(1, bdt))
                .is_err()
        );
    }
}
