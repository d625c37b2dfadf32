//! The order process as data, in the spirit of Sharetribe's `process.edn`: states, transitions,
//! who may take each one, which are taken by time, and what each one causes (ledger movements,
//! stock, timers). Storage executes the returned [`Effect`]s in the same database transaction as
//! the state change, so a timer exists if and only if the change that scheduled it committed.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderState {
    Placed,
    Paid,
    Accepted,
    Packed,
    Shipped,
    Delivered,
    Completed,
    Cancelled,
    ReturnRequested,
    Returned,
    Refunded,
    Disputed,
    Resolved,
}

impl OrderState {
    pub const ALL: [OrderState; 13] = [
        OrderState::Placed,
        OrderState::Paid,
        OrderState::Accepted,
        OrderState::Packed,
        OrderState::Shipped,
        OrderState::Delivered,
        OrderState::Completed,
        OrderState::Cancelled,
        OrderState::ReturnRequested,
        OrderState::Returned,
        OrderState::Refunded,
        OrderState::Disputed,
        OrderState::Resolved,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderState::Placed => "placed",
            OrderState::Paid => "paid",
            OrderState::Accepted => "accepted",
            OrderState::Packed => "packed",
            OrderState::Shipped => "shipped",
            OrderState::Delivered => "delivered",
            OrderState::Completed => "completed",
            OrderState::Cancelled => "cancelled",
            OrderState::ReturnRequested => "return_requested",
            OrderState::Returned => "returned",
            OrderState::Refunded => "refunded",
            OrderState::Disputed => "disputed",
            OrderState::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<OrderState> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
    pub fn is_final(&self) -> bool {
        TRANSITIONS.iter().all(|t| !t.from.contains(self))
    }
}

impl fmt::Display for OrderState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is acting. `System` is the job runner (timers) and payment callbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Actor {
    Buyer,
    Seller,
    Admin,
    /// The person who took cash for the order (agent, courier, admin at a counter).
    Collector,
    /// The carrier holding the order's delivery job.
    Courier,
    System,
}

impl Actor {
    pub fn as_str(&self) -> &'static str {
        match self {
            Actor::Buyer => "buyer",
            Actor::Seller => "seller",
            Actor::Admin => "admin",
            Actor::Collector => "collector",
            Actor::Courier => "courier",
            Actor::System => "system",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    Pay,
    /// A parcel left at a pickup point past its hold period goes back (scheduled at check-in).
    ReturnUncollected,
    DeliverWithCode,
    AcceptOnDelivery,
    CollectOnDelivery,
    ExpireUnpaid,
    Cancel,
    Accept,
    Pack,
    Ship,
    AutoCancelUnshipped,
    ConfirmDelivery,
    ConfirmReceipt,
    AutoComplete,
    RequestReturn,
    MarkReturned,
    AutoRefund,
    Dispute,
    Resolve,
}

/// A timer a transition sets: the job runner takes `transition` as `System` when it fires, if
/// the order is still in a state that allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// After [`Timing::unpaid_cancel_minutes`].
    Unpaid,
    /// After [`Timing::ship_within_days`].
    Unshipped,
    /// After [`Timing::dispute_window_days`].
    DisputeWindow,
    /// At once (an automatic follow-up, e.g. refund after a return arrives).
    Now,
}

/// What taking a transition causes, besides the state change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The buyer's payment goes into escrow.
    HoldPayment,
    /// Escrow goes to the seller (less the platform fee).
    ReleaseEscrow,
    /// Everything held goes back to the buyer.
    RefundAll,
    /// The admin's decision splits the escrow between a refund and a release.
    SplitEscrow,
    /// Reserved stock goes back on the shelf.
    RestoreStock,
    /// A one-time code for the buyer to give whoever delivers (proof of delivery).
    IssueDeliveryCode,
    /// A delivery job is offered to the courier pool.
    OfferDelivery,
    Schedule(Timer, Transition),
}

/// An effect's kind, without its data: what a handler registers for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EffectKind {
    HoldPayment,
    ReleaseEscrow,
    RefundAll,
    SplitEscrow,
    RestoreStock,
    IssueDeliveryCode,
    OfferDelivery,
    Schedule,
}

