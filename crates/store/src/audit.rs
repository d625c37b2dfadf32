//! The marketplace's invariants read back with SQL, for fault tests (`tianguis chaos`), restore
//! drills and officials who want proof: the books balance (per transaction, per account,
//! protected accounts never below zero, marketplace-wide totals), stock equals what was put in
//! less what live orders hold, every timer due has run and ran once, every order that waits on
//! time has its timer, and no mobile-money payment is pending without a job that asks about it.
//! Reads only; several statements (call it on a quiet database for an exact answer).

use crate::{Db, Result, row_i64, row_opt_str, row_str};
use std::collections::{HashMap, HashSet};
use tianguis_domain::kinds::PaymentMethod;
use tianguis_domain::process::{OrderState, Transition, awaited_timers, stock_returned};

/// What the audit found. `holds()` is the verdict; the fields say what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// Ledger transactions whose postings do not sum to zero in a currency.
    pub unbalanced_transactions: i64,
    /// Accounts whose balance is not the sum of their postings (or postings with no account).
    pub drifted_accounts: i64,
    /// Accounts that may not go negative and are.
    pub negative_protected_accounts: i64,
    /// The marketplace-wide identity (`LedgerTotals::holds`) fails.
    pub totals_broken: bool,
    /// Money into the books from buyers, and what the payments say was paid (succeeded
    /// payments, and the orders whose cash was collected on delivery).
    pub paid_in_minor: i64,
    pub payments_succeeded_minor: i64,
    /// Products whose stock is not baseline less what live orders hold: (product, expected,
    /// found).
    pub stock_off: Vec<(i64, i64, i64)>,
    /// Order timers still pending more than the grace after they were due.
    pub overdue_timers: i64,
    /// Orders waiting on time without a pending timer that would move them: (order, state).
    pub missing_timers: Vec<(i64, String)>,
    /// An order that took the same transition twice (the process has no cycles).
    pub repeated_events: i64,
    /// Mobile-money payments pending with no queued request or status check.
    pub stranded_payments: Vec<i64>,
    /// Jobs given up, by kind.
    pub dead_jobs: Vec<(String, i64)>,
    /// Provider answers refused as being about another payment.
    pub provider_mismatches: i64,
    /// Orders placed, and order events, in all (for reports).
    pub orders: i64,
    pub events: i64,
}

impl Audit {
    /// Every invariant holds. Dead jobs and refused provider answers are reported, not
    /// failures by themselves: both are for an official to look at.
    pub fn holds(&self) -> bool {
        self.unbalanced_transactions == 0
            && self.drifted_accounts == 0
            && self.negative_protected_accounts == 0
            && !self.totals_broken
            && self.paid_in_minor == self.payments_succeeded_minor
            && self.stock_off.is_empty()
            && self.overdue_timers == 0
            && self.missing_timers.is_empty()
            && self.repeated_events == 0
            && self.stranded_payments.is_empty()
    }
}

/// One payment as the audit compares it with the provider's statement.
#[derive(Debug, Clone)]
pub struct AuditPayment {
    pub id: i64,
    pub method: String,
    pub status: String,
    pub reference: Option<String>,
    pub amount_minor: i64,
    pub currency: String,
}

