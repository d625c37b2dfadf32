//! Payouts: what the platform owes people (sellers' proceeds, couriers' delivery fees, agents'
//! commissions, champions' bounties) leaves in batches that one official prepares and another
//! approves. Pure rules: who a payee is and which account holds what they are owed, who is due
//! under the marketplace's schedule, and how a line moves. The postings are in
//! [`crate::ledger::Transaction`] (`payout_set_aside`, `payout_confirmed`, `payout_returned`).

use crate::kinds::LineStatus;
use crate::ledger::Account;
use crate::msg::Msg;

/// Someone the platform pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Payee {
    /// A shop (its owner is paid).
    Seller(i64),
    /// A courier (a user), for the delivery fees of the jobs they delivered.
    Courier(i64),
    /// An agent (a user), for their commissions.
    Agent(i64),
    /// A digital champion (a user), for their bounties.
    Champion(i64),
}

impl Payee {
    /// The account that holds what the payee is owed.
    pub fn account(&self) -> Account {
        match *self {
            Payee::Seller(s) => Account::SellerPayable(s),
            Payee::Courier(u) => Account::CourierPayable(u),
            Payee::Agent(u) => Account::AgentCommission(u),
            Payee::Champion(u) => Account::ChampionPayable(u),
        }
    }
    /// The payee behind an account that holds what someone is owed.
    pub fn of_account(code: &str) -> Option<Payee> {
        let mut it = code.split(':');
        let (kind, id, what) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let id: i64 = id.parse().ok()?;
        match (kind, what) {
            ("seller", "payable") => Some(Payee::Seller(id)),
            ("courier", "payable") => Some(Payee::Courier(id)),
            ("agent", "commission") => Some(Payee::Agent(id)),
            ("champion", "payable") => Some(Payee::Champion(id)),
            _ => None,
        }
    }
    /// Stable text form, as stored on a payout line: `seller:5`, `courier:7`, ...
    pub fn code(&self) -> String {
        let (k, id) = match *self {
            Payee::Seller(s) => ("seller", s),
            Payee::Courier(u) => ("courier", u),
            Payee::Agent(u) => ("agent", u),
            Payee::Champion(u) => ("champion", u),
        };
        format!("{k}:{id}")
    }
    pub fn parse(code: &str) -> Option<Payee> {
        let (k, id) = code.split_once(':')?;
        let id: i64 = id.parse().ok()?;
        match k {
            "seller" => Some(Payee::Seller(id)),
            "courier" => Some(Payee::Courier(id)),
            "agent" => Some(Payee::Agent(id)),
            "champion" => Some(Payee::Champion(id)),
            _ => None,
        }
    }
    /// The translation key of the payee's kind ("Shop", "Courier", ...).
    pub fn kind_key(&self) -> &'static str {
        match self {
            Payee::Seller(_) => "payee-seller",
            Payee::Courier(_) => "payee-courier",
            Payee::Agent(_) => "payee-agent",
            Payee::Champion(_) => "payee-champion",
        }
    }
}

/// When the marketplace pays out (settings an official changes, validated when saved).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// A batch is due this many days after the last one (7: weekly).
    pub every_days: i64,
    /// A balance at least this large is paid in the next batch even before it is due.
    pub threshold_minor: i64,
    /// Balances below this wait for the next batch (a transfer costs more than it carries).
    pub minimum_minor: i64,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            every_days: 7,
            threshold_minor: 500_000,
            minimum_minor: 1_000,
        }
    }
}

const DAY_MS: i64 = 86_400_000;

impl Schedule {
    pub fn validate(&self) -> Result<(), Msg> {
        if !(1..=92).contains(&self.every_days) {
            return Err(Msg::new("err-payout-every"));
        }
        if self.minimum_minor < 1 || self.threshold_minor < self.minimum_minor {
            return Err(Msg::new("err-payout-threshold"));
        }
        Ok(())
    }
    /// The key of the automatic run `now` falls in: one scheduled run per period of
    /// `every_days`, and at most one early run a day for balances past the threshold. Stored
    /// unique, so several servers ticking at once prepare one batch.
    pub fn run_key(&self, run: Run, now: i64) -> Option<String> {
        match run {
            Run::Scheduled => Some(format!(
                "every-{}d:{}",
                self.every_days,
                now.div_euclid(self.every_days.max(1).saturating_mul(DAY_MS))
            )),
            Run::Threshold => Some(format!("threshold:{}", now.div_euclid(DAY_MS))),
            Run::Manual => None,
        }
    }
    /// The lines of a new batch from what each payee is owed: the whole balance of everyone at
    /// or above the minimum, except that an early (threshold) run takes only those at or above
    /// the threshold. In payee order, so the same balances always give the same batch.
    pub fn propose(&self, owed: &[(Payee, i64)], run: Run) -> Vec<(Payee, i64)> {
        let floor = match run {
            Run::Threshold => self.threshold_minor,
            Run::Scheduled | Run::Manual => self.minimum_minor,
        };
        let mut v: Vec<(Payee, i64)> = owed
            .iter()
            .copied()
            .filter(|(_, n)| *n >= floor.max(self.minimum_minor))
            .collect();
        v.sort();
        v
    }
}