impl EffectKind {
    pub const ALL: [EffectKind; 8] = [
        EffectKind::HoldPayment,
        EffectKind::ReleaseEscrow,
        EffectKind::RefundAll,
        EffectKind::SplitEscrow,
        EffectKind::RestoreStock,
        EffectKind::IssueDeliveryCode,
        EffectKind::OfferDelivery,
        EffectKind::Schedule,
    ];
}

impl Effect {
    pub fn kind(&self) -> EffectKind {
        match self {
            Effect::HoldPayment => EffectKind::HoldPayment,
            Effect::ReleaseEscrow => EffectKind::ReleaseEscrow,
            Effect::RefundAll => EffectKind::RefundAll,
            Effect::SplitEscrow => EffectKind::SplitEscrow,
            Effect::RestoreStock => EffectKind::RestoreStock,
            Effect::IssueDeliveryCode => EffectKind::IssueDeliveryCode,
            Effect::OfferDelivery => EffectKind::OfferDelivery,
            Effect::Schedule(..) => EffectKind::Schedule,
        }
    }
}

/// Which orders a transition applies to, by how they are paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payment {
    Any,
    /// Paid before fulfilment (mobile money, cash at a digital centre).
    Prepaid,
    /// Cash on delivery: fulfilled unpaid; the delivery is the collection.
    OnDelivery,
}

impl Payment {
    pub fn admits(&self, on_delivery: bool) -> bool {
        match self {
            Payment::Any => true,
            Payment::Prepaid => !on_delivery,
            Payment::OnDelivery => on_delivery,
        }
    }
}

pub struct TransitionDef {
    pub name: Transition,
    pub from: &'static [OrderState],
    pub to: OrderState,
    pub actors: &'static [Actor],
    pub effects: &'static [Effect],
    pub payment: Payment,
    /// Taken only with the buyer's one-time delivery code (proof of delivery).
    pub needs_code: bool,
}

use Actor as A;
use Effect as E;
use OrderState as S;

/// The whole process. Read this table to know what an order can do.
pub const TRANSITIONS: &[TransitionDef] = &[
    TransitionDef {
        name: Transition::ReturnUncollected,
        from: &[S::Shipped],
        to: S::Returned,
        actors: &[A::System],
        effects: &[
            E::RestoreStock,
            E::Schedule(Timer::Now, Transition::AutoRefund),
        ],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::DeliverWithCode,
        from: &[S::Shipped],
        to: S::Delivered,
        actors: &[A::Seller, A::Collector, A::Courier],
        effects: &[E::Schedule(Timer::DisputeWindow, Transition::AutoComplete)],
        payment: Payment::Prepaid,
        needs_code: true,
    },
    TransitionDef {
        name: Transition::AcceptOnDelivery,
        from: &[S::Placed],
        to: S::Accepted,
        actors: &[A::Seller],
        // The ship deadline was set at checkout.
        effects: &[],
        payment: Payment::OnDelivery,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::CollectOnDelivery,
        from: &[S::Shipped],
        to: S::Delivered,
        actors: &[A::Seller, A::Admin, A::Collector, A::Courier],
        effects: &[
            E::HoldPayment,
            E::Schedule(Timer::DisputeWindow, Transition::AutoComplete),
        ],
        payment: Payment::OnDelivery,
        needs_code: true,
    },
    TransitionDef {
        name: Transition::Pay,
        from: &[S::Placed],
        to: S::Paid,
        actors: &[A::System, A::Collector],
        effects: &[
            E::HoldPayment,
            E::Schedule(Timer::Unshipped, Transition::AutoCancelUnshipped),
        ],
        payment: Payment::Prepaid,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::ExpireUnpaid,
        from: &[S::Placed],
        to: S::Cancelled,
        actors: &[A::System],
        effects: &[E::RestoreStock],
        payment: Payment::Prepaid,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Cancel,
        from: &[S::Placed, S::Paid, S::Accepted],
        to: S::Cancelled,
        actors: &[A::Buyer, A::Seller, A::Admin],
        effects: &[E::RefundAll, E::RestoreStock],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Accept,
        from: &[S::Paid],
        to: S::Accepted,
        actors: &[A::Seller],
        effects: &[],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Pack,
        from: &[S::Accepted],
        to: S::Packed,
        actors: &[A::Seller],
        effects: &[E::OfferDelivery],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Ship,
        from: &[S::Packed],
        to: S::Shipped,
        // A courier's pick-up at the seller ships the order.
        actors: &[A::Seller, A::Courier],
        effects: &[E::IssueDeliveryCode],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::AutoCancelUnshipped,
        from: &[S::Placed, S::Paid, S::Accepted, S::Packed],
        to: S::Cancelled,
        actors: &[A::System],
        effects: &[E::RefundAll, E::RestoreStock],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::ConfirmDelivery,
        from: &[S::Shipped],
        to: S::Delivered,
        actors: &[A::Buyer, A::Admin],
        effects: &[E::Schedule(Timer::DisputeWindow, Transition::AutoComplete)],
        payment: Payment::Prepaid,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::ConfirmReceipt,
        from: &[S::Delivered],
        to: S::Completed,
        actors: &[A::Buyer],
        effects: &[E::ReleaseEscrow],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::AutoComplete,
        from: &[S::Delivered],
        to: S::Completed,
        actors: &[A::System],
        effects: &[E::ReleaseEscrow],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::RequestReturn,
        from: &[S::Delivered],
        to: S::ReturnRequested,
        actors: &[A::Buyer],
        effects: &[],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::MarkReturned,
        from: &[S::ReturnRequested],
        to: S::Returned,
        actors: &[A::Seller, A::Admin],
        effects: &[
            E::RestoreStock,
            E::Schedule(Timer::Now, Transition::AutoRefund),
        ],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::AutoRefund,
        from: &[S::Returned],
        to: S::Refunded,
        actors: &[A::System],
        effects: &[E::RefundAll],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Dispute,
        from: &[S::Delivered, S::ReturnRequested],
        to: S::Disputed,
        actors: &[A::Buyer, A::Seller],
        effects: &[],
        payment: Payment::Any,
        needs_code: false,
    },
    TransitionDef {
        name: Transition::Resolve,
        from: &[S::Disputed],
        to: S::Resolved,
        actors: &[A::Admin],
        effects: &[E::SplitEscrow],
        payment: Payment::Any,
        needs_code: false,
    },
];

