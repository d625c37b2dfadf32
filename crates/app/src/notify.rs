//! Telling people: a text goes into the outbox (the record officials read) and a `sms` job into
//! the queue (what sends it), both in the caller's transaction, so a text goes out if and only
//! if what it tells committed. One-time codes are made when their text is sent.

use crate::engine::Tx;
use tianguis_domain::phone::PhoneNumber;
use tianguis_store::queue::{self, Kind};
use tianguis_store::{Db, Result, StoreError, mandates, outbox};

/// Text `template` with `args` to `phone` in `lang`.
pub async fn text_in(
    tx: &mut Tx,
    phone: &str,
    template: &str,
    args: &[(&str, String)],
    lang: &str,
    now: i64,
) -> Result<i64> {
    let id = outbox::enqueue_in(tx, phone, template, args, lang, now).await?;
    queue::enqueue_in(
        tx,
        Kind::Sms,
        serde_json::json!({"outbox_id": id}),
        now,
        now,
    )
    .await?;
    Ok(id)
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
    let phone = PhoneNumber::parse(phone).map_err(|e| StoreError::Invalid(e.msg()))?;
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