/// Why a batch is prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    /// The schedule's period came round.
    Scheduled,
    /// Someone's balance passed the threshold before the period ended.
    Threshold,
    /// An official asked for it.
    Manual,
}

impl Run {
    pub fn as_str(&self) -> &'static str {
        match self {
            Run::Scheduled => "scheduled",
            Run::Threshold => "threshold",
            Run::Manual => "manual",
        }
    }
}

/// A line's move, as the batch runner or the provider's answer asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineMove {
    /// The batch was approved and the line is asked of the provider (or handed to the centre).
    Send,
    /// The provider (or the centre) confirmed it.
    Confirm,
    /// The transfer failed.
    Fail,
    /// The batch was thrown away before approval.
    Cancel,
}

/// The next status of a line, or None when the move does not apply (the caller then does
/// nothing: a late or repeated answer changes nothing). A failed line is final: its money is
/// back in the payee's balance and a later batch pays it.
pub fn line_step(from: LineStatus, m: LineMove) -> Option<LineStatus> {
    use LineStatus::*;
    match (from, m) {
        (Proposed, LineMove::Send) => Some(Sending),
        (Proposed, LineMove::Cancel) => Some(Cancelled),
        (Sending, LineMove::Confirm) => Some(Paid),
        (Sending, LineMove::Fail) => Some(Failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payees_round_trip_and_know_their_accounts() {
        for p in [
            Payee::Seller(5),
            Payee::Courier(7),
            Payee::Agent(8),
            Payee::Champion(9),
        ] {
            assert_eq!(Payee::parse(&p.code()), Some(p));
            assert_eq!(Payee::of_account(&p.account().code()), Some(p));
        }
        assert_eq!(Payee::of_account("escrow:order:5"), None);
        assert_eq!(Payee::of_account("seller:5:payable:x"), None);
        assert_eq!(Payee::parse("platform:1"), None);
    }

    #[test]
    fn the_schedule_pays_everyone_due_and_big_balances_early() {
        let s = Schedule {
            every_days: 7,
            threshold_minor: 10_000,
            minimum_minor: 500,
        };
        assert!(s.validate().is_ok());
        let owed = [
            (Payee::Seller(2), 20_000),
            (Payee::Courier(3), 499),
            (Payee::Agent(4), 700),
            (Payee::Seller(1), 10_000),
        ];
        // An early run: only balances at the threshold.
        assert_eq!(
            s.propose(&owed, Run::Threshold),
            vec![(Payee::Seller(1), 10_000), (Payee::Seller(2), 20_000)]
        );
        // The period came round (or an official asked): everyone at the minimum, in order.
        let all = vec![
            (Payee::Seller(1), 10_000),
            (Payee::Seller(2), 20_000),
            (Payee::Agent(4), 700),
        ];
        assert_eq!(s.propose(&owed, Run::Scheduled), all);
        assert_eq!(s.propose(&owed, Run::Manual), all);
        // One scheduled run per period, one early run per day, none for a manual batch.
        let week = 7 * DAY_MS;
        assert_eq!(
            s.run_key(Run::Scheduled, week),
            s.run_key(Run::Scheduled, 2 * week - 1)
        );
        assert_ne!(
            s.run_key(Run::Scheduled, week - 1),
            s.run_key(Run::Scheduled, week)
        );
        assert_ne!(
            s.run_key(Run::Threshold, DAY_MS - 1),
            s.run_key(Run::Threshold, DAY_MS)
        );
        assert_eq!(s.run_key(Run::Manual, 0), None);
        assert!(Schedule { every_days: 0, ..s }.validate().is_err());
        assert!(
            Schedule {
                threshold_minor: 100,
                ..s
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn a_line_is_paid_or_failed_once() {
        use LineStatus::*;
        assert_eq!(line_step(Proposed, LineMove::Send), Some(Sending));
        assert_eq!(line_step(Sending, LineMove::Confirm), Some(Paid));
        assert_eq!(line_step(Sending, LineMove::Fail), Some(Failed));
        assert_eq!(line_step(Proposed, LineMove::Cancel), Some(Cancelled));
        for done in [Paid, Failed, Cancelled] {
            for m in [
                LineMove::Send,
                LineMove::Confirm,
                LineMove::Fail,
                LineMove::Cancel,
            ] {
                assert_eq!(line_step(done, m), None, "{done:?} {m:?}");
            }
        }
        assert_eq!(line_step(Sending, LineMove::Cancel), None, "too late");
        assert_eq!(line_step(Proposed, LineMove::Confirm), None);
    }
}
