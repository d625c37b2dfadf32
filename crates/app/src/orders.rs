//! Buying and moving orders: checkout (one payment, one order per seller, stock taken, all or
//! nothing), a person's move on an order (the policy decides their role inside the
//! transaction), the buyer's code at the door, a timer's move, and payments arriving.

use crate::engine::{Move, Tx, engine, timer_in};
use crate::notify;
use crate::retrying;
use std::sync::Arc;
use tianguis_domain::checkout::{self, CheckoutError, PricedLine};
use tianguis_domain::ids::{OrderId, PaymentId};
use tianguis_domain::ledger::Transaction;
use tianguis_domain::money::Money;
use tianguis_domain::policy;
use tianguis_domain::process::{Actor, OrderState, Timer, Transition};
use tianguis_store::catalog;
use tianguis_store::limits;
use tianguis_store::mandates;
use tianguis_store::orders::{
    self, CheckoutRequest, CheckoutResult, NewCheckout, NewOrder, PaymentMethod,
};
use tianguis_store::pickup;
use tianguis_store::queue::{self, Kind};
use tianguis_store::users::{self, Role, User};
use tianguis_store::{Db, Msg, Result, StoreError, ledger};

/// What a checkout needs that is read before its write transaction.
struct Prepared {
    phone: String,
    address: String,
    fees: checkout::Fees,
    timing: tianguis_domain::process::Timing,
    promise_days: i64,
    plus_code: Option<String>,
    /// (pickup point, its slots)
    pickup: Option<(i64, i64)>,
    /// Language of texts to buyers without an account (the marketplace's).
    lang: String,
    /// The request's lines, checked and merged, by product.
    lines: Vec<(i64, i64)>,
    fingerprint: String,
}

/// An agent's keys are theirs (the walk-in buyer may be new, or buy elsewhere too).
fn idempotency_scope(req: &CheckoutRequest) -> String {
    match req.on_behalf {
        Some(b) => format!("checkout:agent:{}", b.agent_id),
        None => format!("checkout:{}", req.buyer_id),
    }
}

/// The stored result of a checkout under this key, if it finished; a key first used for
/// another request is refused.
async fn replay(
    db: &Db,
    tx: Option<&mut crate::engine::Tx>,
    req: &CheckoutRequest,
    key: &str,
    fingerprint: &str,
) -> Result<Option<CheckoutResult>> {
    let Some((first, response)) = orders::key_record(db, tx, &idempotency_scope(req), key).await?
    else {
        return Ok(None);
    };
    // Keys stored before fingerprints existed have none: they replay as before.
    if first.is_some_and(|f| f != fingerprint) {
        return Err(StoreError::invalid("err-idempotency-reused"));
    }
    match response {
        Some(resp) => Ok(Some(serde_json::from_str(&resp).map_err(|e| {
            StoreError::Corrupt(format!("stored checkout unreadable: {e}"))
        })?)),
        None => Err(StoreError::Conflict(Msg::new("err-checkout-in-flight"))),
    }
}

