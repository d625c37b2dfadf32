//! Checkout, order transitions and payments. Each public operation is one database transaction:
//! the domain decides (`process::step`, `checkout::split`, `ledger::Transaction`), this module
//! writes the state change, its event, its postings, stock and timers together.

use crate::users::User;
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction as DbTx};
use tianguis_domain::checkout::Fees;
use tianguis_domain::ids::{PointId, SellerId, UserId};
use tianguis_domain::money::{Currency, Money};
use tianguis_domain::policy::{self, OrderFacts};
use tianguis_domain::process::{Actor, OrderState, Timing, Transition};

pub use tianguis_domain::kinds::{PaymentMethod, PaymentStatus};

/// A payment method from a form or a request.
pub fn parse_method(s: &str) -> Result<PaymentMethod> {
    PaymentMethod::parse(s).ok_or_else(|| StoreError::invalid("err-payment-method"))
}

fn method_of(s: &str) -> Result<PaymentMethod> {
    PaymentMethod::parse(s).ok_or_else(|| StoreError::Corrupt(format!("payment method {s}")))
}

fn status_of(s: &str) -> Result<PaymentStatus> {
    PaymentStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("payment status {s}")))
}

#[derive(Debug, Clone)]
pub struct CheckoutRequest {
    pub buyer_id: i64,
    /// Lines to buy (product, quantity); taken from the session's cart by the web layer.
    pub lines: Vec<(i64, i64)>,
    /// Cart to empty on success.
    pub session_id: Option<String>,
    pub idempotency_key: String,
    pub method: PaymentMethod,
    pub address: String,
    pub phone: String,
    /// Deliver to this pickup point instead of the address.
    pub pickup_point_id: Option<i64>,
    /// Placed by an agent at a digital centre for a walk-in buyer.
    pub on_behalf: Option<OnBehalf>,
    /// Rate limits taken inside the checkout's own transaction (a replay takes none).
    pub limits: Vec<crate::limits::Limit>,
}