impl Transition {
    pub fn def(&self) -> &'static TransitionDef {
        TRANSITIONS
            .iter()
            .find(|d| d.name == *self)
            .expect("every transition is in TRANSITIONS")
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Transition::Pay => "pay",
            Transition::ReturnUncollected => "return_uncollected",
            Transition::DeliverWithCode => "deliver_with_code",
            Transition::AcceptOnDelivery => "accept_on_delivery",
            Transition::CollectOnDelivery => "collect_on_delivery",
            Transition::ExpireUnpaid => "expire_unpaid",
            Transition::Cancel => "cancel",
            Transition::Accept => "accept",
            Transition::Pack => "pack",
            Transition::Ship => "ship",
            Transition::AutoCancelUnshipped => "auto_cancel_unshipped",
            Transition::ConfirmDelivery => "confirm_delivery",
            Transition::ConfirmReceipt => "confirm_receipt",
            Transition::AutoComplete => "auto_complete",
            Transition::RequestReturn => "request_return",
            Transition::MarkReturned => "mark_returned",
            Transition::AutoRefund => "auto_refund",
            Transition::Dispute => "dispute",
            Transition::Resolve => "resolve",
        }
    }
    pub fn parse(s: &str) -> Option<Transition> {
        TRANSITIONS.iter().map(|d| d.name).find(|t| t.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error("an order that is {from} cannot be {transition:?}")]
    NotAllowedFrom {
        transition: Transition,
        from: OrderState,
    },
    #[error("a {actor:?} may not take {transition:?}")]
    NotYourMove {
        transition: Transition,
        actor: Actor,
    },
    #[error("{transition:?} does not apply to an order paid this way")]
    WrongPayment { transition: Transition },
}

impl ProcessError {
    pub fn msg(&self) -> crate::Msg {
        match self {
            ProcessError::NotAllowedFrom { transition, from } => {
                crate::Msg::new("err-transition-state")
                    .arg("action", transition.as_str())
                    .arg("state", from.as_str())
            }
            ProcessError::NotYourMove { .. } => crate::Msg::new("err-not-your-move"),
            ProcessError::WrongPayment { .. } => crate::Msg::new("err-wrong-payment"),
        }
    }
}

