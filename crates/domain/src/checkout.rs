//! The checkout split: one cart with items from several sellers becomes one order per seller,
//! paid with one payment. Prices are taken from the catalogue at checkout, never from the form.

use crate::money::{Currency, Money, MoneyError};
use std::collections::BTreeMap;

/// A cart line as the catalogue knows it at checkout time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedLine {
    pub product_id: i64,
    pub seller_id: i64,
    pub unit_price: Money,
    pub quantity: i64,
    pub stock: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderDraft {
    pub seller_id: i64,
    pub lines: Vec<(i64, i64, Money)>, // product, quantity, unit price
    pub subtotal: Money,
    pub delivery_fee: Money,
    pub total: Money,
    /// Platform fee (basis points of the subtotal), snapshotted for the later release.
    pub fee_bps: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckoutError {
    #[error("the cart is empty")]
    Empty,
    #[error("quantity must be between 1 and 999")]
    BadQuantity,
    #[error("only {available} left of product {product_id}")]
    OutOfStock { product_id: i64, available: i64 },
    #[error("the cart mixes currencies")]
    MixedCurrency,
    #[error("at most {max} different products per checkout")]
    TooManyLines { max: usize },
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl CheckoutError {
    pub fn msg(&self) -> crate::Msg {
        use crate::Msg;
        match self {
            CheckoutError::Empty => Msg::new("err-cart-empty"),
            CheckoutError::BadQuantity => Msg::new("err-quantity"),
            CheckoutError::OutOfStock {
                product_id,
                available,
            } => Msg::new("err-out-of-stock")
                .arg("product", product_id)
                .arg("available", available),
            CheckoutError::MixedCurrency => Msg::new("err-currency-mismatch"),
            CheckoutError::TooManyLines { max } => Msg::new("err-too-many-lines").arg("max", max),
            CheckoutError::Money(m) => m.msg(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Fees {
    pub platform_bps: u32,
    /// Flat delivery fee charged once per seller order.
    pub delivery_per_order: i64,
}

/// Most units of one product in one checkout.
pub const MAX_QUANTITY: i64 = 999;

/// The lines a buyer asked for, checked and merged before anything is written: every line's
/// quantity is 1 to [`MAX_QUANTITY`] as sent, lines naming the same product add up (and stay
/// within the limit), at most `max_lines` different products, sorted by product (the order in
/// which stock rows are locked). Linear in the number of lines, plus the sort.
pub fn merge_lines(
    lines: &[(i64, i64)],
    max_lines: usize,
) -> Result<Vec<(i64, i64)>, CheckoutError> {
    if lines.is_empty() {
        return Err(CheckoutError::Empty);
    }
    // Refuse a huge request before doing any work on it.
    if lines.len() > max_lines.saturating_mul(10).max(max_lines) {
        return Err(CheckoutError::TooManyLines { max: max_lines });
    }
    let mut merged: BTreeMap<i64, i64> = BTreeMap::new();
    for &(product, qty) in lines {
        if !(1..=MAX_QUANTITY).contains(&qty) {
            return Err(CheckoutError::BadQuantity);
        }
        let q = merged.entry(product).or_insert(0);
        *q += qty;
        if *q > MAX_QUANTITY {
            return Err(CheckoutError::BadQuantity);
        }
        if merged.len() > max_lines {
            return Err(CheckoutError::TooManyLines { max: max_lines });
        }
    }
    Ok(merged.into_iter().collect())
}

/// Split a priced cart into one order draft per seller, in seller order.
pub fn split(lines: &[PricedLine], fees: Fees) -> Result<(Vec<OrderDraft>, Money), CheckoutError> {
    let first = lines.first().ok_or(CheckoutError::Empty)?;
    let cur: Currency = first.unit_price.currency;
    let mut by_seller: BTreeMap<i64, Vec<&PricedLine>> = BTreeMap::new();
    for l in lines {
        if !(1..=999).contains(&l.quantity) {
            return Err(CheckoutError::BadQuantity);
        }
        if l.unit_price.currency != cur {
            return Err(CheckoutError::MixedCurrency);
        }
        if l.quantity > l.stock {
            return Err(CheckoutError::OutOfStock {
                product_id: l.product_id,
                available: l.stock.max(0),
            });
        }
        by_seller.entry(l.seller_id).or_default().push(l);
    }
    let mut drafts = Vec::new();
    let mut grand = Money::zero(cur);
    for (seller_id, ls) in by_seller {
        let mut subtotal = Money::zero(cur);
        for l in &ls {
            subtotal = subtotal.checked_add(l.unit_price.checked_mul(l.quantity)?)?;
        }
        let delivery_fee = Money::new(fees.delivery_per_order, cur);
        let total = subtotal.checked_add(delivery_fee)?;
        grand = grand.checked_add(total)?;
        drafts.push(OrderDraft {
            seller_id,
            lines: ls
                .iter()
                .map(|l| (l.product_id, l.quantity, l.unit_price))
                .collect(),
            subtotal,
            delivery_fee,
            total,
            fee_bps: fees.platform_bps,
        });
    }
    Ok((drafts, grand))
}

/// Why a checkout cannot be paid again another way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayAgainError {
    /// Its payment did not fail (it is paid, or still being asked of the provider).
    NotFailed,
    /// An order of it no longer waits for its money (it expired or was cancelled).
    NotWaiting,
}

impl PayAgainError {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new(match self {
            PayAgainError::NotFailed => "err-pay-again-not-failed",
            PayAgainError::NotWaiting => "err-pay-again-not-waiting",
        })
    }
}

/// Whether a checkout may be paid again, by the same or another method: only once its latest
/// payment failed (declined, or the provider gave up waiting), so no two payments are ever
/// open for one checkout, and only while every order of it still waits for its money.
pub fn may_pay_again(
    latest: crate::kinds::PaymentStatus,
    orders: &[crate::process::OrderState],
) -> Result<(), PayAgainError> {
    if latest != crate::kinds::PaymentStatus::Failed {
        return Err(PayAgainError::NotFailed);
    }
    if orders.is_empty()
        || orders
            .iter()
            .any(|s| *s != crate::process::OrderState::Placed)
    {
        return Err(PayAgainError::NotWaiting);
    }
    Ok(())
}

/// A checkout's idempotency key as a device sends it: at most 100 printable ASCII characters,
/// not all spaces (the API's document says the same). The key kept is the one given, with the
/// spaces at its ends trimmed; None when it is not a key.
pub fn idempotency_key(raw: &str) -> Option<&str> {
    if raw.len() > 100 || !raw.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return None;
    }
    Some(raw.trim_matches(' ')).filter(|k| !k.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idempotency_key_is_printable_ascii_of_at_most_a_hundred() {
        assert_eq!(idempotency_key(" 0a1b "), Some("0a1b"));
        assert_eq!(idempotency_key(&"k".repeat(100)).map(str::len), Some(100));
        for bad in ["", "   ", "a\tb", "caf\u{e9}", &"k".repeat(101)] {
            assert_eq!(idempotency_key(bad), None, "{bad:?}");
        }
    }

    fn m(x: i64) -> Money {
        Money::new(x, Currency::parse("MXN").unwrap())
    }
    fn line(p: i64, s: i64, price: i64, q: i64) -> PricedLine {
        PricedLine {
            product_id: p,
            seller_id: s,
            unit_price: m(price),
            quantity: q,
            stock: 5,
        }
    }
    #[test]
    fn one_order_per_seller_and_totals_add_up() {
        let fees = Fees {
            platform_bps: 500,
            delivery_per_order: 3000,
        };
        let (drafts, grand) = split(
            &[line(1, 2, 1000, 2), line(2, 1, 500, 1), line(3, 2, 250, 4)],
            fees,
        )
        .unwrap();
        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[0].seller_id, 1);
        assert_eq!(drafts[0].total, m(3500));
        assert_eq!(drafts[1].subtotal, m(3000));
        assert_eq!(grand, m(3500 + 6000));
    }
    #[test]
    fn lines_are_checked_before_they_are_merged() {
        assert_eq!(
            merge_lines(&[(2, 1), (1, 3), (2, 4)], 100),
            Ok(vec![(1, 3), (2, 5)])
        );
        assert_eq!(merge_lines(&[], 100), Err(CheckoutError::Empty));
        // A negative line cannot hide inside a positive total.
        assert_eq!(
            merge_lines(&[(1, 5), (1, -3)], 100),
            Err(CheckoutError::BadQuantity)
        );
        assert_eq!(merge_lines(&[(1, 0)], 100), Err(CheckoutError::BadQuantity));
        assert_eq!(
            merge_lines(&[(1, 999), (1, 1)], 100),
            Err(CheckoutError::BadQuantity)
        );
        let many: Vec<(i64, i64)> = (0..101).map(|p| (p, 1)).collect();
        assert_eq!(
            merge_lines(&many, 100),
            Err(CheckoutError::TooManyLines { max: 100 })
        );
        assert_eq!(merge_lines(&many[..100], 100).map(|v| v.len()), Ok(100));
        // 256,000 lines of one product are refused at once, not summed.
        let flood = vec![(7, 1); 256_000];
        assert_eq!(
            merge_lines(&flood, 100),
            Err(CheckoutError::TooManyLines { max: 100 })
        );
    }
    #[test]
    fn refuses_bad_carts() {
        let fees = Fees {
            platform_bps: 0,
            delivery_per_order: 0,
        };
        assert_eq!(split(&[], fees), Err(CheckoutError::Empty));
        assert_eq!(
            split(&[line(1, 1, 1, 0)], fees),
            Err(CheckoutError::BadQuantity)
        );
        assert_eq!(
            split(&[line(1, 1, 1, 6)], fees),
            Err(CheckoutError::OutOfStock {
                product_id: 1,
                available: 5
            })
        );
    }

    #[test]
    fn a_checkout_is_paid_again_only_after_its_payment_failed() {
        use crate::kinds::PaymentStatus as P;
        use crate::process::OrderState as S;
        assert_eq!(may_pay_again(P::Failed, &[S::Placed, S::Placed]), Ok(()));
        for open in [
            P::Pending,
            P::AwaitingCash,
            P::OnDelivery,
            P::Succeeded,
            P::Replaced,
        ] {
            assert_eq!(
                may_pay_again(open, &[S::Placed]),
                Err(PayAgainError::NotFailed),
                "{open:?}"
            );
        }
        assert_eq!(
            may_pay_again(P::Failed, &[S::Placed, S::Cancelled]),
            Err(PayAgainError::NotWaiting)
        );
        assert_eq!(
            may_pay_again(P::Failed, &[]),
            Err(PayAgainError::NotWaiting)
        );
    }
}