impl CheckoutRequest {
    /// A digest of what is being asked for, so one idempotency key cannot stand for two
    /// different requests.
    /// Lines taken from the visitor's cart (a page checkout: `session_id` is set) are not part
    /// of it: the cart empties on success, and pressing "pay" again is the same request.
    pub fn fingerprint(&self, merged: &[(i64, i64)]) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        if self.session_id.is_none() {
            for (p, q) in merged {
                h.update(format!("{p}x{q};"));
            }
        }
        h.update(format!(
            "|{}|{}|{}|{:?}|{:?}",
            self.method.as_str(),
            self.address.trim(),
            self.phone.trim(),
            self.pickup_point_id,
            self.on_behalf.map(|b| (b.agent_id, b.centre_id)),
        ));
        hex_of(&h.finalize())
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnBehalf {
    pub agent_id: i64,
    pub centre_id: i64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct CheckoutResult {
    pub checkout_id: i64,
    pub order_ids: Vec<i64>,
    pub total_minor: i64,
    pub currency: String,
    pub payment_id: i64,
    /// For following the order without an account (`/track/CODE`, the text message).
    #[serde(default)]
    pub tracking_code: String,
}

#[derive(Debug, Clone)]
pub struct OrderLine {
    pub product_id: i64,
    pub name_en: String,
    pub name_es: Option<String>,
    pub quantity: i64,
    pub unit_price: Money,
}

impl OrderLine {
    pub fn name(&self, lang: &str) -> &str {
        match (lang, &self.name_es) {
            ("es", Some(n)) if !n.is_empty() => n,
            _ => &self.name_en,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: i64,
    pub checkout_id: i64,
    pub buyer_id: i64,
    pub buyer_name: String,
    pub seller_id: i64,
    pub shop_name: String,
    pub state: OrderState,
    pub subtotal: Money,
    pub delivery: Money,
    pub total: Money,
    pub fee_bps: i64,
    pub address: String,
    pub phone: String,
    pub method: PaymentMethod,
    pub payment_status: Option<PaymentStatus>,
    pub payment_id: Option<i64>,
    /// The full plus code of the delivery address, when it has one.
    pub plus_code: Option<String>,
    /// Delivered to a pickup point: which, and when the parcel was checked in.
    pub pickup_point_id: Option<i64>,
    pub checked_in_at: Option<i64>,
    /// The user riding for the carrier that took the order's delivery job.
    pub courier_user_id: Option<i64>,
    /// Placed by this agent at this digital centre, on the buyer's behalf.
    pub agent_id: Option<i64>,
    pub centre_id: Option<i64>,
    pub tracking_code: Option<String>,
    /// When the delivery promise falls due, and when it was delivered.
    pub due_at: Option<i64>,
    pub delivered_at: Option<i64>,
    /// The one-time delivery code, once shipped. Show it to the buyer only.
    pub delivery_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone)]
pub struct OrderEvent {
    pub transition: String,
    pub from_state: String,
    pub to_state: String,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    pub reason: String,
    pub at: i64,
}

/// A provider's answer refused: (payment, where it came from, what differed, the provider's
/// reference, when).
pub type RefusedAnswer = (
    Option<i64>,
    String,
    tianguis_domain::reconcile::Mismatch,
    Option<String>,
    i64,
);

#[derive(Debug, Clone)]
pub struct Payment {
    pub id: i64,
    pub checkout_id: i64,
    pub method: PaymentMethod,
    pub provider_ref: Option<String>,
    pub status: PaymentStatus,
    pub amount: Money,
    pub payer_phone: Option<String>,
    /// Ours, sent to the provider: random and unique forever (see migration 0019).
    pub reference: String,
}

const ORDER_SELECT: &str = "SELECT o.id, o.checkout_id, o.buyer_id, u.name AS buyer_name, o.seller_id, s.shop_name, o.state, \
    o.subtotal_minor, o.delivery_minor, o.total_minor, o.currency, o.fee_bps, c.address, c.phone, c.method, \
    (SELECT pm.status FROM payments pm WHERE pm.checkout_id = o.checkout_id ORDER BY pm.id DESC LIMIT 1) AS payment_status, \
    (SELECT pm.id FROM payments pm WHERE pm.checkout_id = o.checkout_id ORDER BY pm.id DESC LIMIT 1) AS payment_id, \
    c.plus_code, o.delivery_code, o.due_at, o.delivered_at, o.pickup_point_id, o.checked_in_at, o.created_at, o.updated_at, c.agent_id, c.centre_id, c.tracking_code, \
    (SELECT cr.user_id FROM delivery_jobs dj JOIN carriers cr ON cr.id = dj.carrier_id WHERE dj.order_id = o.id) AS courier_user_id \
    FROM orders o JOIN users u ON u.id = o.buyer_id JOIN sellers s ON s.id = o.seller_id JOIN checkouts c ON c.id = o.checkout_id";

fn cur(s: &str) -> Result<Currency> {
    Currency::parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn order_from(r: &sqlx::any::AnyRow) -> Result<Order> {
    let c = cur(&row_str(r, "currency")?)?;
    let state = row_str(r, "state")?;
    Ok(Order {
        id: row_i64(r, "id")?,
        checkout_id: row_i64(r, "checkout_id")?,
        buyer_id: row_i64(r, "buyer_id")?,
        buyer_name: row_str(r, "buyer_name")?,
        seller_id: row_i64(r, "seller_id")?,
        shop_name: row_str(r, "shop_name")?,
        state: OrderState::parse(&state)
            .ok_or(StoreError::Corrupt(format!("unknown state {state}")))?,
        subtotal: Money::new(row_i64(r, "subtotal_minor")?, c),
        delivery: Money::new(row_i64(r, "delivery_minor")?, c),
        total: Money::new(row_i64(r, "total_minor")?, c),
        fee_bps: row_i64(r, "fee_bps")?,
        address: row_str(r, "address")?,
        phone: row_str(r, "phone")?,
        method: method_of(&row_str(r, "method")?)?,
        payment_status: row_opt_str(r, "payment_status")?
            .as_deref()
            .map(status_of)
            .transpose()?,
        payment_id: row_opt_i64(r, "payment_id")?,
        delivery_code: row_opt_str(r, "delivery_code")?,
        plus_code: row_opt_str(r, "plus_code")?,
        pickup_point_id: row_opt_i64(r, "pickup_point_id")?,
        courier_user_id: row_opt_i64(r, "courier_user_id")?,
        agent_id: row_opt_i64(r, "agent_id")?,
        centre_id: row_opt_i64(r, "centre_id")?,
        tracking_code: row_opt_str(r, "tracking_code")?,
        checked_in_at: row_opt_i64(r, "checked_in_at")?,
        due_at: row_opt_i64(r, "due_at")?,
        delivered_at: row_opt_i64(r, "delivered_at")?,
        created_at: row_i64(r, "created_at")?,
        updated_at: row_i64(r, "updated_at")?,
        lines: Vec::new(),
    })
}

impl Order {
    /// What the authorization policy needs to know about this order.
    pub fn facts(&self) -> OrderFacts {
        OrderFacts {
            buyer_id: UserId(self.buyer_id),
            seller_id: SellerId(self.seller_id),
            placed_at: self.centre_id.map(PointId),
            pickup_point: self.pickup_point_id.map(PointId),
            courier: self.courier_user_id.map(UserId),
        }
    }
}

/// Which role a user plays for an order and a transition, if any (see `policy::order_roles`).
pub fn actor_for(user: &User, order: &Order, t: Transition) -> Option<Actor> {
    let allowed = t.def().actors;
    policy::order_roles(&user.person(), &order.facts())
        .into_iter()
        .find(|a| allowed.contains(a))
}

/// Whether a user may see an order at all (see `policy::may_view_order`).
pub fn may_view(user: &User, order: &Order) -> bool {
    policy::may_view_order(&user.person(), &order.facts())
}

impl Db {
    pub async fn fees(&self) -> Result<Fees> {
        Ok(self.settings().await?.fees())
    }

    pub async fn timing(&self) -> Result<Timing> {
        Ok(self.settings().await?.timing())
    }

    pub async fn order(&self, id: i64) -> Result<Order> {
        let q = format!("{ORDER_SELECT} WHERE o.id = $1");
        let r = sqlx::query(crate::sql(q))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("order"))?;
        let mut o = order_from(&r)?;
        let lines = sqlx::query(
            "SELECT l.product_id, l.quantity, l.unit_price_minor, p.name_en, p.name_es FROM order_lines l \
             JOIN products p ON p.id = l.product_id WHERE l.order_id = $1 ORDER BY l.product_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for l in &lines {
            o.lines.push(OrderLine {
                product_id: row_i64(l, "product_id")?,
                name_en: row_str(l, "name_en")?,
                name_es: row_opt_str(l, "name_es")?,
                quantity: row_i64(l, "quantity")?,
                unit_price: Money::new(row_i64(l, "unit_price_minor")?, o.total.currency),
            });
        }
        Ok(o)
    }

    /// Orders visible to a user: an admin sees all, a seller their shop's, a buyer their own.
    pub async fn orders_for(
        &self,
        user: &User,
        as_seller: bool,
        state: Option<OrderState>,
        limit: i64,
    ) -> Result<Vec<Order>> {
        let (cond, id) = if as_seller {
            (
                "o.seller_id = $1",
                user.seller_id
                    .ok_or(StoreError::Forbidden(Msg::new("err-no-shop")))?,
            )
        } else {
            ("o.buyer_id = $1", user.id)
        };
        self.list_orders(cond, id, state, limit).await
    }

    /// The orders one checkout was split into.
    pub async fn checkout_orders(&self, checkout_id: i64) -> Result<Vec<Order>> {
        self.list_orders("o.checkout_id = $1", checkout_id, None, 500)
            .await
    }

    pub async fn all_orders(&self, state: Option<OrderState>, limit: i64) -> Result<Vec<Order>> {
        self.list_orders("o.id > $1", 0, state, limit).await
    }

    pub(crate) async fn list_orders(
        &self,
        cond: &str,
        id: i64,
        state: Option<OrderState>,
        limit: i64,
    ) -> Result<Vec<Order>> {
        let q = format!(
            "{ORDER_SELECT} WHERE ({cond}) AND ($2 = '' OR o.state = $3) ORDER BY o.id DESC LIMIT $4"
        );
        let st = state.map(|s| s.as_str()).unwrap_or("");
        let rows = sqlx::query(crate::sql(q))
            .bind(id)
            .bind(st)
            .bind(st)
            .bind(limit.clamp(1, 500))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(order_from).collect()
    }

    pub async fn order_events(&self, order_id: i64) -> Result<Vec<OrderEvent>> {
        let rows = sqlx::query("SELECT transition, from_state, to_state, actor, actor_user_id, reason, at FROM order_events WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(OrderEvent {
                    transition: row_str(r, "transition")?,
                    from_state: row_str(r, "from_state")?,
                    to_state: row_str(r, "to_state")?,
                    actor: row_str(r, "actor")?,
                    actor_user_id: row_opt_i64(r, "actor_user_id")?,
                    reason: row_str(r, "reason")?,
                    at: row_i64(r, "at")?,
                })
            })
            .collect()
    }

