//! What a payment provider says about a payment is believed only when it is about the payment
//! we asked for: our reference, the amount and the currency. A provider that answers about
//! another payment (a reference reused after a restore, a mix-up on its side) is refused and
//! the answer is shown to an official, never applied.

use crate::money::Money;

/// What we asked the provider to collect.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub reference: &'a str,
    pub amount: Money,
}

/// What the provider's answer (a callback, a status query, a request's reply) says it is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    pub reference: Option<&'a str>,
    pub amount_minor: Option<i64>,
    pub currency: Option<&'a str>,
}

/// Why an answer was refused: which field, what we asked, what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// `reference`, `amount` or `currency`.
    pub field: &'static str,
    pub ours: String,
    /// What the provider said ("" when it did not say).
    pub theirs: String,
}

impl Mismatch {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new("provider-mismatch")
            .arg("field", self.field)
            .arg("ours", &self.ours)
            .arg("theirs", &self.theirs)
    }
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "provider answer is about another payment: {} ours {} theirs {}",
            self.field,
            self.ours,
            if self.theirs.is_empty() {
                "(none)"
            } else {
                &self.theirs
            }
        )
    }
}

/// Check an answer against what was asked: every field must be there and equal.
pub fn check(asked: &Asked<'_>, answer: &Answer<'_>) -> Result<(), Mismatch> {
    let differ = |field, ours: String, theirs: Option<String>| {
        if theirs.as_deref() == Some(ours.as_str()) {
            Ok(())
        } else {
            Err(Mismatch {
                field,
                ours,
                theirs: theirs.unwrap_or_default(),
            })
        }
    };
    differ(
        "reference",
        asked.reference.to_string(),
        answer.reference.map(str::to_string),
    )?;
    differ(
        "currency",
        asked.amount.currency.as_str().to_string(),
        answer.currency.map(str::to_string),
    )?;
    differ(
        "amount",
        asked.amount.minor.to_string(),
        answer.amount_minor.map(|a| a.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;

    #[test]
    fn only_an_answer_about_our_payment_is_believed() {
        let mxn = Currency::parse("MXN").unwrap();
        let asked = Asked {
            reference: "tianguis-8f3a",
            amount: Money::new(760_200, mxn),
        };
        let good = Answer {
            reference: Some("tianguis-8f3a"),
            amount_minor: Some(760_200),
            currency: Some("MXN"),
        };
        assert_eq!(check(&asked, &good), Ok(()));
        // What a restored database met: the provider's old payment under a reused reference.
        let old = Answer {
            amount_minor: Some(363_000),
            ..good
        };
        let m = check(&asked, &old).unwrap_err();
        assert_eq!(
            (m.field, m.ours.as_str(), m.theirs.as_str()),
            ("amount", "760200", "363000")
        );
        assert_eq!(
            check(
                &asked,
                &Answer {
                    currency: Some("USD"),
                    ..good
                }
            )
            .unwrap_err()
            .field,
            "currency"
        );
        assert_eq!(
            check(
                &asked,
                &Answer {
                    reference: Some("tianguis-1"),
                    ..good
                }
            )
            .unwrap_err()
            .field,
            "reference"
        );
        // An answer that does not say what it is about is not believed either.
        let silent = check(&asked, &Answer::default()).unwrap_err();
        assert_eq!((silent.field, silent.theirs.as_str()), ("reference", ""));
        assert!(silent.to_string().contains("(none)"));
    }
}
