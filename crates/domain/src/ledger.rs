//! Double-entry ledger postings. A [`Transaction`] can only be built balanced (its postings sum
//! to zero per currency); storage applies it atomically and refuses any posting that would take
//! a non-negative account below zero. [`Book`] is an in-memory ledger used to state and test the
//! invariants; the database applies the very same transactions.

use crate::money::{Currency, Money, MoneyError};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Where money sits. `External*` accounts stand for the world outside the platform and are
/// allowed to go negative (money entering the platform is drawn from them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Account {
    /// Money paid in by buyers through a payment method (`mobile_money`, `cash`).
    ExternalPayments(String),
    /// Money that left the platform: payouts to sellers' bank or wallet.
    ExternalPayouts,
    /// Money refunded to buyers.
    ExternalRefunds,
    /// Buyer's payment for one order, held until proof of delivery.
    Escrow(i64),
    /// What the platform owes a seller.
    SellerPayable(i64),
    /// The platform's fee income.
    PlatformFees,
}

impl Account {
    pub fn may_go_negative(&self) -> bool {
        matches!(self, Account::ExternalPayments(_))
    }
    /// Stable text code stored in the database.
    pub fn code(&self) -> String {
        match self {
            Account::ExternalPayments(m) => format!("external:payments:{m}"),
            Account::ExternalPayouts => "external:payouts".into(),
            Account::ExternalRefunds => "external:refunds".into(),
            Account::Escrow(o) => format!("escrow:order:{o}"),
            Account::SellerPayable(s) => format!("seller:{s}:payable"),
            Account::PlatformFees => "platform:fees".into(),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TxKind {
    Payment,
    Release,
    Refund,
    Payout,
}

impl TxKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TxKind::Payment => "payment",
            TxKind::Release => "release",
            TxKind::Refund => "refund",
            TxKind::Payout => "payout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Posting {
    pub account: Account,
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("transaction does not balance in {0}")]
    Unbalanced(Currency),
    #[error("transaction has no postings")]
    Empty,
    #[error("account {0} would go negative")]
    WouldGoNegative(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
}

impl LedgerError {
    pub fn msg(&self) -> crate::Msg {
        use crate::Msg;
        match self {
            LedgerError::Unbalanced(_) | LedgerError::Empty => Msg::new("err-ledger-unbalanced"),
            LedgerError::WouldGoNegative(a) => Msg::new("err-insufficient-funds").arg("account", a),
            LedgerError::Money(m) => m.msg(),
        }
    }
}

/// A balanced set of postings. Fields are private so an unbalanced one cannot exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    kind: TxKind,
    order_id: Option<i64>,
    postings: Vec<Posting>,
}

impl Transaction {
    pub fn new(
        kind: TxKind,
        order_id: Option<i64>,
        postings: Vec<Posting>,
    ) -> Result<Self, LedgerError> {
        let postings: Vec<Posting> = postings
            .into_iter()
            .filter(|p| p.amount.minor != 0)
            .collect();
        if postings.is_empty() {
            return Err(LedgerError::Empty);
        }
        let mut sums: BTreeMap<Currency, i128> = BTreeMap::new();
        for p in &postings {
            *sums.entry(p.amount.currency).or_default() += p.amount.minor as i128;
        }
        if let Some((c, _)) = sums.iter().find(|(_, s)| **s != 0) {
            return Err(LedgerError::Unbalanced(*c));
        }
        Ok(Transaction {
            kind,
            order_id,
            postings,
        })
    }
    pub fn kind(&self) -> TxKind {
        self.kind
    }
    pub fn order_id(&self) -> Option<i64> {
        self.order_id
    }
    pub fn postings(&self) -> &[Posting] {
        &self.postings
    }

    /// Buyer pays for an order: the money is held in the order's escrow account.
    pub fn payment(order_id: i64, method: &str, total: Money) -> Result<Self, LedgerError> {
        Self::new(
            TxKind::Payment,
            Some(order_id),
            vec![
                Posting {
                    account: Account::ExternalPayments(method.into()),
                    amount: -total,
                },
                Posting {
                    account: Account::Escrow(order_id),
                    amount: total,
                },
            ],
        )
    }

    /// Escrow is released: `refund` back to the buyer (a dispute may split), the platform fee on
    /// what the seller keeps, and the rest payable to the seller. `held` is the escrow balance.
    pub fn settle(
        order_id: i64,
        seller_id: i64,
        held: Money,
        refund: Money,
        fee_bps: u32,
    ) -> Result<Vec<Self>, LedgerError> {
        let kept = held.checked_sub(refund)?;
        if kept.minor < 0 || refund.minor < 0 {
            return Err(LedgerError::WouldGoNegative(
                Account::Escrow(order_id).code(),
            ));
        }
        let mut out = Vec::new();
        if refund.minor > 0 {
            out.push(Self::refund(order_id, refund)?);
        }
        if kept.minor > 0 {
            let fee = kept.basis_points(fee_bps)?;
            out.push(Self::new(
                TxKind::Release,
                Some(order_id),
                vec![
                    Posting {
                        account: Account::Escrow(order_id),
                        amount: -kept,
                    },
                    Posting {
                        account: Account::PlatformFees,
                        amount: fee,
                    },
                    Posting {
                        account: Account::SellerPayable(seller_id),
                        amount: kept.checked_sub(fee)?,
                    },
                ],
            )?);
        }
        Ok(out)
    }

    /// Money held for an order goes back to the buyer.
    pub fn refund(order_id: i64, amount: Money) -> Result<Self, LedgerError> {
        Self::new(
            TxKind::Refund,
            Some(order_id),
            vec![
                Posting {
                    account: Account::Escrow(order_id),
                    amount: -amount,
                },
                Posting {
                    account: Account::ExternalRefunds,
                    amount,
                },
            ],
        )
    }

