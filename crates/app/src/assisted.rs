//! Assisted commerce at digital centres as use cases: an agent orders for a walk-in buyer (cash
//! straight into the agent's hands), and takes cash at the counter for an order awaiting it.

use tianguis_domain::kinds::PaymentStatus;
use tianguis_store::Msg;
use tianguis_store::limits::Limit;
use tianguis_store::orders::{CheckoutRequest, CheckoutResult, OnBehalf, PaymentMethod};
use tianguis_store::users::User;
use tianguis_store::{Db, Result, StoreError, agents};

/// An order an agent places for a walk-in buyer.
#[derive(Debug, Clone)]
pub struct AssistedCheckout<'a> {
    pub buyer_name: &'a str,
    pub buyer_phone: &'a str,
    /// (product, quantity), usually from the agent's cart.
    pub lines: Vec<(i64, i64)>,
    pub method: PaymentMethod,
    /// Where to deliver, unless `at_centre`.
    pub address: &'a str,
    /// Collect at the agent's centre instead.
    pub at_centre: bool,
    pub idempotency_key: &'a str,
    /// The agent's session, whose cart empties on success.
    pub session_id: Option<String>,
    pub limits: Vec<Limit>,
    /// The language the buyer reads their texts in (the agent asks); None keeps theirs.
    pub buyer_lang: Option<&'a str>,
}

/// An agent orders for a walk-in buyer. Cash is taken by the agent on the spot (the payment
/// succeeds with the agent as collector); mobile money is requested from the buyer's phone;
/// delivery goes to the buyer's address or to the agent's centre. A replay with the same key
/// returns the first result.
pub async fn assisted_checkout(
    db: &Db,
    agent: &User,
    o: AssistedCheckout<'_>,
) -> Result<(CheckoutResult, bool)> {
    tianguis_domain::policy::may(
        &agent.person(),
        tianguis_domain::policy::Duty::ServeAtCentre,
    )
    .map_err(tianguis_store::denied)?;
    let Some(centre_id) = agent.person().centre().map(i64::from) else {
        return Err(StoreError::Forbidden(tianguis_store::Msg::new(
            "err-not-an-agent",
        )));
    };
    let buyer = db.walk_in_buyer(o.buyer_name, o.buyer_phone).await?;
    if let Some(l) = o.buyer_lang {
        db.set_user_lang(buyer.id, l).await?;
    }
    let (res, replay) = crate::orders::checkout(
        db,
        &CheckoutRequest {
            buyer_id: buyer.id,
            lines: o.lines,
            session_id: o.session_id,
            idempotency_key: o.idempotency_key.to_string(),
            method: o.method,
            address: o.address.to_string(),
            phone: o.buyer_phone.to_string(),
            pickup_point_id: o.at_centre.then_some(centre_id),
            on_behalf: Some(OnBehalf {
                agent_id: agent.id,
                centre_id,
            }),
            limits: o.limits,
        },
    )
    .await?;
    if o.method == PaymentMethod::Cash {
        // The buyer handed the cash to the agent: it is in the agent's hands now.
        crate::orders::payment_succeeded(db, res.payment_id, Some(agent.id)).await?;
    }
    Ok((res, replay))
}

/// An agent records cash a buyer paid at their centre for an order awaiting cash (an admin may
/// too, anywhere).
pub async fn collect_cash(
    db: &Db,
    agent: &User,
    payment_id: impl Into<tianguis_domain::ids::PaymentId>,
) -> Result<bool> {
    let payment_id = i64::from(payment_id.into());
    let p = db.payment(payment_id).await?;
    let centre = agents::checkout_centre(db, p.checkout_id).await?;
    let who = agent.person();
    if !(who.is_admin() || who.agent_at(centre.map(tianguis_domain::ids::PointId))) {
        return Err(StoreError::NotFound("payment"));
    }
    // Only a cash payment still waiting for its cash can be collected by hand: a mobile-money
    // payment is settled by its provider, never by someone saying it was paid.
    if p.method != PaymentMethod::Cash.as_str() {
        return Err(StoreError::Invalid(Msg::new("err-cash-only")));
    }
    if p.status != PaymentStatus::AwaitingCash.as_str() {
        return Ok(false);
    }
    crate::orders::payment_succeeded(db, payment_id, Some(agent.id)).await
}