impl Db {
    /// Check the invariants. `baseline`: each product's stock before any order (products not
    /// named are not checked); `grace_ms`: how late a due timer may still be pending.
    pub async fn audit(&self, baseline: &[(i64, i64)], grace_ms: i64) -> Result<Audit> {
        let count = |q: &'static str| async move {
            let r = sqlx::query(q).fetch_one(&self.pool).await?;
            row_i64(&r, "n")
        };
        let mut a = Audit {
            unbalanced_transactions: count(
                "SELECT COUNT(*) AS n FROM (SELECT txn_id, currency FROM postings \
                 GROUP BY txn_id, currency HAVING SUM(amount_minor) <> 0) x",
            )
            .await?,
            drifted_accounts: count(
                "SELECT COUNT(*) AS n FROM accounts a WHERE a.balance_minor <> \
                 (SELECT COALESCE(SUM(p.amount_minor), 0) FROM postings p \
                  WHERE p.account = a.account AND p.currency = a.currency)",
            )
            .await?
                + count(
                    "SELECT COUNT(*) AS n FROM (SELECT DISTINCT account, currency FROM postings) p \
                     WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account = p.account AND a.currency = p.currency)",
                )
                .await?,
            repeated_events: count(
                "SELECT COUNT(*) AS n FROM (SELECT order_id, transition FROM order_events \
                 GROUP BY order_id, transition HAVING COUNT(*) > 1) x",
            )
            .await?,
            provider_mismatches: count("SELECT COUNT(*) AS n FROM provider_mismatches").await?,
            orders: count("SELECT COUNT(*) AS n FROM orders").await?,
            events: count("SELECT COUNT(*) AS n FROM order_events").await?,
            // A checkout's payment settles as one; cash on delivery is taken order by order.
            payments_succeeded_minor: count(
                "SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) AS n FROM payments WHERE status = 'succeeded'",
            )
            .await?
                + count(
                    "SELECT CAST(COALESCE(SUM(o.total_minor), 0) AS BIGINT) AS n FROM orders o WHERE EXISTS \
                     (SELECT 1 FROM order_events e WHERE e.order_id = o.id AND e.transition = 'collect_on_delivery')",
                )
                .await?,
            ..Audit::default()
        };
        let currency = self.currency().await?;
        let totals = self.ledger_totals(currency).await?;
        a.negative_protected_accounts = totals.negative_protected_accounts;
        a.totals_broken = !totals.holds();
        a.paid_in_minor = totals.paid_in;