/// Checkout: one payment, one order per seller, stock reserved, all or nothing. A replay with
/// the same idempotency key returns the first result (true) and creates nothing. Everything
/// that can be checked is checked before the write transaction begins.
pub async fn checkout(db: &Db, req: &CheckoutRequest) -> Result<(CheckoutResult, bool)> {
    let key = checkout::idempotency_key(&req.idempotency_key)
        .ok_or(StoreError::invalid("err-idempotency-key"))?;
    let settings = db.settings().await?;
    let phone = settings.phone(&req.phone)?;
    let lines = match checkout::merge_lines(&req.lines, settings.max_checkout_lines()) {
        Ok(l) => l,
        // A page checkout sent again after it went through finds its cart empty: answer with
        // what the first one did.
        Err(CheckoutError::Empty) if req.session_id.is_some() => {
            if let Some(done) = replay(db, None, req, key, &req.fingerprint(&[])).await? {
                return Ok((done, true));
            }
            return Err(CheckoutError::Empty.into());
        }
        Err(e) => return Err(e.into()),
    };
    let fingerprint = req.fingerprint(&lines);
    let mut fees = settings.fees();
    // A pickup point replaces the address: its handling fee replaces the delivery fee.
    let (address, plus_code, pickup) = match req.pickup_point_id {
        Some(id) => {
            let p = db.pickup_point(id).await?;
            fees.delivery_per_order = p.fee_minor;
            (
                format!("{} ({})", p.name, p.plus_code),
                Some(p.plus_code.clone()),
                Some((p.id, p.slots)),
            )
        }
        None => {
            let address = req.address.trim();
            if address.is_empty() || address.chars().count() > 500 {
                return Err(StoreError::invalid("err-address"));
            }
            (
                address.to_string(),
                db.resolve_plus_code(req.buyer_id, address).await?,
                None,
            )
        }
    };
    let prep = Prepared {
        phone: phone.as_str().to_string(),
        address,
        fees,
        timing: settings.timing(),
        promise_days: db
            .place_promise_days(req.buyer_id)
            .await?
            .unwrap_or_else(|| settings.delivery_days()),
        plus_code,
        pickup,
        lang: settings.text("default_lang", "es"),
        lines,
        fingerprint,
    };
    let job = Arc::new(Job {
        req: req.clone(),
        key: key.to_string(),
        prep,
    });
    retrying(|| {
        let (unit_db, job) = (db.clone(), job.clone());
        db.write(move |tx| Box::pin(checkout_in(tx, unit_db, job)))
    })
    .await
}

/// What one checkout's write unit needs, owned so the unit can wait in the group commit.
struct Job {
    req: CheckoutRequest,
    key: String,
    prep: Prepared,
}

