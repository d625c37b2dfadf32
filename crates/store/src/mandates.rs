//! Mandates and one-time phone codes. An agent onboards a seller (profile and listings made at
//! the centre) only with the seller's consent on record: a code sent to the seller's phone and
//! read back, or a signed paper form's reference; who consented, how, when and for what scope.
//! The agent's rights stop at the scope and at revocation; every use is logged for audit. The
//! seller claims the account later with a code sent to their phone, and may revoke.

use crate::users::{Role, User, hash_token};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_str};
use tianguis_domain::mandate::{self as rules, CODE_MINUTES, Consent, Scope, SentCode};

#[derive(Debug, Clone)]
pub struct Mandate {
    pub id: i64,
    pub agent_id: i64,
    pub agent_name: String,
    pub seller_id: i64,
    pub shop_name: String,
    pub scope: Scope,
    /// code or paper
    pub consent_method: String,
    /// The phone the code went to, or the paper form's reference.
    pub consent_ref: String,
    pub consented_by: String,
    pub consented_at: i64,
    pub revoked_at: Option<i64>,
    /// The photographed signed form of a paper consent.
    pub consent_form_id: Option<i64>,
}

impl Mandate {
    pub fn active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct MandateEvent {
    pub actor_id: Option<i64>,
    pub action: String,
    pub detail: String,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct Onboarding {
    pub name: String,
    pub phone: String,
    pub shop_name: String,
    pub place_id: i64,
    pub women_led: bool,
    pub scope: Scope,
    pub consent: Consent,
    /// The signed paper form, photographed (paper consent needs it).
    pub paper_form: Option<crate::images::Photo>,
}

const MANDATE_SELECT: &str = "SELECT m.*, a.name AS agent_name, s.shop_name FROM mandates m \
    JOIN users a ON a.id = m.agent_id JOIN sellers s ON s.id = m.seller_id";

fn mandate_from(r: &sqlx::any::AnyRow) -> Result<Mandate> {
    Ok(Mandate {
        id: row_i64(r, "id")?,
        agent_id: row_i64(r, "agent_id")?,
        agent_name: row_str(r, "agent_name")?,
        seller_id: row_i64(r, "seller_id")?,
        shop_name: row_str(r, "shop_name")?,
        scope: Scope::parse(&row_str(r, "scope")?),
        consent_method: row_str(r, "consent_method")?,
        consent_ref: row_str(r, "consent_ref")?,
        consented_by: row_str(r, "consented_by")?,
        consented_at: row_i64(r, "consented_at")?,
        revoked_at: row_opt_i64(r, "revoked_at")?,
        consent_form_id: row_opt_i64(r, "consent_form_id")?,
    })
}

fn code_hash(phone: &str, code: &str) -> String {
    hash_token(&format!("{phone}:{}", code.trim()))
}

/// A new one-time code row for `purpose` and `phone` (canonical), replacing any earlier one;
/// its code is made when its text goes out. Returns the row's id.
pub async fn new_phone_code_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    purpose: &str,
    phone: &str,
    requested_by: Option<i64>,
    now: i64,
) -> Result<i64> {
    // Only the newest code counts.
    sqlx::query(
        "UPDATE phone_codes SET used_at = $1 WHERE purpose = $2 AND phone = $3 AND used_at IS NULL",
    )
    .bind(now)
    .bind(purpose.to_string())
    .bind(phone.to_string())
    .execute(&mut **tx)
    .await?;
    let r = sqlx::query("INSERT INTO phone_codes (purpose, phone, requested_by, code_hash, expires_at, failures, created_at) VALUES ($1,$2,$3,'',$4,0,$5) RETURNING id")
        .bind(purpose.to_string())
        .bind(phone.to_string())
        .bind(requested_by)
        .bind(now + CODE_MINUTES * 60_000)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

impl Db {
    /// Make the code of a texted one-time code now, as its text goes out: a fresh random code
    /// whose hash replaces any earlier one (a retried send gets a new code). None when the
    /// code was used, replaced or expired meanwhile (the text is not worth sending).
    pub async fn issue_phone_code(&self, code_id: i64) -> Result<Option<String>> {
        let code = crate::six_digit_code();
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query(
            "SELECT phone FROM phone_codes WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(code_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(r) = r else {
            tx.rollback().await?;
            return Ok(None);
        };
        let phone = row_str(&r, "phone")?;
        sqlx::query("UPDATE phone_codes SET code_hash = $1 WHERE id = $2")
            .bind(code_hash(&phone, &code))
            .bind(code_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(code))
    }

    /// Check and use the newest code sent to `phone` (canonical form) for `purpose`.
    pub async fn use_phone_code(&self, purpose: &str, phone: &str, code: &str) -> Result<()> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("SELECT id, code_hash, expires_at, failures, used_at FROM phone_codes WHERE purpose = $1 AND phone = $2 ORDER BY id DESC LIMIT 1")
            .bind(purpose.to_string())
            .bind(phone.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let sent = match &r {
            Some(r) => Some(SentCode {
                expires_at: row_i64(r, "expires_at")?,
                failures: row_i64(r, "failures")?,
                used: row_opt_i64(r, "used_at")?.is_some(),
            }),
            None => None,
        };
        let matches = match &r {
            Some(r) => {
                use subtle::ConstantTimeEq;
                let stored = row_str(r, "code_hash")?;
                // A code not yet sent has no hash: nothing matches it.
                !stored.is_empty()
                    && bool::from(stored.as_bytes().ct_eq(code_hash(phone, code).as_bytes()))
            }
            None => false,
        };
        match rules::check_code(sent, matches, now) {
            Ok(()) => {
                let id = row_i64(r.as_ref().ok_or(StoreError::NotFound("code"))?, "id")?;
                sqlx::query("UPDATE phone_codes SET used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
            Err(e) => {
                if let (rules::CodeError::Wrong { .. }, Some(r)) = (e, &r) {
                    sqlx::query("UPDATE phone_codes SET failures = failures + 1 WHERE id = $1")
                        .bind(row_i64(r, "id")?)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
                Err(StoreError::Invalid(e.msg()))
            }
        }
    }

    /// An agent onboards a seller with their consent: the person (found by phone, or made with no
    /// usable password), their shop, and the mandate, all recorded.
    pub async fn onboard_seller(&self, agent: &User, o: &Onboarding) -> Result<(i64, Mandate)> {
        tianguis_domain::policy::may(
            &agent.person(),
            tianguis_domain::policy::Duty::ServeAtCentre,
        )
        .map_err(crate::denied)?;
        if o.scope.is_empty() {
            return Err(StoreError::invalid("err-mandate-scope"));
        }
        let phone = self.phone(&o.phone).await?;
        crate::text::line(&o.name, "name")?;
        crate::text::line(&o.shop_name, "shop_name")?;
        let existing = match self.user_by_phone(phone.as_str()).await {
            Ok(u) => Some(u),
            Err(StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let (method, reference) = match &o.consent {
            Consent::Code(code) => {
                self.use_phone_code("consent", phone.as_str(), code).await?;
                ("code", phone.as_str().to_string())
            }
            Consent::Paper(r) => {
                rules::paper_consent(r, existing.is_some(), o.paper_form.is_some())
                    .map_err(|e| StoreError::Invalid(e.msg()))?;
                crate::text::line(r, "paper_ref")?;
                ("paper", r.trim().to_string())
            }
        };
        let user = match existing {
            Some(u) => u,
            None => {
                self.create_unclaimed_user(phone.as_str(), &o.name, Some(o.place_id))
                    .await?
            }
        };
        let seller_id = match user.seller_id {
            Some(s) => s,
            None => {
                self.create_seller(user.id, &o.shop_name, o.place_id, 0, o.women_led)
                    .await?
            }
        };
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let form_id = match (&o.consent, &o.paper_form) {
            (Consent::Paper(_), Some(photo)) => {
                let r = sqlx::query("INSERT INTO consent_forms (bytes, content_type, uploaded_by, created_at) VALUES ($1,$2,$3,$4) RETURNING id")
                    .bind(photo.bytes.clone())
                    .bind(photo.content_type.to_string())
                    .bind(agent.id)
                    .bind(now)
                    .fetch_one(&mut *tx)
                    .await?;
                Some(row_i64(&r, "id")?)
            }
            _ => None,
        };
        let r = sqlx::query("INSERT INTO mandates (agent_id, seller_id, scope, consent_method, consent_ref, consented_by, consented_at, created_at, consent_form_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$7,$8) RETURNING id")
            .bind(agent.id)
            .bind(seller_id)
            .bind(o.scope.as_str())
            .bind(method)
            .bind(reference)
            .bind(format!("{} ({})", o.name.trim(), phone.as_str()))
            .bind(now)
            .bind(form_id)
            .fetch_one(&mut *tx)
            .await?;
        let id = row_i64(&r, "id")?;
        log_in(
            &mut tx,
            id,
            Some(agent.id),
            "granted",
            &o.scope.as_str(),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok((seller_id, self.mandate(id).await?))
    }

    /// The photographed consent form of a mandate, for the agent who took it, the seller, and
    /// admins; nobody else learns it exists.
    pub async fn consent_form(&self, viewer: &User, mandate_id: i64) -> Result<(Vec<u8>, String)> {
        let m = self.mandate(mandate_id).await?;
        let allowed = tianguis_domain::policy::consent_form(
            &viewer.person(),
            tianguis_domain::ids::UserId(m.agent_id),
            tianguis_domain::ids::SellerId(m.seller_id),
        )
        .is_ok();
        let Some(form) = m.consent_form_id.filter(|_| allowed) else {
            return Err(StoreError::NotFound("photo"));
        };
        let r = sqlx::query("SELECT bytes, content_type FROM consent_forms WHERE id = $1")
            .bind(form)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("photo"))?;
        use sqlx::Row;
        Ok((
            r.try_get::<Vec<u8>, _>("bytes")?,
            row_str(&r, "content_type")?,
        ))
    }

    pub async fn mandate(&self, id: i64) -> Result<Mandate> {
        let r = sqlx::query(crate::sql(format!("{MANDATE_SELECT} WHERE m.id = $1")))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("mandate"))?;
        mandate_from(&r)
    }

    pub async fn mandates_of_agent(&self, agent_id: i64) -> Result<Vec<Mandate>> {
        sqlx::query(crate::sql(format!(
            "{MANDATE_SELECT} WHERE m.agent_id = $1 ORDER BY m.id DESC"
        )))
        .bind(agent_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(mandate_from)
        .collect()
    }

    pub async fn mandates_of_seller(&self, seller_id: i64) -> Result<Vec<Mandate>> {
        sqlx::query(crate::sql(format!(
            "{MANDATE_SELECT} WHERE m.seller_id = $1 ORDER BY m.id DESC"
        )))
        .bind(seller_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(mandate_from)
        .collect()
    }

    /// The agent's active mandate over this seller that allows `need`, if any.
    pub async fn mandate_for(
        &self,
        agent: &User,
        seller_id: i64,
        need: impl Fn(&Scope) -> bool,
    ) -> Result<Option<Mandate>> {
        if !agent.is(Role::Agent) {
            return Ok(None);
        }
        Ok(self
            .mandates_of_agent(agent.id)
            .await?
            .into_iter()
            .find(|m| m.seller_id == seller_id && m.active() && need(&m.scope)))
    }

    /// Record what an agent did under a mandate (in its own transaction).
    pub async fn log_mandate(
        &self,
        mandate_id: i64,
        actor: i64,
        action: &str,
        detail: &str,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        log_in(
            &mut tx,
            mandate_id,
            Some(actor),
            action,
            detail,
            self.now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn mandate_events(&self, mandate_id: i64) -> Result<Vec<MandateEvent>> {
        sqlx::query("SELECT actor_id, action, detail, at FROM mandate_events WHERE mandate_id = $1 ORDER BY id")
            .bind(mandate_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(MandateEvent {
                    actor_id: row_opt_i64(r, "actor_id")?,
                    action: row_str(r, "action")?,
                    detail: row_str(r, "detail")?,
                    at: row_i64(r, "at")?,
                })
            })
            .collect()
    }

    /// The seller (or an official) ends a mandate; the agent's rights stop at once.
    pub async fn revoke_mandate(&self, user: &User, mandate_id: i64) -> Result<()> {
        let m = self.mandate(mandate_id).await?;
        if tianguis_domain::policy::revoke_mandate(
            &user.person(),
            tianguis_domain::ids::SellerId(m.seller_id),
        )
        .is_err()
        {
            return Err(StoreError::NotFound("mandate"));
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let n =
            sqlx::query("UPDATE mandates SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now)
                .bind(mandate_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(Msg::new("err-mandate-revoked")));
        }
        log_in(&mut tx, mandate_id, Some(user.id), "revoked", "", now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A person claims their account (made for them at a centre) with the code sent to their
    /// phone, choosing a password. Their old sessions end.
    /// Whether a code for `purpose` may be texted to this phone: claiming is for accounts made
    /// without a password, resetting for accounts that have one. Never both.
    pub async fn code_purpose_fits(&self, purpose: &str, phone: &str) -> Result<bool> {
        match self.user_by_phone(phone).await {
            Ok(u) => Ok(u.active
                && match purpose {
                    "claim" => !u.has_password,
                    "reset" => u.has_password,
                    // Signing in with a code works for any account, password or not.
                    "login" => true,
                    _ => false,
                }),
            Err(StoreError::NotFound(_) | StoreError::Invalid(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The agent's active mandate over this seller that allows `need`, read inside the caller's
/// transaction (a mandate revoked a moment ago no longer counts).
pub async fn mandate_for_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    agent_id: i64,
    seller_id: i64,
    need: impl Fn(&Scope) -> bool,
) -> Result<Option<Mandate>> {
    let rows = sqlx::query(crate::sql(format!(
        "{MANDATE_SELECT} WHERE m.agent_id = $1 AND m.seller_id = $2 AND m.revoked_at IS NULL ORDER BY m.id DESC"
    )))
    .bind(agent_id)
    .bind(seller_id)
    .fetch_all(&mut **tx)
    .await?;
    for r in &rows {
        let m = mandate_from(r)?;
        if m.active() && need(&m.scope) {
            return Ok(Some(m));
        }
    }
    Ok(None)
}

/// Record what an agent did under a mandate, inside the transaction of the act itself.
pub async fn log_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    mandate_id: i64,
    actor: Option<i64>,
    action: &str,
    detail: &str,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO mandate_events (mandate_id, actor_id, action, detail, at) VALUES ($1,$2,$3,$4,$5)")
        .bind(mandate_id)
        .bind(actor)
        .bind(action.to_string())
        .bind(detail.chars().take(300).collect::<String>())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
