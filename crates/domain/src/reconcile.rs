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

/// One payment as a statement lists it (ours, or the provider's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    pub reference: &'a str,
    /// `pending`, `succeeded`, `failed` (ours may also be `replaced`: failed, then paid
    /// another way).
    pub status: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
}

/// Our mobile-money payments held against the provider's statement of account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Statement {
    /// Ours differs from theirs in amount or currency, ours is succeeded and theirs is not (or
    /// they never had it), or ours failed where theirs succeeded: the index in `ours`.
    pub misapplied: Vec<usize>,
    /// Theirs is settled and ours still pending: to be asked about (not wrong while a job asks).
    pub awaiting: usize,
    /// Settled alike on both sides.
    pub agreed: usize,
    /// The provider holds payments under references we do not know (made after the backup
    /// a database was restored from, for instance): money an official must look into.
    pub unknown_to_us: usize,
}

/// Compare the two sides, by our reference.
pub fn statement(ours: &[Line<'_>], theirs: &[Line<'_>]) -> Statement {
    use std::collections::{HashMap, HashSet};
    let by_ref: HashMap<&str, &Line<'_>> = theirs.iter().map(|l| (l.reference, l)).collect();
    let mut st = Statement::default();
    let mut known = HashSet::new();
    for (i, o) in ours.iter().enumerate() {
        known.insert(o.reference);
        let Some(t) = by_ref.get(o.reference) else {
            if o.status == "succeeded" {
                st.misapplied.push(i);
            }
            continue;
        };
        if t.amount_minor != o.amount_minor || t.currency != o.currency {
            st.misapplied.push(i);
            continue;
        }
        match (o.status, t.status) {
            ("succeeded", "succeeded") | ("failed" | "replaced", "failed") => st.agreed += 1,
            ("pending", "succeeded" | "failed") => st.awaiting += 1,
            ("pending", "pending") => {}
            _ => st.misapplied.push(i),
        }
    }
    st.unknown_to_us = theirs
        .iter()
        .filter(|t| !known.contains(t.reference))
        .count();
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_agree_only_on_the_same_payment_settled_alike() {
        let l = |reference, status, amount_minor| Line {
            reference,
            status,
            amount_minor,
            currency: "MXN",
        };
        let ours = [
            l("a", "succeeded", 100),
            l("b", "failed", 100),
            l("c", "pending", 100),
            l("d", "succeeded", 100),
            l("e", "succeeded", 100),
            l("f", "failed", 100),
            l("g", "pending", 100),
            l("h", "replaced", 100),
        ];
        let theirs = [
            l("a", "succeeded", 100),
            l("b", "failed", 100),
            l("c", "succeeded", 100),
            // d: charged a different amount; e: never reached them; f: they took the money.
            l("d", "succeeded", 90),
            l("f", "succeeded", 100),
            l("g", "pending", 100),
            l("h", "failed", 100),
            l("z", "succeeded", 100),
        ];
        let st = statement(&ours, &theirs);
        assert_eq!(st.misapplied, [3, 4, 5]);
        assert_eq!((st.agreed, st.awaiting, st.unknown_to_us), (3, 1, 1));
        let mut other = theirs;
        other[0].currency = "USD";
        assert_eq!(statement(&ours[..1], &other[..1]).misapplied, [0]);
    }
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
