//! Assisted commerce at digital centres. A centre is a pickup point of kind `centre` with a
//! contact; agents are users attached to one centre. An agent orders for a walk-in buyer
//! (identified by name and phone, no account needed: one is made without a usable password),
//! takes cash (which is then money the agent holds, `Account::CashWith`), and hands cash over
//! with a reference; officials reconcile expected against declared cash. Commissions accrue
//! to the agent when an order's escrow is released (`commission_in`, asked by the order
//! engine). Texts to buyers go through the `outbox`, sent by a worker in the web crate.

use crate::ledger::{balance_in, post};
use crate::orders::{CheckoutResult, Order};
use crate::users::{Grant, GrantScope, Role, User};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_opt_str, row_str};
use sqlx::{Any, Transaction as DbTx};
use tianguis_domain::commission::{self, Basis, Rule, Source};
use tianguis_domain::ids::PointId;
use tianguis_domain::ledger::{Account, Transaction};
use tianguis_domain::money::{Currency, Money};
use tianguis_domain::policy::{self, Duty};

#[derive(Debug, Clone)]
pub struct CashHolder {
    pub user_id: i64,
    pub name: String,
    pub phone: String,
    pub role: String,
    /// Cash in their hands now (what they should hand over).
    pub on_hand: i64,
    pub collected: i64,
    pub handed_over: i64,
    /// Short in their last hand-over (expected minus declared), if any.
    pub last_shortfall: i64,
}

#[derive(Debug, Clone)]
pub struct Handover {
    pub id: i64,
    pub holder_id: i64,
    pub holder_name: String,
    pub expected_minor: i64,
    pub declared_minor: i64,
    pub currency: String,
    pub channel: String,
    pub reference: String,
    pub created_at: i64,
}

impl Handover {
    pub fn shortfall(&self) -> i64 {
        (self.expected_minor - self.declared_minor).max(0)
    }
}

pub const HANDOVER_CHANNELS: &[&str] = &["bank", "mobile_money"];

#[derive(Debug, Clone)]
pub struct CommissionLine {
    pub order_id: i64,
    pub amount_minor: i64,
    pub at: i64,
}

#[derive(Debug, Clone)]
pub struct AgentStatement {
    pub currency: Currency,
    /// Commission accrued in the period, order by order.
    pub lines: Vec<CommissionLine>,
    pub earned_in_period: i64,
    pub paid_out_total: i64,
    /// What the platform owes the agent now.
    pub owed: i64,
}

/// Commission for an order whose escrow releases `kept` (before the fee) with fee `fee`: if an
/// agent placed it, the agent's commission by the most specific rule (a balanced transaction to
/// post), or None. Read inside the order engine's transaction.
pub async fn commission_in(
    tx: &mut DbTx<'static, Any>,
    order_id: i64,
    seller_id: i64,
    kept: Money,
    fee: Money,
) -> Result<Option<Transaction>> {
    let Some(r) = sqlx::query(
        "SELECT c.agent_id, c.centre_id, \
         (SELECT p.category_id FROM order_lines l JOIN products p ON p.id = l.product_id WHERE l.order_id = o.id \
          ORDER BY l.quantity * l.unit_price_minor DESC, l.product_id LIMIT 1) AS category_id \
         FROM orders o JOIN checkouts c ON c.id = o.checkout_id WHERE o.id = $1",
    )
    .bind(order_id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(None);
    };
    let Some(agent) = row_opt_i64(&r, "agent_id")? else {
        return Ok(None);
    };
    let rules = rules_in(tx).await?;
    let Some(rule) = commission::pick(
        &rules,
        row_opt_i64(&r, "centre_id")?,
        row_opt_i64(&r, "category_id")?,
    ) else {
        return Ok(None);
    };
    let amount = commission::amount(rule, kept, fee).map_err(|e| StoreError::Invalid(e.msg()))?;
    if amount.minor <= 0 {
        return Ok(None);
    }
    let source = match rule.source {
        Source::PlatformFee => Account::PlatformFees,
        Source::SellerProceeds => Account::SellerPayable(seller_id),
    };
    Ok(Some(Transaction::commission(
        order_id, agent, source, amount,
    )?))
}