/// Decide a move: the next state and what it causes, or why not.
pub fn step(
    state: OrderState,
    transition: Transition,
    actor: Actor,
    on_delivery: bool,
) -> Result<(OrderState, &'static [Effect]), ProcessError> {
    let d = transition.def();
    if !d.payment.admits(on_delivery) {
        return Err(ProcessError::WrongPayment { transition });
    }
    if !d.actors.contains(&actor) {
        return Err(ProcessError::NotYourMove { transition, actor });
    }
    if !d.from.contains(&state) {
        return Err(ProcessError::NotAllowedFrom {
            transition,
            from: state,
        });
    }
    Ok((d.to, d.effects))
}

/// Transitions an actor could take from a state (for showing buttons).
pub fn available(state: OrderState, actor: Actor, on_delivery: bool) -> Vec<Transition> {
    TRANSITIONS
        .iter()
        .filter(|d| {
            d.from.contains(&state) && d.actors.contains(&actor) && d.payment.admits(on_delivery)
        })
        .map(|d| d.name)
        .collect()
}

/// The timers an order in `state` must be waiting on (at least one of them pending): the
/// transitions only time takes from there. A shipped order waits on none: its timer
/// (`ReturnUncollected`) is set only when the parcel is checked in at a pickup point.
pub fn awaited_timers(state: OrderState, on_delivery: bool) -> Vec<Transition> {
    if state == S::Shipped {
        return Vec::new();
    }
    TRANSITIONS
        .iter()
        .filter(|d| {
            d.actors == [A::System] && d.from.contains(&state) && d.payment.admits(on_delivery)
        })
        .map(|d| d.name)
        .collect()
}

/// Whether an order in `state` has given its stock back (cancelled, or the goods returned):
/// its lines no longer hold units. The test below checks it against [`TRANSITIONS`].
pub fn stock_returned(state: OrderState) -> bool {
    matches!(state, S::Cancelled | S::Returned | S::Refunded)
}

/// Timer durations, in milliseconds. Settings of the marketplace.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub unpaid_cancel_minutes: i64,
    pub ship_within_days: i64,
    pub dispute_window_days: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            unpaid_cancel_minutes: 60,
            ship_within_days: 4,
            dispute_window_days: 7,
        }
    }
}