    /// Open orders that are late or at risk of breaking the delivery promise, by the domain's
    /// rule (`promise::status`), most overdue first.
    pub async fn promise_watch(&self) -> Result<(Vec<Order>, Vec<Order>)> {
        use tianguis_domain::promise::{DAY_MS, Promise, status};
        let now = self.now_ms();
        let q = format!(
            "{ORDER_SELECT} WHERE o.due_at <= $1 AND o.state IN ('placed', 'paid', 'accepted', 'packed', 'shipped') ORDER BY o.due_at LIMIT 500"
        );
        let rows = sqlx::query(crate::sql(q))
            .bind(now + DAY_MS)
            .fetch_all(&self.pool)
            .await?;
        let (mut late, mut at_risk) = (Vec::new(), Vec::new());
        for r in &rows {
            let o = order_from(r)?;
            // An unpaid prepaid order owes nothing yet.
            if o.state == OrderState::Placed && o.method != PaymentMethod::CashOnDelivery.as_str() {
                continue;
            }
            match status(o.state, now, o.due_at, o.delivered_at, DAY_MS) {
                Promise::Late => late.push(o),
                Promise::AtRisk => at_risk.push(o),
                _ => {}
            }
        }
        Ok((late, at_risk))
    }

    pub async fn orders_by_state(&self) -> Result<Vec<(String, i64)>> {
        let rows =
            sqlx::query("SELECT state, COUNT(*) AS n FROM orders GROUP BY state ORDER BY state")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((row_str(r, "state")?, row_i64(r, "n")?)))
            .collect()
    }

    pub async fn payment(&self, id: i64) -> Result<Payment> {
        let r = sqlx::query(crate::sql(format!("{PAYMENT_SELECT} WHERE id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("payment"))?;
        payment_from(&r)
    }

    /// Money that arrived for orders already ended and went straight back, newest first:
    /// (order, its total, when).
    pub async fn late_refunds(&self, limit: i64) -> Result<Vec<(i64, Money, i64)>> {
        let rows = sqlx::query("SELECT e.order_id, o.total_minor, o.currency, e.at FROM order_events e JOIN orders o ON o.id = e.order_id WHERE e.transition = 'late_payment_refunded' ORDER BY e.at DESC, e.order_id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    row_i64(r, "order_id")?,
                    Money::new(row_i64(r, "total_minor")?, cur(&row_str(r, "currency")?)?),
                    row_i64(r, "at")?,
                ))
            })
            .collect()
    }

    /// A provider's answer refused because it was about another payment, kept for officials.
    pub async fn record_provider_mismatch(
        &self,
        payment_id: Option<i64>,
        source: &str,
        m: &tianguis_domain::reconcile::Mismatch,
        provider_ref: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO provider_mismatches (payment_id, source, field, ours, theirs, provider_ref, found_at) VALUES ($1,$2,$3,$4,$5,$6,$7)")
            .bind(payment_id)
            .bind(source.to_string())
            .bind(m.field)
            .bind(m.ours.chars().take(200).collect::<String>())
            .bind(m.theirs.chars().take(200).collect::<String>())
            .bind(provider_ref.map(|r| r.chars().take(200).collect::<String>()))
            .bind(self.now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The latest refused provider answers.
    pub async fn provider_mismatches(&self, limit: i64) -> Result<Vec<RefusedAnswer>> {
        let rows = sqlx::query("SELECT payment_id, source, field, ours, theirs, provider_ref, found_at FROM provider_mismatches ORDER BY id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let field = match row_str(r, "field")?.as_str() {
                    "reference" => "reference",
                    "currency" => "currency",
                    _ => "amount",
                };
                Ok((
                    row_opt_i64(r, "payment_id")?,
                    row_str(r, "source")?,
                    tianguis_domain::reconcile::Mismatch {
                        field,
                        ours: row_str(r, "ours")?,
                        theirs: row_str(r, "theirs")?,
                    },
                    row_opt_str(r, "provider_ref")?,
                    row_i64(r, "found_at")?,
                ))
            })
            .collect()
    }

    pub async fn payment_by_ref(&self, provider_ref: &str) -> Result<Payment> {
        let r = sqlx::query(crate::sql(format!(
            "{PAYMENT_SELECT} WHERE provider_ref = $1"
        )))
        .bind(provider_ref.to_string())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound("payment"))?;
        payment_from(&r)
    }

    /// The provider accepted our request and gave its reference.
    pub async fn set_provider_ref(&self, payment_id: i64, provider_ref: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        set_provider_ref_in(&mut tx, payment_id, provider_ref, self.now_ms()).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn payment_failed(&self, payment_id: i64) -> Result<()> {
        sqlx::query("UPDATE payments SET status = 'failed', updated_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(self.now_ms())
            .bind(payment_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

const PAYMENT_SELECT: &str = "SELECT id, checkout_id, method, provider_ref, status, amount_minor, currency, payer_phone, reference FROM payments";

fn payment_from(r: &sqlx::any::AnyRow) -> Result<Payment> {
    Ok(Payment {
        id: row_i64(r, "id")?,
        checkout_id: row_i64(r, "checkout_id")?,
        method: method_of(&row_str(r, "method")?)?,
        provider_ref: row_opt_str(r, "provider_ref")?,
        status: status_of(&row_str(r, "status")?)?,
        amount: Money::new(row_i64(r, "amount_minor")?, cur(&row_str(r, "currency")?)?),
        payer_phone: row_opt_str(r, "payer_phone")?,
        reference: row_opt_str(r, "reference")?.unwrap_or_default(),
    })
}

// ---- persistence primitives the use cases compose inside one transaction ----

/// What moving an order needs to know, read inside the transaction that moves it.
#[derive(Debug, Clone, Copy)]
pub struct MoveFacts {
    pub order_id: i64,
    pub state: OrderState,
    pub seller_id: i64,
    pub total: Money,
    pub fee_bps: u32,
    /// Cash on delivery: fulfilled unpaid, the delivery is the collection.
    pub on_delivery: bool,
}

pub async fn move_facts_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<MoveFacts> {
    let r = sqlx::query("SELECT o.state, o.seller_id, o.currency, o.total_minor, o.fee_bps, c.method FROM orders o JOIN checkouts c ON c.id = o.checkout_id WHERE o.id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("order"))?;
    let state = row_str(&r, "state")?;
    Ok(MoveFacts {
        order_id,
        state: OrderState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown state {state}")))?,
        seller_id: row_i64(&r, "seller_id")?,
        total: Money::new(row_i64(&r, "total_minor")?, cur(&row_str(&r, "currency")?)?),
        fee_bps: u32::try_from(row_i64(&r, "fee_bps")?).unwrap_or(0),
        on_delivery: row_str(&r, "method")? == PaymentMethod::CashOnDelivery.as_str(),
    })
}

/// The courier (a user) who delivered the order through the pool, and the delivery fee the
/// order carries: theirs at release. None when no pool job delivered it (the seller shipped).
pub async fn courier_fee_in(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
) -> Result<Option<(i64, Money)>> {
    let r = sqlx::query(
        "SELECT cr.user_id, o.delivery_minor, o.currency FROM orders o \
         JOIN delivery_jobs dj ON dj.order_id = o.id JOIN carriers cr ON cr.id = dj.carrier_id \
         WHERE o.id = $1 AND dj.state = 'delivered'",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?;
    match r {
        None => Ok(None),
        Some(r) => Ok(Some((
            row_i64(&r, "user_id")?,
            Money::new(
                row_i64(&r, "delivery_minor")?,
                cur(&row_str(&r, "currency")?)?,
            ),
        ))),
    }
}

/// What the texts about an order say and where they go, read inside the transaction of the
/// move they tell.
#[derive(Debug, Clone)]
pub struct TextFacts {
    /// The phone given at checkout (a walk-in buyer's own), and the buyer's language.
    pub buyer_phone: String,
    pub buyer_lang: String,
    pub seller_phone: String,
    pub seller_lang: String,
    pub shop_name: String,
    /// The checkout's code (what the buyer follows at /track).
    pub tracking_code: String,
    pub total: Money,
    pub due_at: Option<i64>,
    /// Whoever brings it: the pool carrier holding its job, if any.
    pub carrier_name: Option<String>,
    /// The pickup point it waits at, with its hours.
    pub point: Option<(String, String)>,
    pub cash_on_delivery: bool,
}

pub async fn text_facts_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<TextFacts> {
    let r = sqlx::query(
        "SELECT c.phone AS buyer_phone, \
         COALESCE(ub.lang, (SELECT value FROM settings WHERE key = 'default_lang'), 'es') AS buyer_lang, \
         us.phone AS seller_phone, \
         COALESCE(us.lang, (SELECT value FROM settings WHERE key = 'default_lang'), 'es') AS seller_lang, \
         s.shop_name, c.tracking_code, c.method, o.total_minor, o.currency, o.due_at, \
         pp.name AS point_name, pp.hours AS point_hours, \
         (SELECT cr.name FROM delivery_jobs dj JOIN carriers cr ON cr.id = dj.carrier_id WHERE dj.order_id = o.id) AS carrier_name \
         FROM orders o JOIN checkouts c ON c.id = o.checkout_id JOIN users ub ON ub.id = o.buyer_id \
         JOIN sellers s ON s.id = o.seller_id JOIN users us ON us.id = s.user_id \
         LEFT JOIN pickup_points pp ON pp.id = o.pickup_point_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("order"))?;
    let point = match (
        row_opt_str(&r, "point_name")?,
        row_opt_str(&r, "point_hours")?,
    ) {
        (Some(n), h) => Some((n, h.unwrap_or_default())),
        _ => None,
    };
    Ok(TextFacts {
        buyer_phone: row_str(&r, "buyer_phone")?,
        buyer_lang: row_str(&r, "buyer_lang")?,
        seller_phone: row_str(&r, "seller_phone")?,
        seller_lang: row_str(&r, "seller_lang")?,
        shop_name: row_str(&r, "shop_name")?,
        tracking_code: row_opt_str(&r, "tracking_code")?.unwrap_or_default(),
        total: Money::new(row_i64(&r, "total_minor")?, cur(&row_str(&r, "currency")?)?),
        due_at: row_opt_i64(&r, "due_at")?,
        carrier_name: row_opt_str(&r, "carrier_name")?,
        point,
        cash_on_delivery: row_str(&r, "method")? == PaymentMethod::CashOnDelivery.as_str(),
    })
}

/// The policy's facts about an order, read inside the transaction that acts on it.
pub async fn facts_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<OrderFacts> {
    let r = sqlx::query("SELECT o.buyer_id, o.seller_id, c.centre_id, o.pickup_point_id, \
        (SELECT cr.user_id FROM delivery_jobs dj JOIN carriers cr ON cr.id = dj.carrier_id WHERE dj.order_id = o.id) AS courier_user_id \
        FROM orders o JOIN checkouts c ON c.id = o.checkout_id WHERE o.id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("order"))?;
    Ok(OrderFacts {
        buyer_id: UserId(row_i64(&r, "buyer_id")?),
        seller_id: SellerId(row_i64(&r, "seller_id")?),
        placed_at: row_opt_i64(&r, "centre_id")?.map(PointId),
        pickup_point: row_opt_i64(&r, "pickup_point_id")?.map(PointId),
        courier: row_opt_i64(&r, "courier_user_id")?.map(UserId),
    })
}

/// Move an order's state, guarded on the state it was read in: a concurrent second mover
/// fails cleanly instead of acting twice.
pub async fn set_state_in(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    from: OrderState,
    to: OrderState,
    now: i64,
) -> Result<()> {
    let n =
        sqlx::query("UPDATE orders SET state = $1, updated_at = $2 WHERE id = $3 AND state = $4")
            .bind(to.as_str())
            .bind(now)
            .bind(order_id)
            .bind(from.as_str())
            .execute(&mut **tx)
            .await?
            .rows_affected();
    if n == 0 {
        return Err(StoreError::Conflict(Msg::new("err-order-changed")));
    }
    if to == OrderState::Delivered {
        sqlx::query("UPDATE orders SET delivered_at = $1 WHERE id = $2 AND delivered_at IS NULL")
            .bind(now)
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One line of an order's history.
pub struct NewEvent<'a> {
    pub order_id: i64,
    pub transition: &'a str,
    pub from: &'a str,
    pub to: OrderState,
    pub actor: Actor,
    pub actor_user: Option<i64>,
    pub reason: &'a str,
}

pub async fn record_event_in(
    tx: &mut DbTx<'static, Any>,
    e: &NewEvent<'_>,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO order_events (order_id, transition, from_state, to_state, actor, actor_user_id, reason, at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
        .bind(e.order_id)
        .bind(e.transition.to_string())
        .bind(e.from.to_string())
        .bind(e.to.as_str())
        .bind(e.actor.as_str())
        .bind(e.actor_user)
        .bind(e.reason.chars().take(500).collect::<String>())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A fresh one-time code for the buyer to give whoever delivers.
pub async fn issue_delivery_code_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<()> {
    let code = crate::six_digit_code();
    sqlx::query("UPDATE orders SET delivery_code = $1, delivery_code_failures = 0 WHERE id = $2")
        .bind(code)
        .bind(order_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An order's lines, by product: (product, quantity).
pub async fn lines_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<Vec<(i64, i64)>> {
    sqlx::query(
        "SELECT product_id, quantity FROM order_lines WHERE order_id = $1 ORDER BY product_id",
    )
    .bind(order_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|l| Ok((row_i64(l, "product_id")?, row_i64(l, "quantity")?)))
    .collect()
}

/// What a hand-over with the buyer's code checks, read inside its transaction.
#[derive(Debug, Clone)]
pub struct CodeFacts {
    /// The one-time code as stored (None once used or never issued).
    pub code: Option<String>,
    /// Wrong tries so far.
    pub failures: i64,
    /// When the parcel was checked in at its pickup point, if it was.
    pub checked_in_at: Option<i64>,
}

pub async fn delivery_code_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<CodeFacts> {
    let r = sqlx::query(
        "SELECT delivery_code, delivery_code_failures, checked_in_at FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("order"))?;
    Ok(CodeFacts {
        code: row_opt_str(&r, "delivery_code")?,
        failures: row_i64(&r, "delivery_code_failures")?,
        checked_in_at: row_opt_i64(&r, "checked_in_at")?,
    })
}

pub async fn count_code_failure_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE orders SET delivery_code_failures = delivery_code_failures + 1 WHERE id = $1",
    )
    .bind(order_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Mark a payment succeeded (guarded: once), with who collected it if cash. False when it was
/// not waiting any more.
pub async fn mark_paid_in(
    tx: &mut DbTx<'static, Any>,
    payment_id: i64,
    collector: Option<i64>,
    now: i64,
) -> Result<bool> {
    // Cash in someone's hands settles only a cash payment awaiting it; a provider's word settles
    // only a payment that is not cash.
    let guard = if collector.is_some() {
        "method = 'cash' AND status = 'awaiting_cash'"
    } else {
        "method = 'mobile_money' AND status = 'pending'"
    };
    let n = sqlx::query(crate::sql(format!("UPDATE payments SET status = 'succeeded', collected_by = $1, updated_at = $2 WHERE id = $3 AND {guard}")))
        .bind(collector)
        .bind(now)
        .bind(payment_id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

pub async fn payment_in(tx: &mut DbTx<'static, Any>, payment_id: i64) -> Result<Payment> {
    let r = sqlx::query(crate::sql(format!("{PAYMENT_SELECT} WHERE id = $1")))
        .bind(payment_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("payment"))?;
    payment_from(&r)
}

/// The checkout an order belongs to and its latest payment (the one that stands).
pub async fn latest_payment_in(tx: &mut DbTx<'static, Any>, order_id: i64) -> Result<Payment> {
    let r = sqlx::query(crate::sql(format!(
        "{PAYMENT_SELECT} WHERE checkout_id = (SELECT checkout_id FROM orders WHERE id = $1) ORDER BY id DESC LIMIT 1"
    )))
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("payment"))?;
    payment_from(&r)
}

/// A failed payment gives way to a new one, guarded: of two people choosing again at once,
/// one replaces it and the other finds it replaced (false).
pub async fn replace_failed_payment_in(
    tx: &mut DbTx<'static, Any>,
    payment_id: i64,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE payments SET status = 'replaced', updated_at = $1 WHERE id = $2 AND status = 'failed'",
    )
    .bind(now)
    .bind(payment_id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// How a checkout is paid, chosen again.
pub async fn set_checkout_method_in(
    tx: &mut DbTx<'static, Any>,
    checkout_id: i64,
    method: PaymentMethod,
) -> Result<()> {
    sqlx::query("UPDATE checkouts SET method = $1 WHERE id = $2")
        .bind(method.as_str())
        .bind(checkout_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The orders of a checkout inside a transaction: (id, state, total).
pub async fn checkout_orders_in(
    tx: &mut DbTx<'static, Any>,
    checkout_id: i64,
) -> Result<Vec<(i64, OrderState, i64)>> {
    sqlx::query("SELECT id, state, total_minor FROM orders WHERE checkout_id = $1 ORDER BY id")
        .bind(checkout_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|o| {
            let st = row_str(o, "state")?;
            Ok((
                row_i64(o, "id")?,
                OrderState::parse(&st)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown state {st}")))?,
                row_i64(o, "total_minor")?,
            ))
        })
        .collect()
}

/// The provider took our request and gave its reference (kept once).
pub async fn set_provider_ref_in(
    tx: &mut DbTx<'static, Any>,
    payment_id: i64,
    provider_ref: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE payments SET provider_ref = $1, updated_at = $2 WHERE id = $3 AND provider_ref IS NULL")
        .bind(provider_ref.to_string())
        .bind(now)
        .bind(payment_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

// ---- checkout rows ----

/// The idempotency key's row, inserted first in a checkout's transaction: true when it is new
/// (this request goes ahead), false when the key was used before.
pub async fn claim_key_in(
    tx: &mut DbTx<'static, Any>,
    scope: &str,
    key: &str,
    fingerprint: &str,
    now: i64,
) -> Result<bool> {
    let n = sqlx::query("INSERT INTO idempotency (scope, key, created_at, fingerprint) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING")
        .bind(scope.to_string())
        .bind(key.to_string())
        .bind(now)
        .bind(fingerprint.to_string())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    Ok(n == 1)
}

/// What a used key stands for: (fingerprint, stored response).
pub async fn key_record(
    db: &Db,
    tx: Option<&mut DbTx<'static, Any>>,
    scope: &str,
    key: &str,
) -> Result<Option<(Option<String>, Option<String>)>> {
    let q =
        sqlx::query("SELECT response, fingerprint FROM idempotency WHERE scope = $1 AND key = $2")
            .bind(scope.to_string())
            .bind(key.to_string());
    let r = match tx {
        Some(tx) => q.fetch_optional(&mut **tx).await?,
        None => q.fetch_optional(&db.pool).await?,
    };
    r.map(|r| {
        Ok((
            row_opt_str(&r, "fingerprint")?,
            row_opt_str(&r, "response")?,
        ))
    })
    .transpose()
}

pub async fn store_response_in(
    tx: &mut DbTx<'static, Any>,
    scope: &str,
    key: &str,
    response: &str,
) -> Result<()> {
    sqlx::query("UPDATE idempotency SET response = $1 WHERE scope = $2 AND key = $3")
        .bind(response.to_string())
        .bind(scope.to_string())
        .bind(key.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A checkout's own row.
pub struct NewCheckout<'a> {
    pub buyer_id: i64,
    pub total: Money,
    pub method: PaymentMethod,
    pub address: &'a str,
    pub phone: &'a str,
    pub plus_code: Option<&'a str>,
    pub on_behalf: Option<OnBehalf>,
    pub tracking_code: &'a str,
}

pub async fn insert_checkout_in(
    tx: &mut DbTx<'static, Any>,
    c: &NewCheckout<'_>,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO checkouts (buyer_id, total_minor, currency, method, address, phone, created_at, plus_code, agent_id, centre_id, tracking_code) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
    )
    .bind(c.buyer_id)
    .bind(c.total.minor)
    .bind(c.total.currency.as_str().to_string())
    .bind(c.method.as_str())
    .bind(c.address.to_string())
    .bind(c.phone.to_string())
    .bind(now)
    .bind(c.plus_code.map(str::to_string))
    .bind(c.on_behalf.map(|b| b.agent_id))
    .bind(c.on_behalf.map(|b| b.centre_id))
    .bind(c.tracking_code.to_string())
    .fetch_one(&mut **tx)
    .await?;
    row_i64(&r, "id")
}

/// One seller's order of a checkout, with its lines and its first history line.
pub struct NewOrder<'a> {
    pub checkout_id: i64,
    pub buyer_id: i64,
    pub draft: &'a tianguis_domain::checkout::OrderDraft,
    pub due_at: i64,
    pub pickup_point_id: Option<i64>,
}

pub async fn insert_order_in(
    tx: &mut DbTx<'static, Any>,
    o: &NewOrder<'_>,
    now: i64,
) -> Result<i64> {
    let d = o.draft;
    let r = sqlx::query(
        "INSERT INTO orders (checkout_id, buyer_id, seller_id, state, subtotal_minor, delivery_minor, total_minor, currency, fee_bps, created_at, updated_at, due_at, pickup_point_id) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id",
    )
    .bind(o.checkout_id)
    .bind(o.buyer_id)
    .bind(d.seller_id)
    .bind(OrderState::Placed.as_str())
    .bind(d.subtotal.minor)
    .bind(d.delivery_fee.minor)
    .bind(d.total.minor)
    .bind(d.total.currency.as_str().to_string())
    .bind(d.fee_bps as i64)
    .bind(now)
    .bind(now)
    .bind(o.due_at)
    .bind(o.pickup_point_id)
    .fetch_one(&mut **tx)
    .await?;
    let oid = row_i64(&r, "id")?;
    for (pid, qty, price) in &d.lines {
        sqlx::query("INSERT INTO order_lines (order_id, product_id, quantity, unit_price_minor) VALUES ($1,$2,$3,$4)")
            .bind(oid)
            .bind(*pid)
            .bind(*qty)
            .bind(price.minor)
            .execute(&mut **tx)
            .await?;
    }
    record_event_in(
        tx,
        &NewEvent {
            order_id: oid,
            transition: "place",
            from: "",
            to: OrderState::Placed,
            actor: Actor::Buyer,
            actor_user: Some(o.buyer_id),
            reason: "",
        },
        now,
    )
    .await?;
    Ok(oid)
}

pub async fn insert_payment_in(
    tx: &mut DbTx<'static, Any>,
    checkout_id: i64,
    method: PaymentMethod,
    amount: Money,
    payer_phone: &str,
    now: i64,
) -> Result<i64> {
    let status = PaymentStatus::initial(method).as_str();
    let p = sqlx::query(
        "INSERT INTO payments (checkout_id, method, status, amount_minor, currency, payer_phone, created_at, updated_at, reference) \
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING id",
    )
    .bind(checkout_id)
    .bind(method.as_str())
    .bind(status)
    .bind(amount.minor)
    .bind(amount.currency.as_str().to_string())
    .bind(payer_phone.to_string())
    .bind(now)
    .bind(now)
    .bind(format!("tianguis-{}", crate::random_token(16)))
    .fetch_one(&mut **tx)
    .await?;
    row_i64(&p, "id")
}

/// A fresh tracking code (8 letters and digits, no look-alikes) for following an order.
pub fn tracking_code() -> String {
    use rand::RngExt;
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}
