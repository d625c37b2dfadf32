//! Digital champions: assignments of businesses (two to four each), their progress read from
//! the marketplace (listings, completed orders, journey level), and bounties paid through the
//! ledger for each business that reaches its milestone.

use crate::ledger::post;
use crate::users::{Role, User};
use crate::{Db, Msg, Result, StoreError, row_i64, row_opt_i64, row_str};
use tianguis_domain::champion::{self as rules, Facts, Milestone};
use tianguis_domain::ledger::Transaction;
use tianguis_domain::money::Money;

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: i64,
    pub champion_id: i64,
    pub champion_name: String,
    pub seller_id: i64,
    pub shop_name: String,
    pub milestone: Milestone,
    pub bounty: Money,
    pub facts: Facts,
    pub reached: bool,
    pub paid_at: Option<i64>,
}

const SELECT: &str = "SELECT a.*, u.name AS champion_name, s.shop_name, s.journey_level, \
    (SELECT COUNT(*) FROM products p WHERE p.seller_id = a.seller_id AND p.active = 1) AS active_products, \
    (SELECT COUNT(*) FROM orders o WHERE o.seller_id = a.seller_id AND o.state = 'completed') AS completed_orders \
    FROM champion_assignments a JOIN users u ON u.id = a.champion_id JOIN sellers s ON s.id = a.seller_id";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Assignment> {
    let m = row_str(r, "milestone")?;
    let milestone =
        Milestone::parse(&m).ok_or_else(|| StoreError::Corrupt(format!("milestone {m}")))?;
    let facts = Facts {
        active_products: row_i64(r, "active_products")?,
        completed_orders: row_i64(r, "completed_orders")?,
        level: row_i64(r, "journey_level")?,
        baseline_level: row_i64(r, "baseline_level")?,
    };
    let currency = tianguis_domain::money::Currency::parse(&row_str(r, "currency")?)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Assignment {
        id: row_i64(r, "id")?,
        champion_id: row_i64(r, "champion_id")?,
        champion_name: row_str(r, "champion_name")?,
        seller_id: row_i64(r, "seller_id")?,
        shop_name: row_str(r, "shop_name")?,
        milestone,
        bounty: Money::new(row_i64(r, "bounty_minor")?, currency),
        reached: facts.reached(milestone),
        facts,
        paid_at: row_opt_i64(r, "paid_at")?,
    })
}

impl Db {
    /// An official assigns a business to a champion (at most four each), with the milestone
    /// and the bounty paid when the business reaches it.
    pub async fn assign_champion(
        &self,
        admin: &User,
        champion_phone: &str,
        seller_id: i64,
        milestone: Milestone,
        bounty_minor: i64,
    ) -> Result<i64> {
        if bounty_minor < 0 {
            return Err(StoreError::invalid("err-payout-positive"));
        }
        let champion = self.user_by_phone(champion_phone).await?;
        let seller = self.seller(seller_id).await?;
        let currency = self.currency().await?;
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let official = crate::users::person_in(&mut tx, admin.id).await?;
        tianguis_domain::policy::may(&official, tianguis_domain::policy::Duty::ManageChampions)
            .map_err(crate::denied)?;
        // Lock the champion's row, then count, so two assignments at once cannot make five.
        sqlx::query("UPDATE users SET active = active WHERE id = $1")
            .bind(champion.id)
            .execute(&mut *tx)
            .await?;
        if let Some(g) = crate::users::everywhere(Role::Champion) {
            crate::users::grant_in(&mut tx, Some(admin.id), champion.id, g, now).await?;
        }
        let n =
            sqlx::query("SELECT COUNT(*) AS n FROM champion_assignments WHERE champion_id = $1")
                .bind(champion.id)
                .fetch_one(&mut *tx)
                .await?;
        rules::can_assign(usize::try_from(row_i64(&n, "n")?).unwrap_or(usize::MAX))
            .map_err(|e| StoreError::Conflict(e.msg()))?;
        let r = sqlx::query(
            "INSERT INTO champion_assignments (champion_id, seller_id, milestone, bounty_minor, currency, baseline_level, assigned_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (champion_id, seller_id) DO NOTHING RETURNING id",
        )
        .bind(champion.id)
        .bind(seller_id)
        .bind(milestone.as_str())
        .bind(bounty_minor)
        .bind(currency.as_str().to_string())
        .bind(seller.journey_level)
        .bind(self.now_ms())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict(Msg::new("err-champion-assigned")))?;
        tx.commit().await?;
        row_i64(&r, "id")
    }

    /// Assignments with their progress: one champion's, or everyone's.
    pub async fn champion_board(&self, champion: Option<i64>) -> Result<Vec<Assignment>> {
        sqlx::query(crate::sql(format!(
            "{SELECT} WHERE ($1 = 0 OR a.champion_id = $1) ORDER BY a.champion_id, a.id"
        )))
        .bind(champion.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(from_row)
        .collect()
    }

    /// Award a champion's bounty for a business that reached its milestone, once (it is paid
    /// out with the next payout batch).
    pub async fn pay_champion(&self, admin: &User, assignment_id: i64) -> Result<()> {
        tianguis_domain::policy::may(
            &admin.person(),
            tianguis_domain::policy::Duty::ManageChampions,
        )
        .map_err(crate::denied)?;
        let r = sqlx::query(crate::sql(format!("{SELECT} WHERE a.id = $1")))
            .bind(assignment_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("assignment"))?;
        let a = from_row(&r)?;
        if !a.reached {
            return Err(StoreError::Conflict(Msg::new("err-champion-not-reached")));
        }
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE champion_assignments SET paid_at = $1 WHERE id = $2 AND paid_at IS NULL",
        )
        .bind(now)
        .bind(assignment_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(Msg::new("err-champion-paid")));
        }
        if a.bounty.minor > 0 {
            // Owed to the champion from the programme's budget; it leaves in the next payout
            // batch, like everyone else's money.
            let txn = post(
                &mut tx,
                &Transaction::champion_owed(a.champion_id, a.bounty)?,
                now,
            )
            .await?;
            sqlx::query("UPDATE champion_assignments SET paid_txn = $1 WHERE id = $2")
                .bind(txn)
                .bind(assignment_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