    /// A seller is paid out what the platform owes them.
    pub fn payout(seller_id: i64, amount: Money) -> Result<Self, LedgerError> {
        Self::new(
            TxKind::Payout,
            None,
            vec![
                Posting {
                    account: Account::SellerPayable(seller_id),
                    amount: -amount,
                },
                Posting {
                    account: Account::ExternalPayouts,
                    amount,
                },
            ],
        )
    }
}

/// An in-memory ledger: balances per (account, currency).
#[derive(Debug, Default, Clone)]
pub struct Book {
    balances: BTreeMap<(Account, Currency), i64>,
}

impl Book {
    pub fn balance(&self, account: &Account, currency: Currency) -> i64 {
        self.balances
            .get(&(account.clone(), currency))
            .copied()
            .unwrap_or(0)
    }
    /// Applies all postings or none.
    pub fn apply(&mut self, tx: &Transaction) -> Result<(), LedgerError> {
        let mut next = self.balances.clone();
        for p in tx.postings() {
            let b = next
                .entry((p.account.clone(), p.amount.currency))
                .or_default();
            *b = b.checked_add(p.amount.minor).ok_or(MoneyError::Overflow)?;
            if *b < 0 && !p.account.may_go_negative() {
                return Err(LedgerError::WouldGoNegative(p.account.code()));
            }
        }
        self.balances = next;
        Ok(())
    }
    pub fn sum_where(&self, currency: Currency, f: impl Fn(&Account) -> bool) -> i64 {
        self.balances
            .iter()
            .filter(|((a, c), _)| *c == currency && f(a))
            .map(|(_, b)| *b)
            .sum()
    }
    pub fn accounts(&self) -> impl Iterator<Item = (&Account, Currency, i64)> {
        self.balances.iter().map(|((a, c), b)| (a, *c, *b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c() -> Currency {
        Currency::parse("MXN").unwrap()
    }

    #[test]
    fn unbalanced_is_refused() {
        let r = Transaction::new(
            TxKind::Payment,
            None,
            vec![Posting {
                account: Account::PlatformFees,
                amount: Money::new(5, c()),
            }],
        );
        assert_eq!(r, Err(LedgerError::Unbalanced(c())));
    }

    #[test]
    fn release_cannot_overdraw_escrow() {
        let mut b = Book::default();
        b.apply(&Transaction::payment(1, "cash", Money::new(1000, c())).unwrap())
            .unwrap();
        let txs = Transaction::settle(1, 7, Money::new(2000, c()), Money::zero(c()), 500).unwrap();
        assert!(matches!(
            b.apply(&txs[0]),
            Err(LedgerError::WouldGoNegative(_))
        ));
        assert_eq!(
            b.balance(&Account::Escrow(1), c()),
            1000,
            "a refused transaction changes nothing"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Pay { order: i64, amount: i64 },
        Settle { order: i64, refund_pct: u8 },
        Payout { seller: i64, amount: i64 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..8, 1i64..1_000_000).prop_map(|(order, amount)| Op::Pay { order, amount }),
            (0i64..8, 0u8..=100).prop_map(|(order, refund_pct)| Op::Settle { order, refund_pct }),
            (0i64..3, 1i64..500_000).prop_map(|(seller, amount)| Op::Payout { seller, amount }),
        ]
    }

    proptest! {
        /// Over any sequence of payments, settlements (release/refund splits) and payouts:
        /// every transaction balances, no protected account goes negative, and what sellers were
        /// paid plus what they are owed plus what is held equals what buyers paid minus fees and
        /// refunds.
        #[test]
        fn ledger_invariants(ops in proptest::collection::vec(op(), 1..60), fee_bps in 0u32..3000) {
            let cur = c();
            let mut book = Book::default();
            let mut paid: BTreeMap<i64, i64> = BTreeMap::new();
            for op in ops {
                let txs: Vec<Transaction> = match op {
                    Op::Pay { order, amount } => {
                        if paid.contains_key(&order) { continue; }
                        paid.insert(order, amount);
                        vec![Transaction::payment(order, "mobile_money", Money::new(amount, cur)).unwrap()]
                    }
                    Op::Settle { order, refund_pct } => {
                        let held = book.balance(&Account::Escrow(order), cur);
                        if held == 0 { continue; }
                        let refund = held * refund_pct as i64 / 100;
                        Transaction::settle(order, order % 3, Money::new(held, cur), Money::new(refund, cur), fee_bps).unwrap()
                    }
                    Op::Payout { seller, amount } => vec![Transaction::payout(seller, Money::new(amount, cur)).unwrap()],
                };
                for tx in txs {
                    let sum: i64 = tx.postings().iter().map(|p| p.amount.minor).sum();
                    prop_assert_eq!(sum, 0);
                    let _ = book.apply(&tx); // a refused payout (not enough owed) must change nothing
                }
                for (a, _, bal) in book.accounts() {
                    prop_assert!(a.may_go_negative() || bal >= 0, "{} negative", a);
                }
                let paid_in = -book.sum_where(cur, |a| matches!(a, Account::ExternalPayments(_)));
                let fees = book.sum_where(cur, |a| *a == Account::PlatformFees);
                let refunds = book.sum_where(cur, |a| *a == Account::ExternalRefunds);
                let payouts = book.sum_where(cur, |a| *a == Account::ExternalPayouts);
                let owed = book.sum_where(cur, |a| matches!(a, Account::SellerPayable(_)));
                let held = book.sum_where(cur, |a| matches!(a, Account::Escrow(_)));
                prop_assert_eq!(payouts + owed + held, paid_in - fees - refunds);
            }
        }
    }
}
