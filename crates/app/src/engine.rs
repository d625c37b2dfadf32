//! The order engine. `process::step` (domain) decides a move; the engine writes the state change
//! and its history line, then runs the handler registered for each effect the move causes, then
//! every observer, all inside the caller's transaction: everything a move causes commits with
//! it or not at all. A new capability adds a handler or an observer ([`Engine::on`],
//! [`Engine::observe`]) instead of editing [`Engine::apply`]; an effect the process table names
//! without a handler is refused, and a test checks the standard engine handles them all.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use tianguis_domain::ids::OrderId;
use tianguis_domain::ledger::{Account, Transaction};
use tianguis_domain::money::Money;
use tianguis_domain::process::{self, Actor, Effect, EffectKind, OrderState, Timing, Transition};
use tianguis_store::orders::{self, MoveFacts, NewEvent, PaymentMethod};
use tianguis_store::queue::{self, Kind};
use tianguis_store::{Msg, Result, StoreError, agents, catalog, delivery, ledger};

pub use tianguis_store::group::Tx;
pub type BoxFut<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// A request to move an order.
#[derive(Debug, Clone)]
pub struct Move<'a> {
    pub order_id: OrderId,
    pub transition: Transition,
    pub actor: Actor,
    /// The person acting, when a person acts (timers and callbacks are `None`).
    pub actor_user: Option<i64>,
    pub reason: &'a str,
    /// The refund of a split (an admin resolving a dispute).
    pub refund_minor: Option<i64>,
    /// How the money came, for `HoldPayment`; cash when not said.
    pub method: Option<PaymentMethod>,
}

impl<'a> Move<'a> {
    pub fn new(order_id: impl Into<OrderId>, transition: Transition, actor: Actor) -> Move<'a> {
        Move {
            order_id: order_id.into(),
            transition,
            actor,
            actor_user: None,
            reason: "",
            refund_minor: None,
            method: None,
        }
    }
    pub fn by(mut self, user: Option<i64>) -> Self {
        self.actor_user = user;
        self
    }
    pub fn because(mut self, reason: &'a str) -> Self {
        self.reason = reason;
        self
    }
    pub fn refunding(mut self, minor: Option<i64>) -> Self {
        self.refund_minor = minor;
        self
    }
    pub fn paid_by(mut self, method: PaymentMethod) -> Self {
        self.method = Some(method);
        self
    }
}

/// A move being applied: the request, the order as it was, where it goes, the clock and the
/// marketplace's timings. Handlers may leave facts for observers (`released`).
pub struct Applied<'a> {
    pub m: &'a Move<'a>,
    pub order: MoveFacts,
    pub from: OrderState,
    pub to: OrderState,
    pub now: i64,
    pub timing: &'a Timing,
    /// What a settlement left the seller (their part: kept less a courier's delivery fee) and
    /// the platform fee on it, for commissions.
    pub released: Option<(Money, Money)>,
    /// The effects the move had (observers tell people of them).
    pub effects: Vec<Effect>,
}

/// Runs one effect of a move.
pub type Handler = for<'a> fn(&'a mut Tx, &'a mut Applied<'_>, Effect) -> BoxFut<'a>;
/// Sees every move after its effects (keeping another aggregate in step with the order).
pub type Observer = for<'a> fn(&'a mut Tx, &'a Applied<'_>) -> BoxFut<'a>;

pub struct Engine {
    handlers: Vec<(EffectKind, Handler)>,
    observers: Vec<(&'static str, Observer)>,
}

impl Engine {
    /// An engine that does nothing beyond the state change (build one with `on`/`observe`).
    pub fn empty() -> Engine {
        Engine {
            handlers: Vec::new(),
            observers: Vec::new(),
        }
    }

    /// Handle every effect of kind `kind` with `h` (replacing an earlier handler).
    pub fn on(mut self, kind: EffectKind, h: Handler) -> Engine {
        self.handlers.retain(|(k, _)| *k != kind);
        self.handlers.push((kind, h));
        self
    }

    pub fn observe(mut self, name: &'static str, o: Observer) -> Engine {
        self.observers.push((name, o));
        self
    }

    pub fn handles(&self, kind: EffectKind) -> bool {
        self.handlers.iter().any(|(k, _)| *k == kind)
    }

    pub fn observers(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.observers.iter().map(|(n, _)| *n)
    }

