//! Double-entry ledger postings. A [`Transaction`] can only be built balanced (its postings sum
//! to zero per currency); storage applies it atomically and refuses any posting that would take
//! a non-negative account below zero. [`Book`] is an in-memory ledger used to state and test the
//! invariants; the database applies the very same transactions.

use crate::money::{Currency, Money, MoneyError};
use std::collections::BTreeMap;
use std::fmt;

/// Where money sits. `External*` accounts stand for the world outside the platform and are
/// allowed to go negative (money entering the platform is drawn from them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
    /// Cash a person (agent, courier, pickup operator, official) took for the platform and still
    /// holds: external money, so it goes negative by what they hold, until they hand it over.
    CashWith(i64),
    /// Commission the platform owes an agent.
    AgentCommission(i64),
    /// Delivery fees the platform owes a courier (user id) for the jobs they delivered.
    CourierPayable(i64),
    /// Bounties a programme owes a digital champion (user id).
    ChampionPayable(i64),
    /// Payouts on their way: set aside from the payee's balance, not yet confirmed by the
    /// provider (or the centre). Paid, they leave; failed, they go back.
    PayoutsInFlight,
}

impl Account {
    pub fn may_go_negative(&self) -> bool {
        matches!(self, Account::ExternalPayments(_) | Account::CashWith(_))
    }
    /// Money that entered the platform from outside (what buyers paid, wherever it sits now).
    pub fn is_paid_in(&self) -> bool {
        self.may_go_negative()
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
            Account::CashWith(u) => format!("external:payments:cash-with:{u}"),
            Account::AgentCommission(u) => format!("agent:{u}:commission"),
            Account::CourierPayable(u) => format!("courier:{u}:payable"),
            Account::ChampionPayable(u) => format!("champion:{u}:payable"),
            Account::PayoutsInFlight => "payouts:in-flight".into(),
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Payment,
    Release,
    Refund,
    Payout,
    /// Cash a holder hands over (a bank or mobile-money deposit).
    Handover,
    /// An agent's commission on an order, from the fee or the seller's proceeds.
    Commission,
}

impl TxKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            TxKind::Payment => "payment",
            TxKind::Release => "release",
            TxKind::Refund => "refund",
            TxKind::Payout => "payout",
            TxKind::Handover => "handover",
            TxKind::Commission => "commission",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
#[derive(Debug, Clone, PartialEq, Eq)]
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

    /// Escrow is released: `refund` back to the buyer (a dispute may split); the delivery fee
    /// to the courier who delivered it (`courier`: their user id and the order's delivery fee;
    /// never more than what is kept); the platform fee on the seller's part; and the rest
    /// payable to the seller. `held` is the escrow balance.
    pub fn settle(
        order_id: i64,
        seller_id: i64,
        held: Money,
        refund: Money,
        fee_bps: u32,
        courier: Option<(i64, Money)>,
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
            let (rider, ride) = match courier {
                Some((u, fee)) => (
                    Some(u),
                    Money::new(fee.minor.clamp(0, kept.minor), kept.currency),
                ),
                None => (None, Money::zero(kept.currency)),
            };
            let sellers = kept.checked_sub(ride)?;
            let fee = sellers.basis_points(fee_bps)?;
            let mut postings = vec![
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
                    amount: sellers.checked_sub(fee)?,
                },
            ];
            if let Some(u) = rider {
                postings.push(Posting {
                    account: Account::CourierPayable(u),
                    amount: ride,
                });
            }
            out.push(Self::new(TxKind::Release, Some(order_id), postings)?);
        }
        Ok(out)
    }

    /// What the seller's part of a release is, and the platform fee on it (for commissions):
    /// what is kept less the courier's delivery fee.
    pub fn sellers_part(
        kept: Money,
        fee_bps: u32,
        courier: Option<(i64, Money)>,
    ) -> Result<(Money, Money), LedgerError> {
        let ride = courier.map_or(0, |(_, f)| f.minor.clamp(0, kept.minor.max(0)));
        let sellers = kept.checked_sub(Money::new(ride, kept.currency))?;
        Ok((sellers, sellers.basis_points(fee_bps)?))
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
}

impl Transaction {
    fn pair(
        kind: TxKind,
        order_id: Option<i64>,
        from: Account,
        to: Account,
        amount: Money,
    ) -> Result<Self, LedgerError> {
        Self::new(
            kind,
            order_id,
            vec![
                Posting {
                    account: from,
                    amount: -amount,
                },
                Posting {
                    account: to,
                    amount,
                },
            ],
        )
    }

