//! Telling people: a text goes into the outbox (the record officials read) and a `sms` job into
//! the queue (what sends it), both in the caller's transaction, so a text goes out if and only
//! if what it tells committed. One-time codes are made when their text is sent.

use crate::engine::Tx;
use tianguis_store::queue::{self, Kind};
use tianguis_store::{Db, Result, mandates, outbox};

pub use tianguis_store::outbox::NewText;

/// Put a text in the outbox and its sending in the queue. A non-essential text to someone who
/// replied STOP is not written (None).
pub async fn text_in(tx: &mut Tx, t: &NewText<'_>, now: i64) -> Result<Option<i64>> {
    if !t.essential && outbox::stopped_in(tx, t.phone).await? {
        return Ok(None);
    }
    let id = outbox::enqueue_in(tx, t, now).await?;
    queue::enqueue_in(
        tx,
        Kind::Sms,
        serde_json::json!({"outbox_id": id}),
        now,
        now,
    )
    .await?;
    Ok(Some(id))
}

/// Send a one-time code by text to `phone` for `purpose` (`consent`, `claim`, `reset`). What
/// waits in the outbox is a reference to the code's row; the code is made as the text goes out
/// and only its hash is kept. Codes last `tianguis_domain::mandate::CODE_MINUTES`.
pub async fn send_phone_code(
    db: &Db,
    purpose: &str,
    phone: &str,
    requested_by: Option<i64>,
    lang: &str,
) -> Result<()> {
    let phone = db.phone(phone).await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let code_id =
        mandates::new_phone_code_in(&mut tx, purpose, phone.as_str(), requested_by, now).await?;
    let id = outbox::enqueue_code_in(
        &mut tx,
        phone.as_str(),
        &format!("sms-code-{purpose}"),
        code_id,
        lang,
        now,
    )
    .await?;
    queue::enqueue_in(
        &mut tx,
        Kind::Sms,
        serde_json::json!({"outbox_id": id}),
        now,
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The engine's texts observer: the people an order's move concerns hear of it, in their
/// language, by the rule in `tianguis_domain::notify`. The delivery code is not written in the
/// outbox: the sender reads it from the order as it sends (`code_of_order`).
pub async fn after_move_in(tx: &mut Tx, a: &crate::engine::Applied<'_>) -> Result<()> {
    use tianguis_domain::notify::{Party, after_move};
    let texts = after_move(a.m.transition, a.to, &a.effects);
    if texts.is_empty() {
        return Ok(());
    }
    let order_id = a.m.order_id.0;
    let f = tianguis_store::orders::text_facts_in(tx, order_id).await?;
    let refund = match a.m.refund_minor {
        Some(r)
            if a.effects
                .contains(&tianguis_domain::process::Effect::SplitEscrow) =>
        {
            r
        }
        _ => f.total.minor,
    };
    for t in texts {
        let (phone, lang) = match t.to {
            Party::Buyer => (f.buyer_phone.as_str(), f.buyer_lang.as_str()),
            Party::Seller => (f.seller_phone.as_str(), f.seller_lang.as_str()),
        };
        let mut args: Vec<(&str, String)> = vec![
            ("code", f.tracking_code.clone()),
            ("order", order_id.to_string()),
            ("shop", f.shop_name.clone()),
            ("currency", f.total.currency.as_str().to_string()),
            ("total", f.total.minor.to_string()),
        ];
        match t.template {
            "sms-refunded" => {
                args.retain(|(k, _)| *k != "total");
                args.push(("total", refund.to_string()));
            }
            "sms-shipped" => {
                // Who brings it, or where it waits, and by when; the code itself is read from
                // the order when the text goes out.
                let by = match (&f.point, &f.carrier_name) {
                    (Some((name, hours)), _) => format!("{name} ({hours})"),
                    (None, Some(c)) => c.clone(),
                    (None, None) => f.shop_name.clone(),
                };
                args.push(("by", by));
                args.push(("due", f.due_at.unwrap_or(a.now).to_string()));
                args.push(("code_of_order", order_id.to_string()));
            }
            _ => {}
        }
        text_in(
            tx,
            &NewText {
                phone,
                template: t.template,
                args,
                lang,
                order_id: Some(order_id),
                essential: t.essential,
            },
            a.now,
        )
        .await?;
    }
    Ok(())
}

/// Money arrived for an order that had already ended (it expired or was cancelled): it went
/// straight back, and the buyer is told (always: it is their money).
pub async fn late_payment_refunded_in(
    tx: &mut Tx,
    order_id: i64,
    amount_minor: i64,
    now: i64,
) -> Result<()> {
    let f = tianguis_store::orders::text_facts_in(tx, order_id).await?;
    text_in(
        tx,
        &NewText {
            phone: &f.buyer_phone,
            template: "sms-late-refund",
            args: vec![
                ("code", f.tracking_code.clone()),
                ("order", order_id.to_string()),
                ("currency", f.total.currency.as_str().to_string()),
                ("total", amount_minor.to_string()),
            ],
            lang: &f.buyer_lang,
            order_id: Some(order_id),
            essential: true,
        },
        now,
    )
    .await?;
    Ok(())
}

/// What a delivery job's event tells the buyer (out for delivery, a failed attempt, ready at
/// the pickup point), inside the transaction of the job's move.
pub async fn after_job_in(
    tx: &mut Tx,
    order_id: i64,
    event: tianguis_domain::notify::JobEvent,
    now: i64,
) -> Result<()> {
    let t = tianguis_domain::notify::after_job(event);
    let f = tianguis_store::orders::text_facts_in(tx, order_id).await?;
    let mut args: Vec<(&str, String)> = vec![
        ("code", f.tracking_code.clone()),
        ("order", order_id.to_string()),
        ("shop", f.shop_name.clone()),
    ];
    if let Some((name, hours)) = &f.point {
        args.push(("point", name.clone()));
        args.push(("hours", hours.clone()));
    }
    if let Some(c) = &f.carrier_name {
        args.push(("by", c.clone()));
    }
    text_in(
        tx,
        &NewText {
            phone: &f.buyer_phone,
            template: t.template,
            args,
            lang: &f.buyer_lang,
            order_id: Some(order_id),
            essential: t.essential,
        },
        now,
    )
    .await?;
    Ok(())
}

/// A seller hears of a new cash-on-delivery order at checkout (it is fulfilled unpaid, so no
/// payment move tells them).
pub async fn new_cod_order_in(tx: &mut Tx, order_id: i64, now: i64) -> Result<()> {
    let f = tianguis_store::orders::text_facts_in(tx, order_id).await?;
    text_in(
        tx,
        &NewText {
            phone: &f.seller_phone,
            template: "sms-seller-new-order-cod",
            args: vec![
                ("order", order_id.to_string()),
                ("shop", f.shop_name.clone()),
                ("currency", f.total.currency.as_str().to_string()),
                ("total", f.total.minor.to_string()),
            ],
            lang: &f.seller_lang,
            order_id: Some(order_id),
            essential: true,
        },
        now,
    )
    .await?;
    Ok(())
}

/// What a reply to our texts asks: STOP (or its word in Spanish or Bangla) for only the texts
/// one needs, START for all again; anything else is not a command.
pub fn reply_command(text: &str) -> Option<bool> {
    let word: String = text.split_whitespace().next().unwrap_or("").to_uppercase();
    match word.as_str() {
        "STOP" | "PARAR" | "ALTO" | "বন্ধ" => Some(true),
        "START" | "INICIO" | "চালু" => Some(false),
        _ => None,
    }
}

/// A person replied to a text (the gateway forwards it) or set it on their page: STOP or START
/// takes effect for their phone, and a text says so (that one always goes). False when the
/// reply is no command or no account has the phone.
pub async fn set_texts_stopped(db: &Db, phone: &str, stop: bool) -> Result<bool> {
    let phone = db.phone(phone).await?;
    let now = db.now_ms();
    let mut tx = db.begin_write().await?;
    let Some(user) = outbox::set_stop_in(&mut tx, phone.as_str(), stop).await? else {
        tx.rollback().await?;
        return Ok(false);
    };
    let lang = tianguis_store::users::lang_of_in(&mut tx, user).await?;
    text_in(
        &mut tx,
        &NewText {
            phone: phone.as_str(),
            template: if stop { "sms-stopped" } else { "sms-started" },
            args: Vec::new(),
            lang: &lang,
            order_id: None,
            essential: true,
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
