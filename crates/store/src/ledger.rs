//! Persisting ledger transactions. A domain [`Transaction`] is already balanced; here each
//! posting moves a balance with a guarded update, so an account that must not go negative
//! refuses and the whole database transaction rolls back.

use crate::{Db, Result, row_i64, row_str};
use sqlx::{Any, Transaction as DbTx};
use tianguis_domain::ledger::{Account, LedgerError, Transaction};
use tianguis_domain::money::{Currency, Money};

pub async fn post(tx: &mut DbTx<'static, Any>, t: &Transaction, now: i64) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO ledger_txns (kind, order_id, created_at) VALUES ($1,$2,$3) RETURNING id",
    )
    .bind(t.kind().as_str())
    .bind(t.order_id())
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let id = row_i64(&r, "id")?;
    for p in t.postings() {
        let code = p.account.code();
        let cur = p.amount.currency.as_str().to_string();
        sqlx::query("INSERT INTO accounts (account, currency, balance_minor, may_go_negative) VALUES ($1,$2,0,$3) ON CONFLICT DO NOTHING")
            .bind(code.clone())
            .bind(cur.clone())
            .bind(p.account.may_go_negative() as i64)
            .execute(&mut **tx)
            .await?;
        let n = sqlx::query(
            "UPDATE accounts SET balance_minor = balance_minor + $1 \
             WHERE account = $2 AND currency = $3 AND (may_go_negative = 1 OR balance_minor + $4 >= 0)",
        )
        .bind(p.amount.minor)
        .bind(code.clone())
        .bind(cur.clone())
        .bind(p.amount.minor)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(LedgerError::WouldGoNegative(code).into());
        }
        sqlx::query(
            "INSERT INTO postings (txn_id, account, currency, amount_minor) VALUES ($1,$2,$3,$4)",
        )
        .bind(id)
        .bind(code)
        .bind(cur)
        .bind(p.amount.minor)
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

pub async fn balance_in(
    tx: &mut DbTx<'static, Any>,
    account: &Account,
    currency: Currency,
) -> Result<Money> {
    let r = sqlx::query("SELECT balance_minor FROM accounts WHERE account = $1 AND currency = $2")
        .bind(account.code())
        .bind(currency.as_str().to_string())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(Money::new(
        r.map(|r| row_i64(&r, "balance_minor"))
            .transpose()?
            .unwrap_or(0),
        currency,
    ))
}

/// What a seller sees: earned (released to them), held in escrow for their open orders, paid out.
#[derive(Debug, Clone)]
pub struct Statement {
    pub currency: Currency,
    pub held: i64,
    /// What the seller can be paid now (their payable balance).
    pub owed: i64,
    /// Paid out and confirmed (and commissions taken from their proceeds).
    pub paid_out: i64,
    /// In a payout batch, not yet confirmed.
    pub on_the_way: i64,
    /// Payouts that failed (the money went back to `owed`).
    pub failed: i64,
    pub earned: i64,
    pub fees: i64,
    pub refunded: i64,
}

#[derive(Debug, Clone)]
pub struct LedgerTotals {
    pub paid_in: i64,
    pub fees: i64,
    pub refunds: i64,
    pub payouts: i64,
    pub owed: i64,
    pub held: i64,
    pub postings_sum: i64,
    pub negative_protected_accounts: i64,
}

impl LedgerTotals {
    /// The marketplace-wide invariant: paid + owed (sellers, couriers, agents, champions, and
    /// payouts on their way) + held = buyers paid (also
    /// cash still in agents' and couriers' hands) - fees - refunds, and
    /// every posting sums to zero.
    pub fn holds(&self) -> bool {
        self.postings_sum == 0
            && self.negative_protected_accounts == 0
            && self.payouts + self.owed + self.held == self.paid_in - self.fees - self.refunds
    }
}

impl Db {
    /// The marketplace's totals, read in one statement so they are one snapshot: money moving
    /// meanwhile (a payment, a payout) never shows half-moved.
    pub async fn ledger_totals(&self, currency: Currency) -> Result<LedgerTotals> {
        let sum = |cond: &str| {
            format!(
                "CAST(COALESCE(SUM(CASE WHEN {cond} THEN balance_minor ELSE 0 END), 0) AS BIGINT)"
            )
        };
        let q = format!(
            "SELECT {paid_in} AS paid_in, {fees} AS fees, {refunds} AS refunds, {payouts} AS payouts, \
             {owed} AS owed, {held} AS held, \
             (SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM postings WHERE currency = $1) AS postings_sum, \
             (SELECT COUNT(*) FROM accounts WHERE may_go_negative = 0 AND balance_minor < 0) AS negative \
             FROM accounts WHERE currency = $2",
            paid_in = sum("account LIKE 'external:payments:%'"),
            fees = sum("account = 'platform:fees'"),
            refunds = sum("account = 'external:refunds'"),
            payouts = sum("account = 'external:payouts'"),
            owed = sum(
                "account LIKE 'seller:%:payable' OR account LIKE 'agent:%:commission' \
                 OR account LIKE 'courier:%:payable' OR account LIKE 'champion:%:payable' \
                 OR account = 'payouts:in-flight'"
            ),
            held = sum("account LIKE 'escrow:order:%'"),
        );
        let r = sqlx::query(crate::sql(q))
            .bind(currency.as_str().to_string())
            .bind(currency.as_str().to_string())
            .fetch_one(&self.pool)
            .await?;
        Ok(LedgerTotals {
            paid_in: -row_i64(&r, "paid_in")?,
            fees: row_i64(&r, "fees")?,
            refunds: row_i64(&r, "refunds")?,
            payouts: row_i64(&r, "payouts")?,
            owed: row_i64(&r, "owed")?,
            held: row_i64(&r, "held")?,
            postings_sum: row_i64(&r, "postings_sum")?,
            negative_protected_accounts: row_i64(&r, "negative")?,
        })
    }

