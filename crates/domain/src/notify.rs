//! Who hears what, by text, when an order moves: the rule as data, with no I/O. The engine's
//! texts observer asks [`after_move`] and writes each message to the outbox in the same
//! transaction as the move. A message is *essential* when the person cannot do without it (the
//! delivery code, money received or returned): it goes even to someone who replied STOP.

use crate::process::{Effect, OrderState, Transition};

/// Who a text is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Buyer,
    Seller,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    pub to: Party,
    /// The translation key of the message (`sms-...`).
    pub template: &'static str,
    pub essential: bool,
}

const fn text(to: Party, template: &'static str, essential: bool) -> Text {
    Text {
        to,
        template,
        essential,
    }
}

/// The texts an order's move calls for, from the transition taken, the state it reached and
/// its effects. A refund is told whatever move caused it.
pub fn after_move(t: Transition, to: OrderState, effects: &[Effect]) -> Vec<Text> {
    use Party::*;
    let mut v = Vec::new();
    match t {
        Transition::Pay => {
            v.push(text(Buyer, "sms-paid", true));
            v.push(text(Seller, "sms-seller-new-order", true));
        }
        Transition::AcceptOnDelivery => v.push(text(Buyer, "sms-accepted-cod", false)),
        Transition::Ship => v.push(text(Buyer, "sms-shipped", true)),
        Transition::DeliverWithCode
        | Transition::CollectOnDelivery
        | Transition::ConfirmDelivery
            if to == OrderState::Delivered =>
        {
            v.push(text(Buyer, "sms-delivered", false));
        }
        Transition::RequestReturn => v.push(text(Seller, "sms-seller-return", true)),
        Transition::Dispute => v.push(text(Seller, "sms-seller-dispute", true)),
        Transition::ExpireUnpaid | Transition::AutoCancelUnshipped => {
            v.push(text(Buyer, "sms-cancelled", false));
        }
        _ => {}
    }
    if effects
        .iter()
        .any(|e| matches!(e, Effect::RefundAll | Effect::SplitEscrow))
    {
        v.push(text(Buyer, "sms-refunded", true));
    }
    v
}

/// What a courier's move on a delivery job tells the buyer (the job's events are not order
/// moves): out for delivery, a failed attempt, waiting at a pickup point.
pub fn after_job(event: JobEvent) -> Text {
    match event {
        JobEvent::OutForDelivery => text(Party::Buyer, "sms-out-for-delivery", false),
        JobEvent::AttemptFailed => text(Party::Buyer, "sms-attempt-failed", true),
        JobEvent::ReadyAtPoint => text(Party::Buyer, "sms-ready-at-point", true),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobEvent {
    OutForDelivery,
    AttemptFailed,
    ReadyAtPoint,
}

/// Every template the rules can ask for (each must exist in every language and fit two parts).
pub const TEMPLATES: &[&str] = &[
    "sms-paid",
    "sms-seller-new-order",
    "sms-seller-new-order-cod",
    "sms-accepted-cod",
    "sms-shipped",
    "sms-delivered",
    "sms-seller-return",
    "sms-seller-dispute",
    "sms-cancelled",
    "sms-refunded",
    "sms-late-refund",
    "sms-out-for-delivery",
    "sms-attempt-failed",
    "sms-ready-at-point",
    "sms-job-offered",
    "sms-payout-paid",
    "sms-payout-failed",
    "sms-order-placed",
    "sms-stopped",
    "sms-started",
    "sms-code-login",
    "sms-code-claim",
    "sms-code-reset",
    "sms-code-consent",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Actor, step};

    #[test]
    fn each_step_tells_who_it_concerns() {
        let (to, fx) = step(OrderState::Placed, Transition::Pay, Actor::System, false).unwrap();
        let t = after_move(Transition::Pay, to, fx);
        assert_eq!(
            t.iter().map(|x| (x.to, x.template)).collect::<Vec<_>>(),
            vec![
                (Party::Buyer, "sms-paid"),
                (Party::Seller, "sms-seller-new-order")
            ]
        );
        let (to, fx) = step(OrderState::Packed, Transition::Ship, Actor::Seller, false).unwrap();
        let t = after_move(Transition::Ship, to, fx);
        assert!(t[0].essential, "the code goes even after STOP");
        // A cancel after payment refunds: the buyer hears of the money.
        let (to, fx) = step(OrderState::Paid, Transition::Cancel, Actor::Seller, false).unwrap();
        assert!(
            after_move(Transition::Cancel, to, fx)
                .iter()
                .any(|x| x.template == "sms-refunded")
        );
        for x in after_move(Transition::Pay, to, fx) {
            assert!(TEMPLATES.contains(&x.template));
        }
        for e in [
            JobEvent::OutForDelivery,
            JobEvent::AttemptFailed,
            JobEvent::ReadyAtPoint,
        ] {
            assert!(TEMPLATES.contains(&after_job(e).template));
        }
    }
}