/// The checkout's writes, all inside the transaction given: stock, orders, payment, timers,
/// texts and the stored answer commit together or not at all.
async fn checkout_in(tx: &mut Tx, db: Db, job: Arc<Job>) -> Result<(CheckoutResult, bool)> {
    let (req, key, prep) = (&job.req, job.key.as_str(), &job.prep);
    let now = db.now_ms();
    let scope = idempotency_scope(req);
    if !orders::claim_key_in(tx, &scope, key, &prep.fingerprint, now).await? {
        // Another checkout holds the key: answer with its result; nothing written here.
        return match replay(&db, Some(tx), req, key, &prep.fingerprint).await? {
            Some(r) => Ok((r, true)),
            None => Err(StoreError::Conflict(Msg::new("err-checkout-in-flight"))),
        };
    }
    if !limits::take_in(&mut *tx, &req.limits, now).await? {
        return Err(StoreError::Limited);
    }
    if let Some((point, slots)) = prep.pickup {
        pickup::take_slot(&mut *tx, point, slots).await?;
    }
    // Price from the catalogue, in product-id order (merge_lines sorted them) so concurrent
    // checkouts lock rows in the same order (no deadlocks on PostgreSQL); stock and price in
    // one guarded statement per product: no oversell, one round trip under the write lock.
    let mut priced = Vec::new();
    for &(pid, qty) in &prep.lines {
        let Some((seller_id, unit_price, left)) =
            catalog::take_stock_in(&mut *tx, pid, qty).await?
        else {
            let (stock, sold) = catalog::stock_in(&mut *tx, pid).await?;
            if !sold {
                return Err(StoreError::invalid("err-not-sold"));
            }
            return Err(CheckoutError::OutOfStock {
                product_id: pid,
                available: stock,
            }
            .into());
        };
        priced.push(PricedLine {
            product_id: pid,
            seller_id,
            unit_price,
            quantity: qty,
            stock: left + qty,
        });
    }
    let (drafts, grand) = checkout::split(&priced, prep.fees)?;
    let tracking_code = orders::tracking_code();
    let checkout_id = orders::insert_checkout_in(
        &mut *tx,
        &NewCheckout {
            buyer_id: req.buyer_id,
            total: grand,
            method: req.method,
            address: &prep.address,
            phone: &prep.phone,
            plus_code: prep.plus_code.as_deref(),
            on_behalf: req.on_behalf,
            tracking_code: &tracking_code,
        },
        now,
    )
    .await?;
    let mut order_ids = Vec::new();
    for d in &drafts {
        let oid = orders::insert_order_in(
            &mut *tx,
            &NewOrder {
                checkout_id,
                buyer_id: req.buyer_id,
                draft: d,
                due_at: tianguis_domain::promise::due_at(now, prep.promise_days),
                pickup_point_id: prep.pickup.map(|p| p.0),
            },
            now,
        )
        .await?;
        // Cash on delivery is fulfilled unpaid: the seller has until the ship deadline to
        // accept and send it. Prepaid orders wait for their payment.
        let (timer, next) = if req.method == PaymentMethod::CashOnDelivery {
            (Timer::Unshipped, Transition::AutoCancelUnshipped)
        } else {
            (Timer::Unpaid, Transition::ExpireUnpaid)
        };
        timer_in(&mut *tx, oid, next, now + prep.timing.delay_ms(timer), now).await?;
        if req.method == PaymentMethod::CashOnDelivery {
            notify::new_cod_order_in(&mut *tx, oid, now).await?;
        }
        order_ids.push(oid);
    }
    let payment_id =
        orders::insert_payment_in(&mut *tx, checkout_id, req.method, grand, &prep.phone, now)
            .await?;
    if req.method == PaymentMethod::MobileMoney {
        // Asking the provider is a job written with the checkout: a crash between the commit
        // and the request cannot strand the payment; it is retried until the provider has it.
        queue::enqueue_in(
            &mut *tx,
            Kind::MomoRequest,
            serde_json::json!({"payment_id": payment_id}),
            now,
            now,
        )
        .await?;
    }
    let result = CheckoutResult {
        checkout_id,
        order_ids,
        total_minor: grand.minor,
        currency: grand.currency.as_str().to_string(),
        payment_id,
        tracking_code,
    };
    if req.on_behalf.is_some() {
        // The walk-in buyer has no account to look at: a text message with the order code.
        notify::text_in(
            &mut *tx,
            &notify::NewText {
                phone: &prep.phone,
                template: "sms-order-placed",
                args: vec![
                    ("code", result.tracking_code.clone()),
                    ("total", grand.minor.to_string()),
                    ("currency", result.currency.clone()),
                ],
                lang: &prep.lang,
                order_id: result.order_ids.first().copied(),
                essential: true,
            },
            now,
        )
        .await?;
    }
    orders::store_response_in(
        &mut *tx,
        &scope,
        key,
        &serde_json::to_string(&result).unwrap_or_default(),
    )
    .await?;
    if let Some(s) = &req.session_id {
        catalog::empty_cart_in(&mut *tx, s).await?;
    }
    Ok((result, false))
}

