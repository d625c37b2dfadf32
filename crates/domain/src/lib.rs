//! Domain rules of tianguis. This crate does no I/O: it owns money, ledger postings, the order
//! process (states, transitions, who may take them, which are timed), the checkout split, and the
//! text normalisation used by search. Storage and the web call into it and persist what it returns.

pub mod calendar;
pub mod champion;
pub mod checkout;
pub mod commission;
pub mod delivery;
pub mod diagnostic;
pub mod ids;
pub mod kinds;
pub mod ledger;
pub mod listing;
pub mod mandate;
pub mod money;
pub mod msg;
pub mod notify;
#[cfg(test)]
mod parsers;
pub mod payout;
pub mod phone;
pub mod policy;
pub mod process;
pub mod promise;
pub mod reconcile;
pub mod search;
pub mod sms;
pub mod text;

pub use money::{Currency, Money, MoneyError};
pub use msg::Msg;