/// Which centre a checkout was placed at (for cash taken at the counter).
pub async fn checkout_centre(db: &Db, checkout_id: i64) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT centre_id FROM checkouts WHERE id = $1")
        .bind(checkout_id)
        .fetch_optional(&db.pool)
        .await?
        .ok_or(StoreError::NotFound("payment"))?;
    row_opt_i64(&r, "centre_id")
}

async fn rules_in(tx: &mut DbTx<'static, Any>) -> Result<Vec<Rule>> {
    sqlx::query("SELECT * FROM commission_rules WHERE active = 1 ORDER BY id")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(rule_from)
        .collect()
}

fn rule_from(r: &sqlx::any::AnyRow) -> Result<Rule> {
    let value = row_i64(r, "value")?;
    let basis = match row_str(r, "basis")?.as_str() {
        "percent" => {
            Basis::Percent(u32::try_from(value).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        }
        "fixed" => Basis::Fixed(value),
        other => return Err(StoreError::Corrupt(format!("commission basis {other}"))),
    };
    let source = row_str(r, "source")?;
    Ok(Rule {
        id: row_i64(r, "id")?,
        centre_id: row_opt_i64(r, "centre_id")?,
        category_id: row_opt_i64(r, "category_id")?,
        basis,
        cap_minor: row_opt_i64(r, "cap_minor")?,
        source: Source::parse(&source)
            .ok_or_else(|| StoreError::Corrupt(format!("commission source {source}")))?,
    })
}

fn handover_from(r: &sqlx::any::AnyRow) -> Result<Handover> {
    Ok(Handover {
        id: row_i64(r, "id")?,
        holder_id: row_i64(r, "holder_id")?,
        holder_name: row_str(r, "holder_name")?,
        expected_minor: row_i64(r, "expected_minor")?,
        declared_minor: row_i64(r, "declared_minor")?,
        currency: row_str(r, "currency")?,
        channel: row_str(r, "channel")?,
        reference: row_str(r, "reference")?,
        created_at: row_i64(r, "created_at")?,
    })
}

impl Db {
    /// An official attaches a person to a digital centre as its agent: a grant of the agent
    /// role at that centre (a seller may be an agent too). Decided on the official's grants as
    /// they are inside the transaction.
    pub async fn attach_agent(&self, admin: &User, centre_id: i64, phone: &str) -> Result<User> {
        let centre = self.pickup_point(centre_id).await?;
        if centre.kind != "centre" {
            return Err(StoreError::invalid("err-not-a-centre"));
        }
        let user = self.user_by_phone(phone).await?;
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let official = crate::users::person_in(&mut tx, admin.id).await?;
        policy::may(&official, Duty::ManageAssistedCommerce).map_err(crate::denied)?;
        // One centre per agent: moving them ends their grant at the old one.
        crate::users::revoke_role_in(&mut tx, Some(admin.id), user.id, Role::Agent, now).await?;
        let g = Grant::new(Role::Agent, GrantScope::Point(PointId(centre_id)))
            .map_err(crate::denied)?;
        crate::users::grant_in(&mut tx, Some(admin.id), user.id, g, now).await?;
        tx.commit().await?;
        self.user(user.id).await
    }

    /// The agents of a centre (suspended ones included, marked inactive).
    pub async fn agents_of(&self, centre_id: i64) -> Result<Vec<User>> {
        self.holders(Grant {
            role: Role::Agent,
            scope: GrantScope::Point(PointId(centre_id)),
        })
        .await
    }

    /// The person behind a walk-in order: found by phone, or given an account without a usable
    /// password (they can claim it later by resetting it with their phone).
    pub async fn walk_in_buyer(&self, name: &str, phone: &str) -> Result<User> {
        match self.user_by_phone(phone).await {
            Ok(u) => Ok(u),
            Err(StoreError::NotFound(_)) => {
                match self.create_unclaimed_user(phone, name, None).await {
                    // Two agents registering the same person at once: take the one that won.
                    Err(StoreError::Conflict(_)) => self.user_by_phone(phone).await,
                    other => other,
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The first result of an agent's order sent with this key, if there was one (a draft sent
    /// again is answered with it, whatever changed since).
    pub async fn assisted_replay(
        &self,
        agent_id: i64,
        key: &str,
    ) -> Result<Option<CheckoutResult>> {
        let r = sqlx::query("SELECT response FROM idempotency WHERE scope = $1 AND key = $2")
            .bind(format!("checkout:agent:{agent_id}"))
            .bind(key.trim().to_string())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match r {
            Some(r) => row_opt_str(&r, "response")?.and_then(|v| serde_json::from_str(&v).ok()),
            None => None,
        })
    }

    /// Orders placed at, or addressed to, a centre.
    pub async fn centre_orders(&self, centre_id: i64, limit: i64) -> Result<Vec<Order>> {
        self.list_orders(
            "c.centre_id = $1 OR o.pickup_point_id = $1",
            centre_id,
            None,
            limit,
        )
        .await
    }

    /// The order a tracking code names (for buyers without an account).
    pub async fn order_by_tracking(&self, code: &str) -> Result<Vec<Order>> {
        let code: String = code
            .trim()
            .to_ascii_uppercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let r = sqlx::query("SELECT id FROM checkouts WHERE tracking_code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("order"))?;
        self.list_orders("o.checkout_id = $1", row_i64(&r, "id")?, None, 20)
            .await
    }

    /// Cash in a person's hands now.
    pub async fn cash_on_hand(&self, user_id: i64) -> Result<Money> {
        let currency = self.currency().await?;
        let r =
            sqlx::query("SELECT balance_minor FROM accounts WHERE account = $1 AND currency = $2")
                .bind(Account::CashWith(user_id).code())
                .bind(currency.as_str().to_string())
                .fetch_optional(&self.pool)
                .await?;
        let b = match r {
            Some(r) => row_i64(&r, "balance_minor")?,
            None => 0,
        };
        Ok(Money::new(-b, currency))
    }

    /// A holder hands cash over: `declared` is what they deposit (with the bank's or provider's
    /// reference). Expected is what they held; a smaller declaration is recorded as a shortfall
    /// and the rest stays in their account.
    pub async fn record_handover(
        &self,
        holder: &User,
        declared_minor: i64,
        channel: &str,
        reference: &str,
    ) -> Result<Handover> {
        if !HANDOVER_CHANNELS.contains(&channel) {
            return Err(StoreError::invalid("err-handover-channel"));
        }
        let reference = reference.trim();
        if reference.is_empty() || reference.chars().count() > 80 {
            return Err(StoreError::invalid("err-handover-reference"));
        }
        let currency = self.currency().await?;
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let held = -balance_in(&mut tx, &Account::CashWith(holder.id), currency)
            .await?
            .minor;
        if declared_minor <= 0 || declared_minor > held {
            return Err(StoreError::Invalid(
                Msg::new("err-handover-amount")
                    .arg("max", Money::new(held.max(0), currency).to_decimal()),
            ));
        }
        post(
            &mut tx,
            &Transaction::handover(holder.id, Money::new(declared_minor, currency), channel)?,
            now,
        )
        .await?;
        let r = sqlx::query("INSERT INTO handovers (holder_id, expected_minor, declared_minor, currency, channel, reference, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING id")
            .bind(holder.id)
            .bind(held)
            .bind(declared_minor)
            .bind(currency.as_str().to_string())
            .bind(channel.to_string())
            .bind(reference.to_string())
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Handover {
            id: row_i64(&r, "id")?,
            holder_id: holder.id,
            holder_name: holder.name.clone(),
            expected_minor: held,
            declared_minor,
            currency: currency.as_str().to_string(),
            channel: channel.to_string(),
            reference: reference.to_string(),
            created_at: now,
        })
    }

    /// Hand-overs, newest first (one holder's, or everyone's).
    pub async fn handovers(&self, holder: Option<i64>, limit: i64) -> Result<Vec<Handover>> {
        sqlx::query(
            "SELECT h.*, u.name AS holder_name FROM handovers h JOIN users u ON u.id = h.holder_id \
             WHERE ($1 = 0 OR h.holder_id = $1) ORDER BY h.id DESC LIMIT $2",
        )
        .bind(holder.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(handover_from)
        .collect()
    }

    /// Everyone who has taken cash: collected, handed over, on hand, last shortfall.
    pub async fn cash_holders(&self) -> Result<Vec<CashHolder>> {
        let currency = self.currency().await?;
        let prefix = "external:payments:cash-with:";
        let rows = sqlx::query(
            "SELECT p.account, CAST(SUM(CASE WHEN p.amount_minor < 0 THEN -p.amount_minor ELSE 0 END) AS BIGINT) AS collected, \
             CAST(SUM(CASE WHEN p.amount_minor > 0 THEN p.amount_minor ELSE 0 END) AS BIGINT) AS handed \
             FROM postings p WHERE p.account LIKE $1 AND p.currency = $2 GROUP BY p.account ORDER BY p.account",
        )
        .bind(format!("{prefix}%"))
        .bind(currency.as_str().to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let Ok(user_id) = row_str(r, "account")?
                .trim_start_matches(prefix)
                .parse::<i64>()
            else {
                continue;
            };
            let u = self.user(user_id).await?;
            let role = u.primary_role().as_str().to_string();
            let (collected, handed) = (row_i64(r, "collected")?, row_i64(r, "handed")?);
            let last = self.handovers(Some(user_id), 1).await?;
            out.push(CashHolder {
                user_id,
                name: u.name,
                phone: u.phone,
                role,
                on_hand: collected - handed,
                collected,
                handed_over: handed,
                last_shortfall: last.first().map(Handover::shortfall).unwrap_or(0),
            });
        }
        Ok(out)
    }

    pub async fn create_commission_rule(&self, rule: &Rule) -> Result<i64> {
        if !rule.is_valid() {
            return Err(StoreError::invalid("err-commission-rule"));
        }
        let (basis, value) = match rule.basis {
            Basis::Percent(bps) => ("percent", i64::from(bps)),
            Basis::Fixed(m) => ("fixed", m),
        };
        let r = sqlx::query("INSERT INTO commission_rules (centre_id, category_id, basis, value, cap_minor, source, active, created_at) VALUES ($1,$2,$3,$4,$5,$6,1,$7) RETURNING id")
            .bind(rule.centre_id)
            .bind(rule.category_id)
            .bind(basis)
            .bind(value)
            .bind(rule.cap_minor)
            .bind(rule.source.as_str())
            .bind(self.now_ms())
            .fetch_one(&self.write)
            .await?;
        row_i64(&r, "id")
    }

    pub async fn commission_rules(&self) -> Result<Vec<Rule>> {
        sqlx::query("SELECT * FROM commission_rules WHERE active = 1 ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rule_from)
            .collect()
    }

    /// An agent's commissions in [from, to) (epoch ms), what was paid out, and what is owed.
    pub async fn agent_statement(
        &self,
        agent_id: i64,
        from: i64,
        to: i64,
    ) -> Result<AgentStatement> {
        let currency = self.currency().await?;
        let account = Account::AgentCommission(agent_id).code();
        let rows = sqlx::query(
            "SELECT t.order_id, p.amount_minor, t.created_at FROM postings p JOIN ledger_txns t ON t.id = p.txn_id \
             WHERE p.account = $1 AND p.currency = $2 AND t.kind = 'commission' AND t.created_at >= $3 AND t.created_at < $4 ORDER BY t.id",
        )
        .bind(account.clone())
        .bind(currency.as_str().to_string())
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        let lines: Vec<CommissionLine> = rows
            .iter()
            .map(|r| {
                Ok(CommissionLine {
                    order_id: row_opt_i64(r, "order_id")?.unwrap_or(0),
                    amount_minor: row_i64(r, "amount_minor")?,
                    at: row_i64(r, "created_at")?,
                })
            })
            .collect::<Result<_>>()?;
        // Paid: what left by payouts, net of failed transfers returned, less what is still on
        // its way.
        let totals = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN t.kind = 'payout' THEN -p.amount_minor ELSE 0 END), 0) AS BIGINT) AS paid, \
             CAST(COALESCE(SUM(p.amount_minor), 0) AS BIGINT) AS owed FROM postings p JOIN ledger_txns t ON t.id = p.txn_id \
             WHERE p.account = $1 AND p.currency = $2",
        )
        .bind(account)
        .bind(currency.as_str().to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(AgentStatement {
            currency,
            earned_in_period: lines.iter().map(|l| l.amount_minor).sum(),
            lines,
            paid_out_total: row_i64(&totals, "paid")?
                - self
                    .payee_totals(tianguis_domain::payout::Payee::Agent(agent_id))
                    .await?
                    .on_the_way,
            owed: row_i64(&totals, "owed")?,
        })
    }
}