impl Timing {
    pub fn delay_ms(&self, timer: Timer) -> i64 {
        match timer {
            Timer::Unpaid => self.unpaid_cancel_minutes * 60_000,
            Timer::Unshipped => self.ship_within_days * 86_400_000,
            Timer::DisputeWindow => self.dispute_window_days * 86_400_000,
            Timer::Now => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_given_back_exactly_on_the_way_into_a_returned_state() {
        for d in TRANSITIONS {
            let restores = d.effects.contains(&E::RestoreStock);
            for from in d.from {
                let crosses = !stock_returned(*from) && stock_returned(d.to);
                assert_eq!(restores, crosses, "{:?} from {from}", d.name);
                // Once given back, stock is never taken again.
                assert!(
                    !stock_returned(*from) || stock_returned(d.to),
                    "{:?}",
                    d.name
                );
            }
        }
    }

    #[test]
    fn orders_that_wait_on_time_name_their_timers() {
        use Transition as T;
        assert_eq!(
            awaited_timers(S::Placed, false),
            [T::ExpireUnpaid, T::AutoCancelUnshipped]
        );
        assert_eq!(awaited_timers(S::Placed, true), [T::AutoCancelUnshipped]);
        for s in [S::Paid, S::Accepted, S::Packed] {
            assert_eq!(awaited_timers(s, false), [T::AutoCancelUnshipped], "{s}");
        }
        assert_eq!(awaited_timers(S::Delivered, true), [T::AutoComplete]);
        assert_eq!(awaited_timers(S::Returned, false), [T::AutoRefund]);
        for s in [
            S::Shipped,
            S::Disputed,
            S::ReturnRequested,
            S::Completed,
            S::Cancelled,
        ] {
            assert!(awaited_timers(s, false).is_empty(), "{s}");
        }
    }

    #[test]
    fn happy_path() {
        let mut s = S::Placed;
        for (t, a) in [
            (Transition::Pay, A::System),
            (Transition::Accept, A::Seller),
            (Transition::Pack, A::Seller),
            (Transition::Ship, A::Seller),
            (Transition::ConfirmDelivery, A::Buyer),
            (Transition::ConfirmReceipt, A::Buyer),
        ] {
            s = step(s, t, a, false).unwrap().0;
        }
        assert_eq!(s, S::Completed);
        assert!(s.is_final());
    }

    #[test]
    fn buyer_cannot_ship_and_seller_cannot_release() {
        assert!(matches!(
            step(S::Packed, Transition::Ship, A::Buyer, false),
            Err(ProcessError::NotYourMove { .. })
        ));
        assert!(step(S::Delivered, Transition::ConfirmReceipt, A::Seller, false).is_err());
        assert!(matches!(
            step(S::Placed, Transition::Ship, A::Seller, false),
            Err(ProcessError::NotAllowedFrom { .. })
        ));
    }

    #[test]
    fn every_state_is_reachable_and_names_round_trip() {
        let mut seen = vec![S::Placed];
        let mut i = 0;
        while i < seen.len() {
            let cur = seen[i];
            for d in TRANSITIONS.iter().filter(|d| d.from.contains(&cur)) {
                if !seen.contains(&d.to) {
                    seen.push(d.to);
                }
            }
            i += 1;
        }
        for st in OrderState::ALL {
            assert!(seen.contains(&st), "{st} unreachable");
            assert_eq!(OrderState::parse(st.as_str()), Some(st));
        }
        for d in TRANSITIONS {
            assert_eq!(Transition::parse(d.name.as_str()), Some(d.name));
        }
    }

    #[test]
    fn money_leaves_escrow_exactly_once_on_every_path() {
        // Walk every path from Placed (bounded depth) and count escrow-emptying effects after the
        // payment: each path that reaches a final state after paying must empty escrow once.
        fn walk(s: S, on_delivery: bool, paid: bool, emptied: u32, depth: u32) {
            if s.is_final() {
                if paid {
                    assert_eq!(emptied, 1, "escrow emptied {emptied} times ending in {s}");
                } else {
                    assert_eq!(emptied, 0);
                }
                return;
            }
            assert!(depth < 12);
            for d in TRANSITIONS
                .iter()
                .filter(|d| d.from.contains(&s) && d.payment.admits(on_delivery))
            {
                let mut p = paid;
                let mut e = emptied;
                for eff in d.effects {
                    match eff {
                        E::HoldPayment => p = true,
                        E::ReleaseEscrow | E::SplitEscrow => e += 1,
                        E::RefundAll if p => e += 1,
                        _ => {}
                    }
                }
                walk(d.to, on_delivery, p, e, depth + 1);
            }
        }
        walk(S::Placed, false, false, 0, 0);
        walk(S::Placed, true, false, 0, 0);
    }

    #[test]
    fn cash_on_delivery_is_fulfilled_unpaid_and_paid_at_the_door() {
        let mut s = S::Placed;
        for (t, a) in [
            (Transition::AcceptOnDelivery, A::Seller),
            (Transition::Pack, A::Seller),
            (Transition::Ship, A::Seller),
        ] {
            s = step(s, t, a, true).unwrap().0;
        }
        let (s, effects) = step(s, Transition::CollectOnDelivery, A::Seller, true).unwrap();
        assert_eq!(s, S::Delivered);
        assert!(
            effects.contains(&E::HoldPayment),
            "the cash goes into escrow at the door"
        );
        assert!(matches!(
            step(S::Placed, Transition::Pay, A::System, true),
            Err(ProcessError::WrongPayment { .. })
        ));
        assert!(matches!(
            step(S::Placed, Transition::AcceptOnDelivery, A::Seller, false),
            Err(ProcessError::WrongPayment { .. })
        ));
        assert!(matches!(
            step(S::Shipped, Transition::ConfirmDelivery, A::Buyer, true),
            Err(ProcessError::WrongPayment { .. })
        ));
        assert_eq!(
            available(S::Placed, A::Seller, true),
            vec![Transition::AcceptOnDelivery, Transition::Cancel]
        );
        assert_eq!(
            available(S::Placed, A::Seller, false),
            vec![Transition::Cancel]
        );
    }

    #[test]
    fn timers_fire_only_system_moves() {
        for d in TRANSITIONS {
            for e in d.effects {
                if let E::Schedule(_, t) = e {
                    assert!(
                        t.def().actors.contains(&A::System),
                        "{t:?} is scheduled but System may not take it"
                    );
                }
            }
        }
    }
}