    /// The marketplace's engine: money (hold, release, refund, split), stock, the delivery code,
    /// the courier pool, timers; observed by logistics (jobs follow their order) and assisted
    /// commerce (agents' commissions on what sellers keep).
    pub fn standard() -> Engine {
        Engine::empty()
            .on(EffectKind::HoldPayment, hold_payment)
            .on(EffectKind::ReleaseEscrow, settle)
            .on(EffectKind::RefundAll, settle)
            .on(EffectKind::SplitEscrow, settle)
            .on(EffectKind::RestoreStock, restore_stock)
            .on(EffectKind::IssueDeliveryCode, issue_delivery_code)
            .on(EffectKind::OfferDelivery, offer_delivery)
            .on(EffectKind::Schedule, schedule)
            .observe("logistics: jobs follow their orders", follow_order)
            .observe("assisted commerce: agents' commissions", accrue_commission)
            .observe("texts: who hears of the move", tell)
    }

    /// Decide with the domain, then write everything the decision causes inside the caller's
    /// transaction. The state change is guarded on the state it was read in, so a concurrent
    /// second mover fails cleanly instead of acting twice.
    pub async fn apply(
        &self,
        tx: &mut Tx,
        now: i64,
        timing: &Timing,
        m: &Move<'_>,
    ) -> Result<OrderState> {
        let order = orders::move_facts_in(tx, m.order_id.0).await?;
        let (to, effects) = process::step(order.state, m.transition, m.actor, order.on_delivery)?;
        orders::set_state_in(tx, m.order_id.0, order.state, to, now).await?;
        orders::record_event_in(
            tx,
            &NewEvent {
                order_id: m.order_id.0,
                transition: m.transition.as_str(),
                from: order.state.as_str(),
                to,
                actor: m.actor,
                actor_user: m.actor_user,
                reason: m.reason,
            },
            now,
        )
        .await?;
        let mut applied = Applied {
            m,
            order,
            from: order.state,
            to,
            now,
            timing,
            released: None,
            effects: effects.to_vec(),
        };
        for e in effects {
            let Some((_, h)) = self.handlers.iter().find(|(k, _)| *k == e.kind()) else {
                return Err(StoreError::Corrupt(format!(
                    "no handler for the effect {:?}",
                    e.kind()
                )));
            };
            h(tx, &mut applied, *e).await?;
        }
        for (_, o) in &self.observers {
            o(tx, &applied).await?;
        }
        Ok(to)
    }
}

/// The marketplace's engine, built once.
pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(Engine::standard)
}

fn hold_payment<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, _: Effect) -> BoxFut<'a> {
    Box::pin(async move {
        // Cash on delivery (or a caller that does not say) is cash.
        let method = match a.m.method {
            Some(m) if !a.order.on_delivery => m,
            _ => PaymentMethod::Cash,
        };
        // Cash taken by a person is in their hands until they hand it over.
        let t = match a.m.actor_user {
            Some(holder) if method == PaymentMethod::Cash => {
                Transaction::cash_payment(a.m.order_id.0, holder, a.order.total)?
            }
            _ => Transaction::payment(a.m.order_id.0, method.as_str(), a.order.total)?,
        };
        ledger::post(tx, &t, a.now).await?;
        Ok(())
    })
}

/// Release, refund or split what escrow holds for the order.
fn settle<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, e: Effect) -> BoxFut<'a> {
    Box::pin(async move {
        let currency = a.order.total.currency;
        let order_id = a.m.order_id.0;
        let held = ledger::balance_in(tx, &Account::Escrow(order_id), currency).await?;
        let refund = match e {
            Effect::ReleaseEscrow => Money::zero(currency),
            Effect::RefundAll => held,
            _ => {
                let r =
                    a.m.refund_minor
                        .ok_or_else(|| StoreError::invalid("err-refund-needed"))?;
                if r < 0 || r > held.minor {
                    return Err(StoreError::Invalid(
                        Msg::new("err-refund-range").arg("max", held.minor),
                    ));
                }
                Money::new(r, currency)
            }
        };
        if held.minor <= 0 {
            return Ok(());
        }
        // A courier from the pool who delivered it earned the order's delivery fee.
        let courier = orders::courier_fee_in(tx, order_id).await?;
        let fee_bps = a.order.fee_bps;
        for t in Transaction::settle(order_id, a.order.seller_id, held, refund, fee_bps, courier)? {
            ledger::post(tx, &t, a.now).await?;
        }
        let kept = held
            .checked_sub(refund)
            .map_err(|e| StoreError::Invalid(e.msg()))?;
        if kept.minor > 0 {
            a.released = Some(Transaction::sellers_part(kept, fee_bps, courier)?);
        }
        Ok(())
    })
}