        // Stock: what was put in, less what orders still hold (returned stock is back).
        let held = self.stock_held_by_live_orders().await?;
        let stock: HashMap<i64, i64> = sqlx::query("SELECT id, stock FROM products")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((row_i64(r, "id")?, row_i64(r, "stock")?)))
            .collect::<Result<_>>()?;
        for &(product, base) in baseline {
            let expected = base - held.get(&product).copied().unwrap_or(0);
            let found = stock.get(&product).copied().unwrap_or(0);
            if expected != found {
                a.stock_off.push((product, expected, found));
            }
        }

        // Timers: nothing due is left behind, and whatever waits on time has its timer.
        let now = self.now_ms();
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM queue WHERE kind = 'order_timer' AND status = 'pending' AND run_at < $1",
        )
        .bind(now - grace_ms)
        .fetch_one(&self.pool)
        .await?;
        a.overdue_timers = row_i64(&r, "n")?;
        let mut pending: HashSet<(i64, String)> = HashSet::new();
        for r in sqlx::query(
            "SELECT payload FROM queue WHERE kind = 'order_timer' AND status = 'pending'",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let v: serde_json::Value = serde_json::from_str(&row_str(&r, "payload")?)
                .map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
            if let (Some(o), Some(t)) = (v["order_id"].as_i64(), v["transition"].as_str()) {
                pending.insert((o, t.to_string()));
            }
        }
        for r in sqlx::query(
            "SELECT o.id, o.state, c.method FROM orders o JOIN checkouts c ON c.id = o.checkout_id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let id = row_i64(&r, "id")?;
            let state_word = row_str(&r, "state")?;
            let state = OrderState::parse(&state_word)
                .ok_or_else(|| crate::StoreError::Corrupt(format!("state {state_word}")))?;
            let on_delivery = row_str(&r, "method")? == PaymentMethod::CashOnDelivery.as_str();
            let awaited: Vec<Transition> = awaited_timers(state, on_delivery);
            if !awaited.is_empty()
                && !awaited
                    .iter()
                    .any(|t| pending.contains(&(id, t.as_str().to_string())))
            {
                a.missing_timers.push((id, state_word));
            }
        }

        // Payments: a pending mobile-money payment always has a job that asks for it or about it.
        for r in sqlx::query(
            "SELECT p.id FROM payments p WHERE p.method = 'mobile_money' AND p.status = 'pending' \
             AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.kind IN ('momo_request', 'momo_status') \
             AND q.status = 'pending' AND q.payload = '{\"payment_id\":' || CAST(p.id AS TEXT) || '}') ORDER BY p.id",
        )
        .fetch_all(&self.pool)
        .await?
        {
            a.stranded_payments.push(row_i64(&r, "id")?);
        }
        for r in sqlx::query(
            "SELECT kind, COUNT(*) AS n FROM queue WHERE status = 'dead' GROUP BY kind ORDER BY kind",
        )
        .fetch_all(&self.pool)
        .await?
        {
            a.dead_jobs.push((row_str(&r, "kind")?, row_i64(&r, "n")?));
        }
        Ok(a)
    }

    /// Units of each product that orders hold now (every order whose stock was not given back).
    pub async fn stock_held_by_live_orders(&self) -> Result<HashMap<i64, i64>> {
        let mut held = HashMap::new();
        for r in sqlx::query(
            "SELECT l.product_id, o.state, CAST(SUM(l.quantity) AS BIGINT) AS n FROM order_lines l \
             JOIN orders o ON o.id = l.order_id GROUP BY l.product_id, o.state",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let state = row_str(&r, "state")?;
            let returned = OrderState::parse(&state).is_some_and(stock_returned);
            if !returned {
                *held.entry(row_i64(&r, "product_id")?).or_insert(0) += row_i64(&r, "n")?;
            }
        }
        Ok(held)
    }

    /// People with an account (an empty database has none).
    pub async fn people_count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    /// Jobs of a lane due now and not yet run (jobs due later are not counted); with
    /// `unleased`, only those no worker holds (a worker that died holds its lease until it
    /// runs out).
    pub async fn jobs_due_in(&self, lane: crate::queue::Lane, unleased: bool) -> Result<i64> {
        let now = self.now_ms();
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM queue WHERE status = 'pending' AND run_at <= $1 AND lane = $2 \
             AND ($3 = 0 OR locked_until IS NULL OR locked_until < $4)",
        )
        .bind(now)
        .bind(lane.as_str())
        .bind(i64::from(unleased))
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        row_i64(&r, "n")
    }

    /// Every checkout and its buyer.
    pub async fn checkout_buyers(&self) -> Result<Vec<(i64, i64)>> {
        sqlx::query("SELECT id, buyer_id FROM checkouts ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((row_i64(r, "id")?, row_i64(r, "buyer_id")?)))
            .collect()
    }

    /// The idempotency keys whose request was carried out (its answer kept).
    pub async fn idempotency_keys(&self) -> Result<HashSet<String>> {
        sqlx::query("SELECT key FROM idempotency WHERE response IS NOT NULL")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| row_str(r, "key"))
            .collect()
    }

    /// Every (order, transition) in the orders' histories.
    pub async fn order_transitions(&self) -> Result<HashSet<(i64, String)>> {
        sqlx::query("SELECT DISTINCT order_id, transition FROM order_events")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| Ok((row_i64(r, "order_id")?, row_str(r, "transition")?)))
            .collect()
    }

    /// Every payment, for comparing with a provider's statement.
    pub async fn audit_payments(&self) -> Result<Vec<AuditPayment>> {
        let rows = sqlx::query(
            "SELECT id, method, status, reference, amount_minor, currency FROM payments ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditPayment {
                    id: row_i64(r, "id")?,
                    method: row_str(r, "method")?,
                    status: row_str(r, "status")?,
                    reference: row_opt_str(r, "reference")?,
                    amount_minor: row_i64(r, "amount_minor")?,
                    currency: row_str(r, "currency")?,
                })
            })
            .collect()
    }
}
