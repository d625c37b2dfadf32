//! Agent commissions. A rule (per centre, per category, or both; a percentage or a fixed amount;
//! an optional cap) gives the agent who placed an order a commission when its escrow is
//! released. It comes out of the platform fee or the seller's proceeds, as the rule says, and is
//! never added to the buyer's price. It is computed on what is released, so a refund (in whole or
//! in part, as a dispute may split) takes back the commission on the refunded part. No I/O.

use crate::money::{Money, MoneyError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Basis points of the released amount (250 = 2.5%).
    Percent(u32),
    /// Minor units per order.
    Fixed(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    PlatformFee,
    SellerProceeds,
}

impl Source {
    pub fn as_str(&self) -> &'static str {
        match self {
            Source::PlatformFee => "platform_fee",
            Source::SellerProceeds => "seller_proceeds",
        }
    }
    pub fn parse(s: &str) -> Option<Source> {
        [Source::PlatformFee, Source::SellerProceeds]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: i64,
    /// None: every centre.
    pub centre_id: Option<i64>,
    /// None: every category.
    pub category_id: Option<i64>,
    pub basis: Basis,
    pub cap_minor: Option<i64>,
    pub source: Source,
}

impl Rule {
    /// Whether the numbers make sense (percent at most 100%, amounts not negative).
    pub fn is_valid(&self) -> bool {
        let basis = match self.basis {
            Basis::Percent(bps) => bps <= 10_000,
            Basis::Fixed(m) => m >= 0,
        };
        basis && self.cap_minor.is_none_or(|c| c >= 0)
    }
}

/// The rule for an order placed at `centre` whose main category is `category`: the most
/// specific one (centre and category, then centre, then category, then the general rule);
/// among equals, the oldest.
pub fn pick(rules: &[Rule], centre: Option<i64>, category: Option<i64>) -> Option<&Rule> {
    rules
        .iter()
        .filter(|r| r.centre_id.is_none_or(|c| Some(c) == centre))
        .filter(|r| r.category_id.is_none_or(|c| Some(c) == category))
        .max_by_key(|r| {
            (
                r.centre_id.is_some() as u8 * 2 + r.category_id.is_some() as u8,
                std::cmp::Reverse(r.id),
            )
        })
}

/// The commission on a release of `kept` (what the seller keeps before the fee) with platform
/// fee `fee`: the rule's amount, capped, and never more than its source holds.
pub fn amount(rule: &Rule, kept: Money, fee: Money) -> Result<Money, MoneyError> {
    if kept.minor <= 0 {
        return Ok(Money::zero(kept.currency));
    }
    let raw = match rule.basis {
        Basis::Percent(bps) => kept.basis_points(bps)?.minor,
        Basis::Fixed(m) => m,
    };
    let capped = rule.cap_minor.map_or(raw, |c| raw.min(c));
    let available = match rule.source {
        Source::PlatformFee => fee.minor,
        Source::SellerProceeds => kept.checked_sub(fee)?.minor,
    };
    Ok(Money::new(capped.min(available).max(0), kept.currency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Currency;
    use proptest::prelude::*;

    fn mxn(m: i64) -> Money {
        Money::new(m, Currency::parse("MXN").unwrap())
    }

    fn rule(id: i64, centre: Option<i64>, category: Option<i64>, basis: Basis) -> Rule {
        Rule {
            id,
            centre_id: centre,
            category_id: category,
            basis,
            cap_minor: None,
            source: Source::PlatformFee,
        }
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let rules = vec![
            rule(1, None, None, Basis::Percent(100)),
            rule(2, Some(7), None, Basis::Percent(200)),
            rule(3, None, Some(4), Basis::Percent(300)),
            rule(4, Some(7), Some(4), Basis::Percent(400)),
            rule(5, None, None, Basis::Percent(999)),
        ];
        assert_eq!(pick(&rules, Some(7), Some(4)).unwrap().id, 4);
        assert_eq!(pick(&rules, Some(7), Some(5)).unwrap().id, 2);
        assert_eq!(pick(&rules, Some(8), Some(4)).unwrap().id, 3);
        assert_eq!(
            pick(&rules, Some(8), None).unwrap().id,
            1,
            "the oldest general rule"
        );
        assert!(pick(&rules[1..2], Some(8), None).is_none());
    }

    #[test]
    fn caps_and_sources_bound_the_amount() {
        let mut r = rule(1, None, None, Basis::Percent(1000)); // 10%
        assert_eq!(
            amount(&r, mxn(100_000), mxn(5_000)).unwrap(),
            mxn(5_000),
            "no more than the fee"
        );
        r.source = Source::SellerProceeds;
        assert_eq!(amount(&r, mxn(100_000), mxn(5_000)).unwrap(), mxn(10_000));
        r.cap_minor = Some(2_500);
        assert_eq!(amount(&r, mxn(100_000), mxn(5_000)).unwrap(), mxn(2_500));
        let f = rule(2, None, None, Basis::Fixed(1_500));
        assert_eq!(amount(&f, mxn(100_000), mxn(5_000)).unwrap(), mxn(1_500));
        assert_eq!(
            amount(&f, mxn(0), mxn(0)).unwrap(),
            mxn(0),
            "nothing released, nothing earned"
        );
        assert!(!rule(3, None, None, Basis::Percent(10_001)).is_valid());
    }

    proptest! {
        /// Whatever the rule, the commission is never negative and never more than its source.
        #[test]
        fn never_more_than_the_source(kept in 0i64..10_000_000, fee_bps in 0u32..3000, bps in 0u32..=10_000, fixed in 0i64..1_000_000, cap in proptest::option::of(0i64..500_000), from_fee: bool, percent: bool) {
            let kept = mxn(kept);
            let fee = kept.basis_points(fee_bps).unwrap();
            let r = Rule {
                id: 1,
                centre_id: None,
                category_id: None,
                basis: if percent { Basis::Percent(bps) } else { Basis::Fixed(fixed) },
                cap_minor: cap,
                source: if from_fee { Source::PlatformFee } else { Source::SellerProceeds },
            };
            let a = amount(&r, kept, fee).unwrap().minor;
            prop_assert!(a >= 0);
            let source = if from_fee { fee.minor } else { kept.minor - fee.minor };
            prop_assert!(a <= source);
            if let Some(c) = cap { prop_assert!(a <= c); }
        }
    }
}