fn restore_stock<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, _: Effect) -> BoxFut<'a> {
    Box::pin(async move {
        let lines = orders::lines_in(tx, a.m.order_id.0).await?;
        catalog::restore_stock_in(tx, &lines).await
    })
}

fn issue_delivery_code<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, _: Effect) -> BoxFut<'a> {
    Box::pin(async move { orders::issue_delivery_code_in(tx, a.m.order_id.0).await })
}

fn offer_delivery<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, _: Effect) -> BoxFut<'a> {
    Box::pin(async move {
        delivery::offer_delivery(tx, a.m.order_id.0, a.now).await?;
        // Carriers the job fits hear of it (a few, nearest first by id order; not essential).
        for c in delivery::fitting_carriers_in(tx, a.m.order_id.0)
            .await?
            .into_iter()
            .take(5)
        {
            let lang = tianguis_store::users::lang_of_in(tx, c.user_id).await?;
            crate::notify::text_in(
                tx,
                &crate::notify::NewText {
                    phone: &c.phone,
                    template: "sms-job-offered",
                    args: Vec::new(),
                    lang: &lang,
                    order_id: None,
                    essential: false,
                },
                a.now,
            )
            .await?;
        }
        Ok(())
    })
}

fn schedule<'a>(tx: &'a mut Tx, a: &'a mut Applied<'_>, e: Effect) -> BoxFut<'a> {
    Box::pin(async move {
        let Effect::Schedule(timer, next) = e else {
            return Ok(());
        };
        timer_in(
            tx,
            a.m.order_id.0,
            next,
            a.now + a.timing.delay_ms(timer),
            a.now,
        )
        .await
    })
}

/// An order timer: `transition` is taken as `System` at `run_at` if the order still allows it.
pub async fn timer_in(
    tx: &mut Tx,
    order_id: i64,
    transition: Transition,
    run_at: i64,
    now: i64,
) -> Result<()> {
    queue::enqueue_in(
        tx,
        Kind::OrderTimer,
        timer_payload(order_id, transition),
        run_at,
        now,
    )
    .await?;
    Ok(())
}

fn timer_payload(order_id: i64, transition: Transition) -> serde_json::Value {
    serde_json::json!({"order_id": order_id, "transition": transition.as_str()})
}

/// Move an order's timer to `run_at` (a new one when it was claimed or gone meanwhile; the old
/// one then finds the order moved on, or acts at its time, which is never later).
pub async fn retime_in(
    tx: &mut Tx,
    order_id: i64,
    transition: Transition,
    run_at: i64,
    now: i64,
) -> Result<()> {
    let payload = timer_payload(order_id, transition);
    if queue::reschedule_in(tx, Kind::OrderTimer, &payload, run_at, now).await? == 0 {
        queue::enqueue_in(tx, Kind::OrderTimer, payload, run_at, now).await?;
    }
    Ok(())
}

fn follow_order<'a>(tx: &'a mut Tx, a: &'a Applied<'_>) -> BoxFut<'a> {
    Box::pin(async move {
        delivery::follow_order(tx, a.m.order_id.0, a.to, a.m.actor, a.m.actor_user, a.now).await
    })
}

/// The agent who placed an order earns on what the seller keeps, never on a refund.
fn tell<'a>(tx: &'a mut Tx, a: &'a Applied<'_>) -> BoxFut<'a> {
    Box::pin(async move { crate::notify::after_move_in(tx, a).await })
}

fn accrue_commission<'a>(tx: &'a mut Tx, a: &'a Applied<'_>) -> BoxFut<'a> {
    Box::pin(async move {
        let Some((kept, fee)) = a.released else {
            return Ok(());
        };
        if let Some(t) =
            agents::commission_in(tx, a.m.order_id.0, a.order.seller_id, kept, fee).await?
        {
            ledger::post(tx, &t, a.now).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tianguis_domain::process::TRANSITIONS;

    #[test]
    fn the_standard_engine_handles_every_effect_the_process_names() {
        let e = Engine::standard();
        for k in EffectKind::ALL {
            assert!(e.handles(k), "{k:?} has no handler");
        }
        for t in TRANSITIONS {
            for effect in t.effects {
                assert!(e.handles(effect.kind()), "{:?}: {effect:?}", t.name);
            }
        }
        assert_eq!(e.observers().count(), 3, "jobs, commissions, texts");
        assert!(!Engine::empty().handles(EffectKind::HoldPayment));
    }
}