    /// A buyer pays cash to a person (agent, courier at the door, operator): the order's escrow is
    /// funded from the cash that person now holds.
    pub fn cash_payment(order_id: i64, holder: i64, total: Money) -> Result<Self, LedgerError> {
        Self::pair(
            TxKind::Payment,
            Some(order_id),
            Account::CashWith(holder),
            Account::Escrow(order_id),
            total,
        )
    }

    /// A holder hands cash over (deposits it): it leaves their hands for the platform's
    /// `channel` (bank, mobile money). What buyers paid in does not change.
    pub fn handover(holder: i64, amount: Money, channel: &str) -> Result<Self, LedgerError> {
        if amount.minor <= 0 {
            return Err(LedgerError::Empty);
        }
        Self::pair(
            TxKind::Handover,
            None,
            Account::ExternalPayments(format!("deposit:{channel}")),
            Account::CashWith(holder),
            amount,
        )
    }

    /// An agent's commission, taken from `source` (the platform's fees or the seller's
    /// payable), never added to what the buyer pays.
    pub fn commission(
        order_id: i64,
        agent: i64,
        source: Account,
        amount: Money,
    ) -> Result<Self, LedgerError> {
        if !matches!(source, Account::PlatformFees | Account::SellerPayable(_)) {
            return Err(LedgerError::Unbalanced(amount.currency));
        }
        Self::pair(
            TxKind::Commission,
            Some(order_id),
            source,
            Account::AgentCommission(agent),
            amount,
        )
    }

    /// A programme owes a digital champion a bounty, from its own budget (money that enters
    /// the platform for them; it leaves by a payout like everyone else's).
    pub fn champion_owed(champion: i64, amount: Money) -> Result<Self, LedgerError> {
        Self::pair(
            TxKind::Payout,
            None,
            Account::ExternalPayments("programme".into()),
            Account::ChampionPayable(champion),
            amount,
        )
    }

    /// A payout line goes out: its amount is set aside from the payee's balance (never more
    /// than they hold: the account may not go negative).
    pub fn payout_set_aside(payee: Account, amount: Money) -> Result<Self, LedgerError> {
        if amount.minor <= 0 {
            return Err(LedgerError::Empty);
        }
        Self::pair(
            TxKind::Payout,
            None,
            payee,
            Account::PayoutsInFlight,
            amount,
        )
    }

    /// The provider (or the centre) confirmed a payout line: the money left the platform.
    pub fn payout_confirmed(amount: Money) -> Result<Self, LedgerError> {
        Self::pair(
            TxKind::Payout,
            None,
            Account::PayoutsInFlight,
            Account::ExternalPayouts,
            amount,
        )
    }

    /// A payout line failed or was cancelled: its money goes back to the payee's balance.
    pub fn payout_returned(payee: Account, amount: Money) -> Result<Self, LedgerError> {
        Self::pair(
            TxKind::Payout,
            None,
            Account::PayoutsInFlight,
            payee,
            amount,
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
        let txs =
            Transaction::settle(1, 7, Money::new(2000, c()), Money::zero(c()), 500, None).unwrap();
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
        Pay {
            order: i64,
            amount: i64,
        },
        /// Cash handed to agent/courier `holder`.
        PayCash {
            order: i64,
            holder: i64,
            amount: i64,
        },
        /// Settle; orders placed by an agent (odd orders) earn agent `order % 2` a commission.
        Settle {
            order: i64,
            refund_pct: u8,
            commission_bps: u32,
            from_fee: bool,
        },
        Handover {
            holder: i64,
            amount: i64,
        },
        /// A programme owes champion `champion` a bounty.
        Bounty {
            champion: i64,
            amount: i64,
        },
        /// A payout line through a batch: set aside from the payee (refused beyond what they
        /// hold), then confirmed (0), failed and returned (1), or still on its way (2).
        BatchLine {
            payee: u8,
            id: i64,
            amount: i64,
            outcome: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0i64..8, 1i64..1_000_000).prop_map(|(order, amount)| Op::Pay { order, amount }),
            (0i64..8, 0i64..2, 1i64..1_000_000).prop_map(|(order, holder, amount)| Op::PayCash {
                order,
                holder,
                amount
            }),
            (0i64..8, 0u8..=100, 0u32..=10_000, any::<bool>()).prop_map(
                |(order, refund_pct, commission_bps, from_fee)| Op::Settle {
                    order,
                    refund_pct,
                    commission_bps,
                    from_fee
                }
            ),
            (0i64..2, 1i64..500_000).prop_map(|(holder, amount)| Op::Handover { holder, amount }),
            (0i64..2, 1i64..50_000).prop_map(|(champion, amount)| Op::Bounty { champion, amount }),
            (0u8..4, 0i64..3, 1i64..500_000, 0u8..3).prop_map(|(payee, id, amount, outcome)| {
                Op::BatchLine {
                    payee,
                    id,
                    amount,
                    outcome,
                }
            }),
        ]
    }

