//! Checkout, order transitions and payments. Each public operation is one database transaction:
//! the domain decides (`process::step`, `checkout::split`, `ledger::Transaction`), this module
//! writes the state change, its event, its postings, stock and timers together.

use crate::ledger::{balance_in, post};
use crate::users::{Role, User};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use serde::Serialize;
use sqlx::{Any, Transaction as DbTx};
use tianguis_domain::checkout::{self, CheckoutError, Fees, PricedLine};
use tianguis_domain::ledger::{Account, Transaction};
use tianguis_domain::money::{Currency, Money};
use tianguis_domain::phone::PhoneNumber;
use tianguis_domain::policy::{self, OrderFacts};
use tianguis_domain::process::{self, Actor, Effect, OrderState, Timing, Transition};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    MobileMoney,
    /// Cash at a digital centre, before fulfilment.
    Cash,
    /// Cash handed to whoever delivers; recorded by them.
    CashOnDelivery,
}

impl PaymentMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentMethod::MobileMoney => "mobile_money",
            PaymentMethod::Cash => "cash",
            PaymentMethod::CashOnDelivery => "cash_on_delivery",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mobile_money" => Ok(PaymentMethod::MobileMoney),
            "cash" => Ok(PaymentMethod::Cash),
            "cash_on_delivery" => Ok(PaymentMethod::CashOnDelivery),
            _ => Err(StoreError::invalid("err-payment-method")),
        }
    }
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
    fn fingerprint(&self, merged: &[(i64, i64)]) -> String {
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

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
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

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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
    pub method: String,
    pub payment_status: Option<String>,
    pub payment_id: Option<i64>,
    /// The full plus code of the delivery address, when it has one.
    pub plus_code: Option<String>,
    /// Delivered to a pickup point: which, who runs it, and when the parcel was checked in.
    pub pickup_point_id: Option<i64>,
    pub pickup_operator_id: Option<i64>,
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
    #[serde(skip)]
    pub delivery_code: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderEvent {
    pub transition: String,
    pub from_state: String,
    pub to_state: String,
    pub actor: String,
    pub actor_user_id: Option<i64>,
    pub reason: String,
    pub at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Payment {
    pub id: i64,
    pub checkout_id: i64,
    pub method: String,
    pub provider_ref: Option<String>,
    pub status: String,
    pub amount: Money,
    pub payer_phone: Option<String>,
}

const ORDER_SELECT: &str = "SELECT o.id, o.checkout_id, o.buyer_id, u.name AS buyer_name, o.seller_id, s.shop_name, o.state, \
    o.subtotal_minor, o.delivery_minor, o.total_minor, o.currency, o.fee_bps, c.address, c.phone, c.method, \
    (SELECT pm.status FROM payments pm WHERE pm.checkout_id = o.checkout_id ORDER BY pm.id DESC LIMIT 1) AS payment_status, \
    (SELECT pm.id FROM payments pm WHERE pm.checkout_id = o.checkout_id ORDER BY pm.id DESC LIMIT 1) AS payment_id, \
    c.plus_code, o.delivery_code, o.due_at, o.delivered_at, o.pickup_point_id, pp.operator_id AS pickup_operator_id, o.checked_in_at, o.created_at, o.updated_at, c.agent_id, c.centre_id, c.tracking_code, \
    (SELECT cr.user_id FROM delivery_jobs dj JOIN carriers cr ON cr.id = dj.carrier_id WHERE dj.order_id = o.id) AS courier_user_id \
    FROM orders o JOIN users u ON u.id = o.buyer_id JOIN sellers s ON s.id = o.seller_id JOIN checkouts c ON c.id = o.checkout_id LEFT JOIN pickup_points pp ON pp.id = o.pickup_point_id";

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
        method: row_str(r, "method")?,
        payment_status: row_opt_str(r, "payment_status")?,
        payment_id: row_opt_i64(r, "payment_id")?,
        delivery_code: row_opt_str(r, "delivery_code")?,
        plus_code: row_opt_str(r, "plus_code")?,
        pickup_point_id: row_opt_i64(r, "pickup_point_id")?,
        pickup_operator_id: row_opt_i64(r, "pickup_operator_id")?,
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
            buyer_id: self.buyer_id,
            seller_id: self.seller_id,
            placed_at: self.centre_id,
            pickup_point: self.pickup_point_id,
            pickup_operator: self.pickup_operator_id,
            courier: self.courier_user_id,
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

    /// Checkout: one payment, one order per seller, stock reserved, all or nothing. A replay
    /// with the same idempotency key returns the first result and creates nothing.
    pub async fn checkout(&self, req: &CheckoutRequest) -> Result<(CheckoutResult, bool)> {
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > 100 {
            return Err(StoreError::invalid("err-idempotency-key"));
        }
        let phone = PhoneNumber::parse(&req.phone).map_err(|e| StoreError::Invalid(e.msg()))?;
        let settings = self.settings().await?;
        // Everything that can be checked is checked before the write transaction begins.
        let lines = match checkout::merge_lines(&req.lines, settings.max_checkout_lines()) {
            Ok(l) => l,
            // A page checkout sent again after it went through finds its cart empty: answer
            // with what the first one did.
            Err(CheckoutError::Empty) if req.session_id.is_some() => {
                if let Some(done) = self
                    .checkout_replay(req, key, &req.fingerprint(&[]))
                    .await?
                {
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
                let p = self.pickup_point(id).await?;
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
                    self.resolve_plus_code(req.buyer_id, address).await?,
                    None,
                )
            }
        };
        let prepared = Prepared {
            phone: phone.as_str().to_string(),
            address,
            fees,
            policy: settings.timing(),
            promise_days: self.promise_days_for(req.buyer_id).await?,
            plus_code,
            pickup,
            lang: settings.text("default_lang", "es"),
            lines,
            fingerprint,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.checkout_once(req, key, &prepared).await {
                Err(e) if e.is_transient() && attempt < 8 => {
                    tokio::time::sleep(std::time::Duration::from_millis(5 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    fn idempotency_scope(req: &CheckoutRequest) -> String {
        // An agent's keys are theirs (the walk-in buyer may be new, or buy elsewhere too).
        match req.on_behalf {
            Some(b) => format!("checkout:agent:{}", b.agent_id),
            None => format!("checkout:{}", req.buyer_id),
        }
    }

    /// The stored result of a finished checkout under this key, if there is one; a key first
    /// used for another request is refused.
    async fn checkout_replay(
        &self,
        req: &CheckoutRequest,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<CheckoutResult>> {
        let r = sqlx::query(
            "SELECT response, fingerprint FROM idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(Self::idempotency_scope(req))
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = r else { return Ok(None) };
        if let Some(first) = row_opt_str(&r, "fingerprint")?
            && first != fingerprint
        {
            return Err(StoreError::invalid("err-idempotency-reused"));
        }
        match row_opt_str(&r, "response")? {
            Some(resp) => Ok(Some(serde_json::from_str(&resp).map_err(|e| {
                StoreError::Corrupt(format!("stored checkout unreadable: {e}"))
            })?)),
            None => Err(StoreError::Conflict(Msg::new("err-checkout-in-flight"))),
        }
    }

    async fn checkout_once(
        &self,
        req: &CheckoutRequest,
        key: &str,
        prep: &Prepared,
    ) -> Result<(CheckoutResult, bool)> {
        let (phone, address, fees, policy, promise_days, plus_code) = (
            prep.phone.as_str(),
            prep.address.as_str(),
            prep.fees,
            prep.policy,
            prep.promise_days,
            prep.plus_code.as_deref(),
        );
        let now = self.now_ms();
        let scope = Self::idempotency_scope(req);
        let mut tx = self.begin_write().await?;
        let fresh = sqlx::query("INSERT INTO idempotency (scope, key, created_at, fingerprint) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING")
            .bind(scope.clone())
            .bind(key.to_string())
            .bind(now)
            .bind(prep.fingerprint.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if fresh == 0 {
            let r = sqlx::query(
                "SELECT response, fingerprint FROM idempotency WHERE scope = $1 AND key = $2",
            )
            .bind(scope)
            .bind(key.to_string())
            .fetch_one(&mut *tx)
            .await?;
            tx.rollback().await?;
            // Keys stored before fingerprints existed have none: they replay as before.
            if let Some(first) = row_opt_str(&r, "fingerprint")?
                && first != prep.fingerprint
            {
                return Err(StoreError::invalid("err-idempotency-reused"));
            }
            let resp = row_opt_str(&r, "response")?
                .ok_or_else(|| StoreError::Conflict(Msg::new("err-checkout-in-flight")))?;
            let res: CheckoutResult = serde_json::from_str(&resp)
                .map_err(|e| StoreError::Corrupt(format!("stored checkout unreadable: {e}")))?;
            return Ok((res, true));
        }

        if !crate::limits::take_in(&mut tx, &req.limits, now).await? {
            return Err(StoreError::Limited);
        }
        if let Some((point, slots)) = prep.pickup {
            crate::pickup::take_slot(&mut tx, point, slots).await?;
        }
        // Price from the catalogue, in product-id order (merge_lines sorted them) so concurrent
        // checkouts lock rows in the same order (no deadlocks on PostgreSQL). Take the stock and
        // read the price in one guarded statement per product: no oversell, and one round trip
        // under the write lock.
        let mut priced = Vec::new();
        for &(pid, qty) in &prep.lines {
            let taken = sqlx::query(
                "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $3 AND active = 1 \
                 RETURNING seller_id, price_minor, currency, stock",
            )
            .bind(qty)
            .bind(pid)
            .bind(qty)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(r) = taken else {
                let why = sqlx::query("SELECT stock, active FROM products WHERE id = $1")
                    .bind(pid)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound("product"))?;
                if row_i64(&why, "active")? != 1 {
                    return Err(StoreError::invalid("err-not-sold"));
                }
                return Err(CheckoutError::OutOfStock {
                    product_id: pid,
                    available: row_i64(&why, "stock")?,
                }
                .into());
            };
            priced.push(PricedLine {
                product_id: pid,
                seller_id: row_i64(&r, "seller_id")?,
                unit_price: Money::new(
                    row_i64(&r, "price_minor")?,
                    cur(&row_str(&r, "currency")?)?,
                ),
                quantity: qty,
                stock: row_i64(&r, "stock")? + qty,
            });
        }
        let (drafts, grand) = checkout::split(&priced, fees)?;
        let tracking_code = crate::agents::tracking_code();
        let c = sqlx::query(
            "INSERT INTO checkouts (buyer_id, total_minor, currency, method, address, phone, created_at, plus_code, agent_id, centre_id, tracking_code) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) RETURNING id",
        )
        .bind(req.buyer_id)
        .bind(grand.minor)
        .bind(grand.currency.as_str().to_string())
        .bind(req.method.as_str())
        .bind(address.to_string())
        .bind(phone.to_string())
        .bind(now)
        .bind(plus_code.map(str::to_string))
        .bind(req.on_behalf.map(|b| b.agent_id))
        .bind(req.on_behalf.map(|b| b.centre_id))
        .bind(tracking_code.clone())
        .fetch_one(&mut *tx)
        .await?;
        let checkout_id = row_i64(&c, "id")?;
        let mut order_ids = Vec::new();
        for d in &drafts {
            let r = sqlx::query(
                "INSERT INTO orders (checkout_id, buyer_id, seller_id, state, subtotal_minor, delivery_minor, total_minor, currency, fee_bps, created_at, updated_at, due_at, pickup_point_id) \
                 VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13) RETURNING id",
            )
            .bind(checkout_id)
            .bind(req.buyer_id)
            .bind(d.seller_id)
            .bind(OrderState::Placed.as_str())
            .bind(d.subtotal.minor)
            .bind(d.delivery_fee.minor)
            .bind(d.total.minor)
            .bind(d.total.currency.as_str().to_string())
            .bind(d.fee_bps as i64)
            .bind(now)
            .bind(now)
            .bind(tianguis_domain::promise::due_at(now, promise_days))
            .bind(prep.pickup.map(|p| p.0))
            .fetch_one(&mut *tx)
            .await?;
            let oid = row_i64(&r, "id")?;
            for (pid, qty, price) in &d.lines {
                sqlx::query("INSERT INTO order_lines (order_id, product_id, quantity, unit_price_minor) VALUES ($1,$2,$3,$4)")
                    .bind(oid)
                    .bind(*pid)
                    .bind(*qty)
                    .bind(price.minor)
                    .execute(&mut *tx)
                    .await?;
            }
            record_event(
                &mut tx,
                oid,
                "place",
                "",
                OrderState::Placed,
                Actor::Buyer,
                Some(req.buyer_id),
                "",
                now,
            )
            .await?;
            if req.method == PaymentMethod::CashOnDelivery {
                // Fulfilled unpaid: the seller has until the ship deadline to accept and send it.
                schedule(
                    &mut tx,
                    oid,
                    Transition::AutoCancelUnshipped,
                    now + policy.delay_ms(process::Timer::Unshipped),
                    now,
                )
                .await?;
            } else {
                schedule(
                    &mut tx,
                    oid,
                    Transition::ExpireUnpaid,
                    now + policy.delay_ms(process::Timer::Unpaid),
                    now,
                )
                .await?;
            }
            order_ids.push(oid);
        }
        let status = match req.method {
            PaymentMethod::MobileMoney => "pending",
            PaymentMethod::Cash => "awaiting_cash",
            PaymentMethod::CashOnDelivery => "on_delivery",
        };
        let p = sqlx::query(
            "INSERT INTO payments (checkout_id, method, status, amount_minor, currency, payer_phone, created_at, updated_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING id",
        )
        .bind(checkout_id)
        .bind(req.method.as_str())
        .bind(status)
        .bind(grand.minor)
        .bind(grand.currency.as_str().to_string())
        .bind(phone.to_string())
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let result = CheckoutResult {
            checkout_id,
            order_ids,
            total_minor: grand.minor,
            currency: grand.currency.as_str().to_string(),
            payment_id: row_i64(&p, "id")?,
            tracking_code,
        };
        if req.on_behalf.is_some() {
            // The walk-in buyer has no account to look at: a text message with the order code.
            crate::agents::enqueue_sms(
                &mut tx,
                phone,
                "sms-order-placed",
                &[
                    ("code", result.tracking_code.clone()),
                    ("total", grand.minor.to_string()),
                    ("currency", result.currency.clone()),
                ],
                &prep.lang,
                now,
            )
            .await?;
        }
        sqlx::query("UPDATE idempotency SET response = $1 WHERE scope = $2 AND key = $3")
            .bind(serde_json::to_string(&result).unwrap_or_default())
            .bind(scope)
            .bind(key.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(s) = &req.session_id {
            sqlx::query("DELETE FROM cart_lines WHERE session_id = $1")
                .bind(s.clone())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((result, false))
    }

    pub async fn order(&self, id: i64) -> Result<Order> {
        let q = format!("{ORDER_SELECT} WHERE o.id = $1");
        let r = sqlx::query(&q)
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
        let rows = sqlx::query(&q)
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
        let rows = sqlx::query(&q)
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

    /// A person takes a transition on an order. Their role for it is worked out here, so a
    /// seller can never move another seller's order. `refund_minor` is the admin's split when
    /// resolving a dispute.
    pub async fn act(
        &self,
        user: &User,
        order_id: i64,
        t: Transition,
        reason: &str,
        refund_minor: Option<i64>,
    ) -> Result<OrderState> {
        let order = self.order(order_id).await?;
        // An agent with an orders mandate acts as the seller (for the moves it covers), and the
        // act is logged for audit.
        let mandate = if user.is(Role::Agent) {
            self.mandate_for(user, order.seller_id, |s| s.orders)
                .await?
        } else {
            None
        };
        let actor = policy::order_actor(
            &user.person(),
            &order.facts(),
            t,
            mandate.as_ref().map(|m| m.scope),
        )
        .map_err(crate::denied)?;
        let state = self
            .transition(order_id, t, actor, Some(user.id), reason, refund_minor)
            .await?;
        if let Some(m) = &mandate
            && actor == Actor::Seller
            && user.seller_id != Some(order.seller_id)
        {
            self.log_mandate(m.id, user.id, t.as_str(), &format!("order {order_id}"))
                .await?;
        }
        Ok(state)
    }

    /// Whoever delivers records the delivery with the buyer's one-time code (proof of delivery).
    /// For cash on delivery this is also the cash collection. Five wrong codes lock the order;
    /// the buyer can still confirm, and an admin can.
    pub async fn deliver_with_code(
        &self,
        user: &User,
        order_id: i64,
        code: &str,
    ) -> Result<OrderState> {
        const MAX_FAILURES: i64 = 5;
        let order = self.order(order_id).await?;
        let t = if order.method == PaymentMethod::CashOnDelivery.as_str() {
            Transition::CollectOnDelivery
        } else {
            Transition::DeliverWithCode
        };
        let actor =
            policy::delivery_actor(&user.person(), &order.facts(), t).map_err(crate::denied)?;
        if order.pickup_point_id.is_some() && order.checked_in_at.is_none() {
            // A parcel is handed over at the point only after it was checked in there.
            return Err(StoreError::Conflict(Msg::new("err-pickup-not-checked-in")));
        }
        let policy = self.timing().await?;
        let mut tx = self.begin_write().await?;
        let r =
            sqlx::query("SELECT delivery_code, delivery_code_failures FROM orders WHERE id = $1")
                .bind(order_id)
                .fetch_one(&mut *tx)
                .await?;
        let failures = row_i64(&r, "delivery_code_failures")?;
        let Some(expected) = row_opt_str(&r, "delivery_code")? else {
            return Err(StoreError::Conflict(Msg::new("err-order-changed")));
        };
        if failures >= MAX_FAILURES {
            return Err(StoreError::Conflict(Msg::new("err-code-locked")));
        }
        let given: String = code.chars().filter(|c| c.is_ascii_digit()).collect();
        if given != expected {
            sqlx::query("UPDATE orders SET delivery_code_failures = delivery_code_failures + 1 WHERE id = $1").bind(order_id).execute(&mut *tx).await?;
            tx.commit().await?;
            return Err(StoreError::Invalid(
                Msg::new("err-code-wrong").arg("left", MAX_FAILURES - failures - 1),
            ));
        }
        let state = apply(
            &mut tx,
            self.now_ms(),
            &policy,
            order_id,
            t,
            actor,
            Some(user.id),
            "delivery code",
            None,
            "",
        )
        .await?;
        tx.commit().await?;
        Ok(state)
    }

    /// Take a transition as `actor` (already authorised), in one database transaction.
    pub async fn transition(
        &self,
        order_id: i64,
        t: Transition,
        actor: Actor,
        actor_user: Option<i64>,
        reason: &str,
        refund_minor: Option<i64>,
    ) -> Result<OrderState> {
        let policy = self.timing().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut tx = self.begin_write().await?;
            let r = apply(
                &mut tx,
                self.now_ms(),
                &policy,
                order_id,
                t,
                actor,
                actor_user,
                reason,
                refund_minor,
                "",
            )
            .await;
            let r = match r {
                Ok(s) => tx.commit().await.map(|_| s).map_err(StoreError::from),
                Err(e) => Err(e),
            };
            match r {
                Err(e) if e.is_transient() && attempt < 8 => continue,
                other => return other,
            }
        }
    }

    pub async fn payment(&self, id: i64) -> Result<Payment> {
        let r = sqlx::query(&format!("{PAYMENT_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("payment"))?;
        payment_from(&r)
    }

    pub async fn payment_by_ref(&self, provider_ref: &str) -> Result<Payment> {
        let r = sqlx::query(&format!("{PAYMENT_SELECT} WHERE provider_ref = $1"))
            .bind(provider_ref.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("payment"))?;
        payment_from(&r)
    }

    /// The provider accepted our request and gave its reference.
    pub async fn set_provider_ref(&self, payment_id: i64, provider_ref: &str) -> Result<()> {
        sqlx::query("UPDATE payments SET provider_ref = $1, updated_at = $2 WHERE id = $3 AND provider_ref IS NULL")
            .bind(provider_ref.to_string())
            .bind(self.now_ms())
            .bind(payment_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// A payment succeeded (provider callback, status query, or cash counted by `collector`).
    /// Idempotent: the second call for the same payment changes nothing and returns false.
    pub async fn payment_succeeded(&self, payment_id: i64, collector: Option<i64>) -> Result<bool> {
        let policy = self.timing().await?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .payment_succeeded_once(payment_id, collector, &policy)
                .await
            {
                Err(e) if e.is_transient() && attempt < 8 => continue,
                other => return other,
            }
        }
    }

    async fn payment_succeeded_once(
        &self,
        payment_id: i64,
        collector: Option<i64>,
        policy: &Timing,
    ) -> Result<bool> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let pay = sqlx::query(&format!("{PAYMENT_SELECT} WHERE id = $1"))
            .bind(payment_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("payment"))?;
        let pay = payment_from(&pay)?;
        let n = sqlx::query("UPDATE payments SET status = 'succeeded', collected_by = $1, updated_at = $2 WHERE id = $3 AND status IN ('pending', 'awaiting_cash')")
            .bind(collector)
            .bind(now)
            .bind(payment_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            tx.rollback().await?;
            return Ok(false);
        }
        let actor = if collector.is_some() {
            Actor::Collector
        } else {
            Actor::System
        };
        let orders = sqlx::query(
            "SELECT id, state, total_minor FROM orders WHERE checkout_id = $1 ORDER BY id",
        )
        .bind(pay.checkout_id)
        .fetch_all(&mut *tx)
        .await?;
        for o in &orders {
            let oid = row_i64(o, "id")?;
            if row_str(o, "state")? == OrderState::Placed.as_str() {
                apply(
                    &mut tx,
                    now,
                    policy,
                    oid,
                    Transition::Pay,
                    actor,
                    collector,
                    "",
                    None,
                    &pay.method,
                )
                .await?;
            } else {
                // The order expired before the money arrived: take it in and give it straight back.
                let amount = Money::new(row_i64(o, "total_minor")?, pay.amount.currency);
                let t = match collector {
                    Some(holder) if pay.method == "cash" => {
                        Transaction::cash_payment(oid, holder, amount)?
                    }
                    _ => Transaction::payment(oid, &pay.method, amount)?,
                };
                post(&mut tx, &t, now).await?;
                post(&mut tx, &Transaction::refund(oid, amount)?, now).await?;
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn payment_failed(&self, payment_id: i64) -> Result<()> {
        sqlx::query("UPDATE payments SET status = 'failed', updated_at = $1 WHERE id = $2 AND status = 'pending'")
            .bind(self.now_ms())
            .bind(payment_id)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Payments still waiting for the provider, for the reconciliation job.
    /// Mobile-money payments whose request never reached the provider (no reference yet),
    /// older than `older_than_ms` and younger than `max_age_ms` (past that the orders expired):
    /// the request is made again, with the same merchant reference.
    pub async fn unacknowledged_payments(
        &self,
        older_than_ms: i64,
        max_age_ms: i64,
    ) -> Result<Vec<Payment>> {
        let now = self.now_ms();
        let rows = sqlx::query(&format!(
            "{PAYMENT_SELECT} WHERE status = 'pending' AND method = 'mobile_money' AND provider_ref IS NULL AND updated_at < $1 AND created_at > $2 ORDER BY id LIMIT 100"
        ))
        .bind(now - older_than_ms)
        .bind(now - max_age_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_from).collect()
    }

    pub async fn pending_payments(&self, older_than_ms: i64) -> Result<Vec<Payment>> {
        let rows = sqlx::query(&format!("{PAYMENT_SELECT} WHERE status = 'pending' AND provider_ref IS NOT NULL AND updated_at < $1 ORDER BY id LIMIT 100"))
            .bind(self.now_ms() - older_than_ms)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(payment_from).collect()
    }
}

const PAYMENT_SELECT: &str = "SELECT id, checkout_id, method, provider_ref, status, amount_minor, currency, payer_phone FROM payments";

fn payment_from(r: &sqlx::any::AnyRow) -> Result<Payment> {
    Ok(Payment {
        id: row_i64(r, "id")?,
        checkout_id: row_i64(r, "checkout_id")?,
        method: row_str(r, "method")?,
        provider_ref: row_opt_str(r, "provider_ref")?,
        status: row_str(r, "status")?,
        amount: Money::new(row_i64(r, "amount_minor")?, cur(&row_str(r, "currency")?)?),
        payer_phone: row_opt_str(r, "payer_phone")?,
    })
}

#[allow(clippy::too_many_arguments)]
async fn record_event(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    transition: &str,
    from: &str,
    to: OrderState,
    actor: Actor,
    actor_user: Option<i64>,
    reason: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO order_events (order_id, transition, from_state, to_state, actor, actor_user_id, reason, at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
        .bind(order_id)
        .bind(transition.to_string())
        .bind(from.to_string())
        .bind(to.as_str())
        .bind(actor.as_str())
        .bind(actor_user)
        .bind(reason.chars().take(500).collect::<String>())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What a checkout needs that is read before its write transaction.
struct Prepared {
    phone: String,
    address: String,
    fees: Fees,
    policy: Timing,
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

pub(crate) async fn schedule(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    t: Transition,
    run_at: i64,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO jobs (order_id, transition, run_at, status, created_at) VALUES ($1,$2,$3,'pending',$4)")
        .bind(order_id)
        .bind(t.as_str())
        .bind(run_at)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The heart of the order engine: decide with the domain, then write everything the decision
/// causes inside the caller's transaction. A guarded update on the old state makes a concurrent
/// second mover fail cleanly instead of acting twice.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn apply(
    tx: &mut DbTx<'static, Any>,
    now: i64,
    policy: &Timing,
    order_id: i64,
    t: Transition,
    actor: Actor,
    actor_user: Option<i64>,
    reason: &str,
    refund_minor: Option<i64>,
    method: &str,
) -> Result<OrderState> {
    let r = sqlx::query("SELECT o.state, o.seller_id, o.currency, o.total_minor, o.fee_bps, c.method FROM orders o JOIN checkouts c ON c.id = o.checkout_id WHERE o.id = $1")
        .bind(order_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("order"))?;
    let from_s = row_str(&r, "state")?;
    let from = OrderState::parse(&from_s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown state {from_s}")))?;
    let seller_id = row_i64(&r, "seller_id")?;
    let currency = cur(&row_str(&r, "currency")?)?;
    let total = Money::new(row_i64(&r, "total_minor")?, currency);
    let fee_bps = u32::try_from(row_i64(&r, "fee_bps")?).unwrap_or(0);
    let on_delivery = row_str(&r, "method")? == PaymentMethod::CashOnDelivery.as_str();
    let (to, effects) = process::step(from, t, actor, on_delivery)?;
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
    record_event(
        tx,
        order_id,
        t.as_str(),
        from.as_str(),
        to,
        actor,
        actor_user,
        reason,
        now,
    )
    .await?;
    if to == OrderState::Delivered {
        sqlx::query("UPDATE orders SET delivered_at = $1 WHERE id = $2 AND delivered_at IS NULL")
            .bind(now)
            .bind(order_id)
            .execute(&mut **tx)
            .await?;
    }
    for e in effects {
        match *e {
            Effect::HoldPayment => {
                // Cash on delivery (or a caller that does not say) is cash.
                let m = if method.is_empty() || on_delivery {
                    "cash"
                } else {
                    method
                };
                // Cash taken by a person is in their hands until they hand it over.
                let t = match actor_user {
                    Some(holder) if m == "cash" => {
                        Transaction::cash_payment(order_id, holder, total)?
                    }
                    _ => Transaction::payment(order_id, m, total)?,
                };
                post(tx, &t, now).await?;
            }
            Effect::ReleaseEscrow | Effect::SplitEscrow | Effect::RefundAll => {
                let held = balance_in(tx, &Account::Escrow(order_id), currency).await?;
                let refund = match *e {
                    Effect::ReleaseEscrow => Money::zero(currency),
                    Effect::RefundAll => held,
                    _ => {
                        let r =
                            refund_minor.ok_or_else(|| StoreError::invalid("err-refund-needed"))?;
                        if r < 0 || r > held.minor {
                            return Err(StoreError::Invalid(
                                Msg::new("err-refund-range").arg("max", held.minor),
                            ));
                        }
                        Money::new(r, currency)
                    }
                };
                if held.minor > 0 {
                    for t in Transaction::settle(order_id, seller_id, held, refund, fee_bps)? {
                        post(tx, &t, now).await?;
                    }
                    // The agent who placed it earns on what the seller keeps, never on a refund.
                    let kept = held
                        .checked_sub(refund)
                        .map_err(|e| StoreError::Invalid(e.msg()))?;
                    if kept.minor > 0 {
                        let fee = kept
                            .basis_points(fee_bps)
                            .map_err(|e| StoreError::Invalid(e.msg()))?;
                        crate::agents::accrue_commission(tx, order_id, seller_id, kept, fee, now)
                            .await?;
                    }
                }
            }
            Effect::RestoreStock => {
                let lines = sqlx::query("SELECT product_id, quantity FROM order_lines WHERE order_id = $1 ORDER BY product_id").bind(order_id).fetch_all(&mut **tx).await?;
                for l in &lines {
                    sqlx::query("UPDATE products SET stock = stock + $1 WHERE id = $2")
                        .bind(row_i64(l, "quantity")?)
                        .bind(row_i64(l, "product_id")?)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            Effect::IssueDeliveryCode => {
                use rand::Rng;
                let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
                sqlx::query("UPDATE orders SET delivery_code = $1, delivery_code_failures = 0 WHERE id = $2").bind(code).bind(order_id).execute(&mut **tx).await?;
            }
            Effect::OfferDelivery => crate::delivery::offer_delivery(tx, order_id, now).await?,
            Effect::Schedule(timer, next) => {
                schedule(tx, order_id, next, now + policy.delay_ms(timer), now).await?;
            }
        }
    }
    crate::delivery::follow_order(tx, order_id, to, actor, actor_user, now).await?;
    Ok(to)
}
