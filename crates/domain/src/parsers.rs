//! Property tests of every parser of outside input in the domain: arbitrary text is a clear
//! error or a value, never a panic, and what parses reads back the same way. The number of
//! cases per property is `TIANGUIS_FUZZ_CASES` (256 by default; set it high for a long run).

use crate::kinds::{PaymentMethod, PaymentStatus, bank_account};
use crate::money::{Currency, Money};
use crate::phone::{PhoneNumber, Region};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("TIANGUIS_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Text people type into a phone field: digits and the separators, with some noise.
fn phone_like() -> impl Strategy<Value = String> {
    prop_oneof!["[+0-9 ().-]{0,24}", "\\+?[0-9]{1,17}", "\\PC{0,24}",]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// A phone parses to E.164 (a plus and 7 to 15 digits) or is refused; parsing the result
    /// again, in any region, gives it back unchanged.
    #[test]
    fn phones(s in phone_like(), region in prop::sample::select(vec!["MX", "BD", "KE", "US", "IN"])) {
        let r = Region::parse(region).ok();
        match PhoneNumber::parse(&s, r) {
            Ok(p) => {
                let e = p.as_str();
                prop_assert!(e.starts_with('+') && (8..=16).contains(&e.len()), "{e}");
                prop_assert!(e[1..].bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(PhoneNumber::parse(e, None).map(|q| q.as_str().to_string()), Ok(e.to_string()));
                prop_assert_eq!(PhoneNumber::parse(e, Region::parse("KE").ok()).map(|q| q.as_str().to_string()), Ok(e.to_string()));
                prop_assert!(PhoneNumber::stored(e).is_ok());
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    /// Country codes: two letters libphonenumber knows, or an error.
    #[test]
    fn regions(s in "\\PC{0,4}") {
        if let Ok(r) = Region::parse(&s) {
            prop_assert_eq!(r.code().len(), 2);
            prop_assert_eq!(Region::parse(r.code()), Ok(r));
        }
    }

    /// Amounts as typed: never a panic; what parses formats back to the same amount.
    #[test]
    fn amounts(s in prop_oneof!["[0-9.,-]{0,14}", "\\PC{0,16}"], code in prop::sample::select(vec!["MXN", "BDT", "KES", "JPY", "KWD"])) {
        let cur = Currency::parse(code).unwrap();
        if let Ok(m) = Money::parse_decimal(&s, cur) {
            prop_assert_eq!(Money::parse_decimal(&m.to_decimal(), cur), Ok(m));
        }
    }

    /// Bank accounts: tidied once, the same the second time.
    #[test]
    fn bank_accounts(s in prop_oneof!["[A-Za-z0-9 ./-]{0,40}", "\\PC{0,40}"]) {
        if let Some(a) = bank_account(&s) {
            prop_assert_eq!(bank_account(&a), Some(a.clone()));
            prop_assert!(a.chars().count() <= 80);
        }
    }

    /// Stored words (methods, statuses) read back, and anything else is None.
    #[test]
    fn stored_words(s in "\\PC{0,16}") {
        if let Some(m) = PaymentMethod::parse(&s) {
            prop_assert_eq!(m.as_str(), s.as_str());
        }
        if let Some(st) = PaymentStatus::parse(&s) {
            prop_assert_eq!(st.as_str(), s.as_str());
        }
        let _ = crate::payout::Payee::parse(&s);
        let _ = crate::process::Transition::parse(&s);
    }

    /// Free text people send (names, reasons, texts to be sent): checked or prepared for SMS
    /// without a panic, whatever the alphabet.
    #[test]
    fn free_text(s in "\\PC{0,400}") {
        let _ = crate::text::line(&s, "name");
        let _ = crate::text::multiline(&s, "description");
        let p = crate::sms::prepare(&s);
        let _ = p;
        let _ = crate::search::terms(&s);
    }
}
