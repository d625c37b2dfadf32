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
