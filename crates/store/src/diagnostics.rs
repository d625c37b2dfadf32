//! A firm's readiness diagnostics: every take kept with its answers and scores (as JSON text
//! the use case writes and reads), so progress between takes can be shown to the firm and
//! counted for officials.

use crate::{Db, Result, row_i64, row_str};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Take {
    pub id: i64,
    pub seller_id: i64,
    pub taken_by: i64,
    pub questionnaire: String,
    pub version: i64,
    pub answers: String,
    pub scores: String,
    pub overall: i64,
    pub level: i64,
    pub created_at: i64,
}

/// A take to record (its id and time are given by the store).
#[derive(Debug, Clone)]
pub struct NewTake<'a> {
    pub seller_id: i64,
    pub taken_by: i64,
    pub questionnaire: &'a str,
    pub version: i64,
    pub answers: &'a str,
    pub scores: &'a str,
    pub overall: i64,
    pub level: i64,
}

const COLS: &str =
    "id, seller_id, taken_by, questionnaire, version, answers, scores, overall, level, created_at";

fn take_from(r: &sqlx::any::AnyRow) -> Result<Take> {
    Ok(Take {
        id: row_i64(r, "id")?,
        seller_id: row_i64(r, "seller_id")?,
        taken_by: row_i64(r, "taken_by")?,
        questionnaire: row_str(r, "questionnaire")?,
        version: row_i64(r, "version")?,
        answers: row_str(r, "answers")?,
        scores: row_str(r, "scores")?,
        overall: row_i64(r, "overall")?,
        level: row_i64(r, "level")?,
        created_at: row_i64(r, "created_at")?,
    })
}

impl Db {
    pub async fn record_take(&self, t: &NewTake<'_>) -> Result<Take> {
        let r = sqlx::query(crate::sql(format!(
            "INSERT INTO diagnostic_takes (seller_id, taken_by, questionnaire, version, answers, scores, overall, level, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9) RETURNING {COLS}"
        )))
        .bind(t.seller_id)
        .bind(t.taken_by)
        .bind(t.questionnaire.to_string())
        .bind(t.version)
        .bind(t.answers.to_string())
        .bind(t.scores.to_string())
        .bind(t.overall)
        .bind(t.level)
        .bind(self.now_ms())
        .fetch_one(&self.write)
        .await?;
        take_from(&r)
    }

    /// A firm's latest take.
    pub async fn last_take(&self, seller_id: i64) -> Result<Option<Take>> {
        let r = sqlx::query(crate::sql(format!(
            "SELECT {COLS} FROM diagnostic_takes WHERE seller_id = $1 ORDER BY id DESC LIMIT 1"
        )))
        .bind(seller_id)
        .fetch_optional(&self.pool)
        .await?;
        r.as_ref().map(take_from).transpose()
    }

    /// A firm's takes, newest first.
    pub async fn takes_of(&self, seller_id: i64) -> Result<Vec<Take>> {
        let rows = sqlx::query(crate::sql(format!(
            "SELECT {COLS} FROM diagnostic_takes WHERE seller_id = $1 ORDER BY id DESC LIMIT 50"
        )))
        .bind(seller_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(take_from).collect()
    }
}

/// What officials count: firms diagnosed, how many took it again, their scores the first and
/// the latest time (the programme's impact measure), and where the firms stand now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub firms: i64,
    pub retaken: i64,
    /// Sums over every firm of its first and its latest overall score.
    pub first_total: i64,
    pub latest_total: i64,
    /// Over the firms that took it again: the sum of (latest - first).
    pub change_total: i64,
    /// Firms by the journey level of their latest take, 0-5.
    pub by_level: [i64; 6],
}

impl Summary {
    pub fn mean_first(&self) -> i64 {
        (self.first_total as f64 / self.firms.max(1) as f64).round() as i64
    }
    pub fn mean_latest(&self) -> i64 {
        (self.latest_total as f64 / self.firms.max(1) as f64).round() as i64
    }
    /// The mean change among the firms that took it again.
    pub fn mean_change(&self) -> i64 {
        (self.change_total as f64 / self.retaken.max(1) as f64).round() as i64
    }
}

impl Db {
    pub async fn diagnostic_summary(&self) -> Result<Summary> {
        let rows = sqlx::query(
            "SELECT l.level AS level, COUNT(*) AS firms, \
             CAST(COALESCE(SUM(CASE WHEN s.n > 1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS retaken, \
             CAST(COALESCE(SUM(f.overall), 0) AS BIGINT) AS first_total, \
             CAST(COALESCE(SUM(l.overall), 0) AS BIGINT) AS latest_total, \
             CAST(COALESCE(SUM(CASE WHEN s.n > 1 THEN l.overall - f.overall ELSE 0 END), 0) AS BIGINT) AS change_total \
             FROM (SELECT seller_id, MIN(id) AS first_id, MAX(id) AS last_id, COUNT(*) AS n \
                   FROM diagnostic_takes GROUP BY seller_id) s \
             JOIN diagnostic_takes f ON f.id = s.first_id \
             JOIN diagnostic_takes l ON l.id = s.last_id \
             GROUP BY l.level",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Summary::default();
        for r in &rows {
            let firms = row_i64(r, "firms")?;
            out.firms += firms;
            out.retaken += row_i64(r, "retaken")?;
            out.first_total += row_i64(r, "first_total")?;
            out.latest_total += row_i64(r, "latest_total")?;
            out.change_total += row_i64(r, "change_total")?;
            let level = row_i64(r, "level")?.clamp(0, 5) as usize;
            out.by_level[level] += firms;
        }
        Ok(out)
    }
}