/// A person takes a transition on an order. Their role for it is decided by the policy on the
/// order and the person as they are inside the transaction, so a seller can never move another
/// seller's order and a role taken away a moment ago no longer counts. An agent with an orders
/// mandate acts as the seller for the moves it covers, and each such act is logged on it.
/// `refund_minor` is the admin's split when resolving a dispute.
pub async fn act(
    db: &Db,
    user: &User,
    order_id: impl Into<OrderId>,
    t: Transition,
    reason: &str,
    refund_minor: Option<i64>,
) -> Result<OrderState> {
    let order_id = i64::from(order_id.into());
    let timing = db.timing().await?;
    retrying(|| async {
        let now = db.now_ms();
        let mut tx = db.begin_write().await?;
        let person = users::person_in(&mut tx, user.id).await?;
        let facts = orders::facts_in(&mut tx, order_id).await?;
        // The mandate as it stands now, and the act logged on it in the same transaction.
        let mandate = if person.has(Role::Agent) {
            mandates::mandate_for_in(&mut tx, user.id, facts.seller_id.0, |s| s.orders).await?
        } else {
            None
        };
        let actor = policy::order_actor(&person, &facts, t, mandate.as_ref().map(|m| m.scope))
            .map_err(tianguis_store::denied)?;
        let m = Move::new(order_id, t, actor)
            .by(Some(user.id))
            .because(reason)
            .refunding(refund_minor);
        let state = engine().apply(&mut tx, now, &timing, &m).await?;
        if let Some(md) = &mandate
            && actor == Actor::Seller
            && person.seller_id != Some(facts.seller_id)
        {
            mandates::log_in(
                &mut tx,
                md.id,
                Some(user.id),
                t.as_str(),
                &format!("order {order_id}"),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(state)
    })
    .await
}

/// Take a transition as `actor` (already authorised by the caller: the seller's own tools,
/// tests, the demo), in one database transaction.
pub async fn transition(
    db: &Db,
    order_id: impl Into<OrderId>,
    t: Transition,
    actor: Actor,
    actor_user: Option<i64>,
    reason: &str,
    refund_minor: Option<i64>,
) -> Result<OrderState> {
    let order_id = i64::from(order_id.into());
    let timing = db.timing().await?;
    retrying(|| async {
        let mut tx = db.begin_write().await?;
        let m = Move::new(order_id, t, actor)
            .by(actor_user)
            .because(reason)
            .refunding(refund_minor);
        let s = engine().apply(&mut tx, db.now_ms(), &timing, &m).await?;
        tx.commit().await?;
        Ok(s)
    })
    .await
}

/// Wrong codes before an order's code locks (the buyer can still confirm; an admin can).
pub const MAX_CODE_FAILURES: i64 = 5;

/// Whoever delivers records the delivery with the buyer's one-time code (proof of delivery).
/// For cash on delivery this is also the cash collection. Five wrong codes lock the order.
pub async fn deliver_with_code(
    db: &Db,
    user: &User,
    order_id: impl Into<OrderId>,
    code: &str,
) -> Result<OrderState> {
    let order_id = i64::from(order_id.into());
    let timing = db.timing().await?;
    let now = db.now_ms();
    // Everything it decides on is read inside the transaction that records it.
    let mut tx = db.begin_write().await?;
    let t = if orders::move_facts_in(&mut tx, order_id).await?.on_delivery {
        Transition::CollectOnDelivery
    } else {
        Transition::DeliverWithCode
    };
    let person = users::person_in(&mut tx, user.id).await?;
    let facts = orders::facts_in(&mut tx, order_id).await?;
    let actor = policy::delivery_actor(&person, &facts, t).map_err(tianguis_store::denied)?;
    let orders::CodeFacts {
        code: expected,
        failures,
        checked_in_at,
    } = orders::delivery_code_in(&mut tx, order_id).await?;
    if facts.pickup_point.is_some() && checked_in_at.is_none() {
        // A parcel is handed over at the point only after it was checked in there.
        return Err(StoreError::Conflict(Msg::new("err-pickup-not-checked-in")));
    }
    let Some(expected) = expected else {
        return Err(StoreError::Conflict(Msg::new("err-order-changed")));
    };
    if failures >= MAX_CODE_FAILURES {
        return Err(StoreError::Conflict(Msg::new("err-code-locked")));
    }
    let given: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
    let right = {
        use subtle::ConstantTimeEq;
        given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
    };
    if !right {
        orders::count_code_failure_in(&mut tx, order_id).await?;
        tx.commit().await?;
        return Err(StoreError::Invalid(
            Msg::new("err-code-wrong").arg("left", MAX_CODE_FAILURES - failures - 1),
        ));
    }
    let m = Move::new(order_id, t, actor)
        .by(Some(user.id))
        .because("delivery code");
    let state = engine().apply(&mut tx, now, &timing, &m).await?;
    tx.commit().await?;
    Ok(state)
}

/// A timer's move: the job's transition as `System`. Ok(false) when the order had moved on
/// (the timer is skipped). The job is finished in the same transaction as its effect, so it
/// takes effect exactly once across servers.
pub async fn run_timer(db: &Db, job: &queue::QueuedJob) -> Result<bool> {
    let order_id = job.id_in("order_id")?;
    let name = job.payload["transition"].as_str().unwrap_or_default();
    let t = Transition::parse(name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown timer transition {name}")))?;
    let timing = db.timing().await?;
    let m = Move::new(order_id, t, Actor::System).because("timer");
    // An order changed by someone else between the engine's read and its write is read again:
    // the second look either applies the move or finds it moved on.
    let mut attempt = 0;
    let (mut tx, now, outcome) = loop {
        attempt += 1;
        let now = db.now_ms();
        let mut tx = db.begin_write().await?;
        match engine().apply(&mut tx, now, &timing, &m).await {
            Ok(_) => break (tx, now, "done"),
            Err(StoreError::Process(
                tianguis_domain::process::ProcessError::NotAllowedFrom { .. }
                | tianguis_domain::process::ProcessError::WrongPayment { .. },
            )) => {
                // The order moved on: nothing to do, and nothing half-done to keep.
                tx.rollback().await?;
                break (db.begin_write().await?, now, "skipped");
            }
            Err(StoreError::Conflict(_)) if attempt < 3 => tx.rollback().await?,
            Err(e) => return Err(e),
        }
    };
    if !queue::finish_in(&mut tx, job, outcome, now).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(outcome == "done")
}

/// The history line of money that arrived for an order already ended, and went straight back.
pub const LATE_REFUND: &str = "late_payment_refunded";

/// A payment succeeded (provider callback, status query, or cash counted by `collector`).
/// Idempotent: the second call for the same payment changes nothing and returns false. Orders
/// that expired before the money arrived take it in and give it straight back.
pub async fn payment_succeeded(
    db: &Db,
    payment_id: impl Into<PaymentId>,
    collector: Option<i64>,
) -> Result<bool> {
    let payment_id = i64::from(payment_id.into());
    let timing = db.timing().await?;
    retrying(|| async {
        let now = db.now_ms();
        let mut tx = db.begin_write().await?;
        let pay = orders::payment_in(&mut tx, payment_id).await?;
        if !orders::mark_paid_in(&mut tx, payment_id, collector, now).await? {
            tx.rollback().await?;
            return Ok(false);
        }
        let method = pay.method;
        let actor = if collector.is_some() {
            Actor::Collector
        } else {
            Actor::System
        };
        for (oid, state, total) in orders::checkout_orders_in(&mut tx, pay.checkout_id).await? {
            if state == OrderState::Placed {
                let m = Move::new(oid, Transition::Pay, actor)
                    .by(collector)
                    .paid_by(method);
                engine().apply(&mut tx, now, &timing, &m).await?;
            } else {
                let amount = Money::new(total, pay.amount.currency);
                let t = match collector {
                    Some(holder) if method == PaymentMethod::Cash => {
                        Transaction::cash_payment(oid, holder, amount)?
                    }
                    _ => Transaction::payment(oid, method.as_str(), amount)?,
                };
                ledger::post(&mut tx, &t, now).await?;
                ledger::post(&mut tx, &Transaction::refund(oid, amount)?, now).await?;
                // Reported: on the order's history (officials list these on /admin) and to
                // the buyer by text.
                orders::record_event_in(
                    &mut tx,
                    &orders::NewEvent {
                        order_id: oid,
                        transition: LATE_REFUND,
                        from: state.as_str(),
                        to: state,
                        actor,
                        actor_user: collector,
                        reason: "",
                    },
                    now,
                )
                .await?;
                notify::late_payment_refunded_in(&mut tx, oid, total, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    })
    .await
}
