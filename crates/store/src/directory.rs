//! The officials' lists of people and sellers: searched, filtered and paged in the database
//! (a national programme has hundreds of thousands), the same on both databases.

use crate::users::{USER_COLS, User, user_from};
use crate::{Db, Result, row_i64, row_opt_i64, row_str};

/// Rows on one page of a list.
pub const PAGE_SIZE: i64 = 25;

/// One page of a list and whether another follows.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub rows: Vec<T>,
    pub page: i64,
    pub more: bool,
}

/// What an official looks for among people: words of a name or digits of a phone, a role
/// (`seller`, or a granted role such as `agent`), suspended ones only.
#[derive(Debug, Clone, Default)]
pub struct PeopleFilter {
    pub text: String,
    pub role: Option<String>,
    pub suspended: bool,
    pub page: i64,
}

/// What an official looks for among sellers.
#[derive(Debug, Clone, Default)]
pub struct SellerFilter {
    pub text: String,
    pub place_id: Option<i64>,
    pub journey_level: Option<i64>,
    pub women_led: bool,
    /// Only sellers with at least one sale.
    pub with_sales: bool,
    pub page: i64,
}

/// A seller as the list shows them: sales are delivered or completed orders.
#[derive(Debug, Clone)]
pub struct SellerRow {
    pub seller_id: i64,
    pub user_id: i64,
    pub shop_name: String,
    pub owner: String,
    pub phone: String,
    pub place: String,
    pub journey_level: i64,
    pub women_led: bool,
    pub sales: i64,
    pub sales_minor: i64,
    pub active: bool,
}

/// `%text%` for LIKE, with LIKE's own characters escaped (`ESCAPE '\'`), lower-cased.
fn contains(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.trim().to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn offset(page: i64) -> i64 {
    (page.max(1) - 1) * PAGE_SIZE
}

fn paged<T>(mut rows: Vec<T>, page: i64) -> Page<T> {
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    Page {
        rows,
        page: page.max(1),
        more,
    }
}

impl Db {
    /// People matching the filter, newest first. A text that reads as a phone number also
    /// finds its owner however it was typed.
    pub async fn find_people(&self, f: &PeopleFilter) -> Result<Page<User>> {
        let phone = self
            .phone(&f.text)
            .await
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let mut q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id \
             WHERE (LOWER(u.name) LIKE $1 ESCAPE '\\' OR u.phone LIKE $1 ESCAPE '\\' OR u.phone = $2)"
        );
        if f.suspended {
            q.push_str(" AND u.active = 0");
        }
        let role = f.role.as_deref().filter(|r| !r.is_empty());
        match role {
            None => {}
            Some("seller") => q.push_str(" AND s.id IS NOT NULL"),
            Some(_) => q.push_str(
                " AND EXISTS (SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.revoked_at IS NULL AND g.role = $5)",
            ),
        }
        q.push_str(" ORDER BY u.id DESC LIMIT $3 OFFSET $4");
        let mut query = sqlx::query(crate::sql(q))
            .bind(contains(&f.text))
            .bind(phone)
            .bind(PAGE_SIZE + 1)
            .bind(offset(f.page));
        if let Some(r) = role.filter(|r| *r != "seller") {
            query = query.bind(r.to_string());
        }
        let rows = query.fetch_all(&self.pool).await?;
        let users = rows.iter().map(user_from).collect::<Result<Vec<_>>>()?;
        let page = paged(users, f.page);
        Ok(Page {
            rows: self.with_grants(page.rows).await?,
            ..page
        })
    }

    /// Sellers matching the filter, biggest sales first.
    pub async fn find_sellers(&self, f: &SellerFilter) -> Result<Page<SellerRow>> {
        let mut q = String::from(
            "SELECT s.id AS seller_id, u.id AS user_id, s.shop_name, u.name AS owner, u.phone, \
             p.name AS place, s.journey_level, s.women_led, u.active, \
             COALESCE(x.n, 0) AS sales, COALESCE(x.minor, 0) AS sales_minor \
             FROM sellers s JOIN users u ON u.id = s.user_id JOIN places p ON p.id = s.place_id \
             LEFT JOIN (SELECT seller_id, COUNT(*) AS n, CAST(SUM(total_minor) AS BIGINT) AS minor \
               FROM orders WHERE state IN ('delivered', 'completed') GROUP BY seller_id) x \
               ON x.seller_id = s.id \
             WHERE (LOWER(s.shop_name) LIKE $1 ESCAPE '\\' OR LOWER(u.name) LIKE $1 ESCAPE '\\' \
               OR u.phone LIKE $1 ESCAPE '\\')",
        );
        // Parameters after the three fixed ones are numbered as they are added.
        let mut extra: Vec<i64> = Vec::new();
        if let Some(place) = f.place_id {
            extra.push(place);
            let n = 3 + extra.len();
            q.push_str(&format!(" AND (s.place_id = ${n} OR p.parent_id = ${n})"));
        }
        if let Some(level) = f.journey_level {
            extra.push(level);
            q.push_str(&format!(" AND s.journey_level = ${}", 3 + extra.len()));
        }
        if f.women_led {
            q.push_str(" AND s.women_led = 1");
        }
        if f.with_sales {
            q.push_str(" AND x.n > 0");
        }
        q.push_str(" ORDER BY sales_minor DESC, s.id DESC LIMIT $2 OFFSET $3");
        let mut query = sqlx::query(crate::sql(q))
            .bind(contains(&f.text))
            .bind(PAGE_SIZE + 1)
            .bind(offset(f.page));
        for v in extra {
            query = query.bind(v);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let rows = rows
            .iter()
            .map(|r| {
                Ok(SellerRow {
                    seller_id: row_i64(r, "seller_id")?,
                    user_id: row_i64(r, "user_id")?,
                    shop_name: row_str(r, "shop_name")?,
                    owner: row_str(r, "owner")?,
                    phone: row_str(r, "phone")?,
                    place: row_str(r, "place")?,
                    journey_level: row_i64(r, "journey_level")?,
                    women_led: row_i64(r, "women_led")? != 0,
                    sales: row_i64(r, "sales")?,
                    sales_minor: row_opt_i64(r, "sales_minor")?.unwrap_or(0),
                    active: row_i64(r, "active")? != 0,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(paged(rows, f.page))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::contains(" Ana_100% "), "%ana\\_100\\%%");
        assert_eq!(super::contains(""), "%%");
        assert_eq!(super::offset(0), 0);
        assert_eq!(super::offset(3), 2 * super::PAGE_SIZE);
    }
}