    proptest! {
        /// Over any sequence of payments (mobile money, or cash into an agent's or courier's
        /// hands), settlements (release/refund splits, agents' commissions from the fee or the
        /// seller's proceeds), payouts to sellers and agents, champions' bounties, payout lines
        /// through a batch (confirmed, failed and returned, or on their way), and cash hand-overs: every
        /// transaction balances, no protected account goes negative, and what was paid out plus
        /// what is owed (sellers, agents) plus what is held equals what buyers paid minus fees and
        /// refunds. Hand-overs move cash, never what was paid in.
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
                    Op::PayCash { order, holder, amount } => {
                        if paid.contains_key(&order) { continue; }
                        paid.insert(order, amount);
                        vec![Transaction::cash_payment(order, holder, Money::new(amount, cur)).unwrap()]
                    }
                    Op::Settle { order, refund_pct, commission_bps, from_fee } => {
                        let held = book.balance(&Account::Escrow(order), cur);
                        if held == 0 { continue; }
                        let refund = held * refund_pct as i64 / 100;
                        let seller = order % 3;
                        // Orders 0 and 4 were delivered by courier 9, for a delivery fee of 1500.
                        let courier = (order % 4 == 0).then(|| (9, Money::new(1500, cur)));
                        let mut txs = Transaction::settle(order, seller, Money::new(held, cur), Money::new(refund, cur), fee_bps, courier).unwrap();
                        if order % 2 == 1 {
                            let (kept, fee) = Transaction::sellers_part(Money::new(held - refund, cur), fee_bps, courier).unwrap();
                            let rule = crate::commission::Rule {
                                id: 1,
                                centre_id: None,
                                category_id: None,
                                basis: crate::commission::Basis::Percent(commission_bps),
                                cap_minor: None,
                                source: if from_fee { crate::commission::Source::PlatformFee } else { crate::commission::Source::SellerProceeds },
                            };
                            let c = crate::commission::amount(&rule, kept, fee).unwrap();
                            let source = if from_fee { Account::PlatformFees } else { Account::SellerPayable(seller) };
                            if c.minor > 0 {
                                txs.push(Transaction::commission(order, order % 2, source, c).unwrap());
                            }
                        }
                        txs
                    }
                    Op::Handover { holder, amount } => vec![Transaction::handover(holder, Money::new(amount, cur), "bank").unwrap()],
                    Op::Bounty { champion, amount } => vec![Transaction::champion_owed(champion, Money::new(amount, cur)).unwrap()],
                    Op::BatchLine { payee, id, amount, outcome } => {
                        let account = match payee {
                            0 => crate::payout::Payee::Seller(id),
                            1 => crate::payout::Payee::Agent(id),
                            2 => crate::payout::Payee::Courier(id),
                            _ => crate::payout::Payee::Champion(id),
                        }
                        .account();
                        let amount = Money::new(amount, cur);
                        let before = book.balance(&account, cur);
                        if book.apply(&Transaction::payout_set_aside(account.clone(), amount).unwrap()).is_err() {
                            prop_assert_eq!(book.balance(&account, cur), before, "nobody is paid more than they hold");
                            continue;
                        }
                        match outcome {
                            0 => vec![Transaction::payout_confirmed(amount).unwrap()],
                            1 => vec![Transaction::payout_returned(account, amount).unwrap()],
                            _ => vec![],
                        }
                    }
                };
                for tx in txs {
                    let sum: i64 = tx.postings().iter().map(|p| p.amount.minor).sum();
                    prop_assert_eq!(sum, 0);
                    let _ = book.apply(&tx); // a refused payout (not enough owed) must change nothing
                }
                for (a, _, bal) in book.accounts() {
                    prop_assert!(a.may_go_negative() || bal >= 0, "{} negative", a);
                }
                let paid_in = -book.sum_where(cur, Account::is_paid_in);
                let fees = book.sum_where(cur, |a| *a == Account::PlatformFees);
                let refunds = book.sum_where(cur, |a| *a == Account::ExternalRefunds);
                let payouts = book.sum_where(cur, |a| *a == Account::ExternalPayouts);
                let owed = book.sum_where(cur, |a| matches!(a, Account::SellerPayable(_) | Account::AgentCommission(_) | Account::CourierPayable(_) | Account::ChampionPayable(_) | Account::PayoutsInFlight));
                let held = book.sum_where(cur, |a| matches!(a, Account::Escrow(_)));
                prop_assert_eq!(payouts + owed + held, paid_in - fees - refunds);
            }
        }
    }
}