    pub async fn seller_statement(&self, seller_id: i64) -> Result<Statement> {
        let currency = self.currency().await?;
        let cur = currency.as_str().to_string();
        let held = sqlx::query(
            "SELECT CAST(COALESCE(SUM(a.balance_minor), 0) AS BIGINT) AS s FROM accounts a JOIN orders o \
             ON a.account = 'escrow:order:' || CAST(o.id AS TEXT) WHERE o.seller_id = $1 AND a.currency = $2",
        )
        .bind(seller_id)
        .bind(cur.clone())
        .fetch_one(&self.pool)
        .await?;
        let payable = Account::SellerPayable(seller_id).code();
        // Payout postings (set aside, returned when a transfer failed) are not earnings.
        let sums = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN p.amount_minor > 0 AND t.kind <> 'payout' THEN p.amount_minor ELSE 0 END), 0) AS BIGINT) AS earned, \
                    CAST(COALESCE(SUM(CASE WHEN p.amount_minor < 0 AND t.kind <> 'payout' THEN -p.amount_minor ELSE 0 END), 0) AS BIGINT) AS deducted, \
                    CAST(COALESCE(SUM(CASE WHEN t.kind = 'payout' THEN -p.amount_minor ELSE 0 END), 0) AS BIGINT) AS payouts \
             FROM postings p JOIN ledger_txns t ON t.id = p.txn_id WHERE p.account = $1 AND p.currency = $2",
        )
        .bind(payable)
        .bind(cur.clone())
        .fetch_one(&self.pool)
        .await?;
        let fr = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN p.account = 'platform:fees' THEN p.amount_minor ELSE 0 END), 0) AS BIGINT) AS fees, \
                    CAST(COALESCE(SUM(CASE WHEN p.account = 'external:refunds' THEN p.amount_minor ELSE 0 END), 0) AS BIGINT) AS refunded \
             FROM postings p JOIN ledger_txns t ON t.id = p.txn_id JOIN orders o ON o.id = t.order_id \
             WHERE o.seller_id = $1 AND p.currency = $2",
        )
        .bind(seller_id)
        .bind(cur)
        .fetch_one(&self.pool)
        .await?;
        let earned = row_i64(&sums, "earned")?;
        let deducted = row_i64(&sums, "deducted")?;
        let payouts = row_i64(&sums, "payouts")?;
        let lines = self
            .payee_totals(tianguis_domain::payout::Payee::Seller(seller_id))
            .await?;
        Ok(Statement {
            currency,
            held: row_i64(&held, "s")?,
            owed: earned - deducted - payouts,
            paid_out: deducted + payouts - lines.on_the_way,
            on_the_way: lines.on_the_way,
            failed: lines.failed,
            earned,
            fees: row_i64(&fr, "fees")?,
            refunded: row_i64(&fr, "refunded")?,
        })
    }

    /// Account balances, for the admin's ledger page.
    /// The postings of an order's ledger transactions: (transaction kind, account, amount), in
    /// order (an audit trail of where its money went).
    pub async fn order_postings(&self, order_id: i64) -> Result<Vec<(String, String, i64)>> {
        sqlx::query(
            "SELECT t.kind, p.account, p.amount_minor FROM postings p JOIN ledger_txns t ON t.id = p.txn_id \
             WHERE t.order_id = $1 ORDER BY p.id",
        )
        .bind(order_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            Ok((
                row_str(r, "kind")?,
                row_str(r, "account")?,
                row_i64(r, "amount_minor")?,
            ))
        })
        .collect()
    }

    pub async fn account_balances(&self) -> Result<Vec<(String, String, i64)>> {
        let rows =
            sqlx::query("SELECT account, currency, balance_minor FROM accounts ORDER BY account")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    row_str(r, "account")?,
                    row_str(r, "currency")?,
                    row_i64(r, "balance_minor")?,
                ))
            })
            .collect()
    }
}
