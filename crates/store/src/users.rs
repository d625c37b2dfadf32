//! People (users and their roles), sessions kept in the database (so several server processes
//! share them), and API tokens for machine clients. Passwords arrive here already hashed.

use crate::{
    Db, Msg, Result, StoreError, random_token, row_i64, row_opt_i64, row_opt_str, row_str,
};
use serde::Serialize;
use tianguis_domain::phone::PhoneNumber;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Buyer,
    /// Runs a pickup point: checks parcels in and hands them over.
    Operator,
    /// Rides for the courier pool (post office, courier, motorbike or bicycle rider).
    Courier,
    /// Works at a digital centre: orders and lists for people, takes cash.
    Agent,
    /// A digital champion bringing assigned businesses online.
    Champion,
    Seller,
    Admin,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Courier => "courier",
            Role::Agent => "agent",
            Role::Champion => "champion",
        }
    }
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "buyer" => Ok(Role::Buyer),
            "seller" => Ok(Role::Seller),
            "admin" => Ok(Role::Admin),
            "operator" => Ok(Role::Operator),
            "courier" => Ok(Role::Courier),
            "agent" => Ok(Role::Agent),
            "champion" => Ok(Role::Champion),
            _ => Err(StoreError::Invalid(Msg::new("err-role").arg("role", s))),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: i64,
    pub phone: String,
    pub email: Option<String>,
    pub name: String,
    pub role: Role,
    pub place_id: Option<i64>,
    /// The seller profile id when the user sells.
    pub seller_id: Option<i64>,
    pub active: bool,
    /// The digital centre an agent works at.
    pub centre_id: Option<i64>,
    /// False for an account made for someone else (a walk-in buyer, a seller onboarded at a
    /// centre) until they claim it with a texted code.
    pub has_password: bool,
}

const USER_COLS: &str = "u.id, u.phone, u.email, u.name, u.role, u.place_id, s.id AS seller_id, u.active, u.centre_id, u.password_set";

fn user_from(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: row_i64(row, "id")?,
        phone: row_str(row, "phone")?,
        email: row_opt_str(row, "email")?,
        name: row_str(row, "name")?,
        role: Role::parse(&row_str(row, "role")?)?,
        place_id: row_opt_i64(row, "place_id")?,
        seller_id: row_opt_i64(row, "seller_id")?,
        active: row_i64(row, "active")? == 1,
        centre_id: row_opt_i64(row, "centre_id")?,
        has_password: row_i64(row, "password_set")? == 1,
    })
}

/// A person's row as stored: validated and with the password already hashed (by
/// `tianguis_app::people`, on the blocking pool).
pub struct UserRow<'a> {
    pub phone: &'a PhoneNumber,
    pub email: Option<&'a str>,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub place_id: Option<i64>,
    /// False for an account made for someone else, until they claim it.
    pub password_set: bool,
}

impl Db {
    /// Store a person. A phone already taken is a conflict.
    pub async fn insert_user(&self, u: &UserRow<'_>) -> Result<User> {
        let res = sqlx::query(
            "INSERT INTO users (phone, email, name, password_hash, role, place_id, created_at, password_set) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(u.phone.as_str().to_string())
        .bind(u.email.filter(|e| !e.is_empty()).map(str::to_string))
        .bind(u.name.trim().to_string())
        .bind(u.password_hash.to_string())
        .bind(u.role.as_str())
        .bind(u.place_id)
        .bind(self.now_ms())
        .bind(i64::from(u.password_set))
        .fetch_one(&self.write)
        .await;
        match res {
            Ok(row) => self.user(row_i64(&row, "id")?).await,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict(Msg::new("err-phone-taken")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// An account made for someone else (a walk-in buyer, a seller onboarded at a centre): a
    /// buyer with no password at all (no hash matches an empty one) until they claim it with a
    /// texted code.
    pub async fn create_unclaimed_user(
        &self,
        phone: &str,
        name: &str,
        place_id: Option<i64>,
    ) -> Result<User> {
        let phone = PhoneNumber::parse(phone).map_err(|e| StoreError::Invalid(e.msg()))?;
        check_name(name)?;
        self.insert_user(&UserRow {
            phone: &phone,
            email: None,
            name,
            password_hash: "",
            role: Role::Buyer,
            place_id,
            password_set: false,
        })
        .await
    }

    /// (user id, password hash) of the active account behind a phone, for signing in.
    pub async fn login_row(&self, phone: &PhoneNumber) -> Result<Option<(i64, String)>> {
        let row =
            sqlx::query("SELECT id, password_hash FROM users WHERE phone = $1 AND active = 1")
                .bind(phone.as_str().to_string())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| Ok((row_i64(&r, "id")?, row_str(&r, "password_hash")?)))
            .transpose()
    }

    /// A new password hash; `was_set` guards the kind of account (claiming is for accounts
    /// without a password, resetting for accounts with one). Every session of the account ends.
    pub async fn set_password_hash(&self, user_id: i64, hash: &str, was_set: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE users SET password_hash = $1, password_set = 1 WHERE id = $2 AND password_set = $3")
            .bind(hash.to_string())
            .bind(user_id)
            .bind(i64::from(was_set))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::Conflict(Msg::new("err-order-changed")));
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn user(&self, id: i64) -> Result<User> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE u.id = $1"
        );
        let row = sqlx::query(&q).bind(id).fetch_optional(&self.pool).await?;
        user_from(&row.ok_or(StoreError::NotFound("user"))?)
    }

    pub async fn user_by_phone(&self, phone: &str) -> Result<User> {
        let phone = PhoneNumber::parse(phone).map_err(|e| StoreError::Invalid(e.msg()))?;
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE u.phone = $1"
        );
        let row = sqlx::query(&q)
            .bind(phone.as_str().to_string())
            .fetch_optional(&self.pool)
            .await?;
        user_from(&row.ok_or(StoreError::NotFound("user"))?)
    }

    /// An admin changes a user's role or suspends them. A suspended user's sessions and API
    /// tokens stop working at once. Nobody can demote or suspend themselves.
    pub async fn set_user_access(
        &self,
        admin: &User,
        user_id: i64,
        role: Role,
        active: bool,
    ) -> Result<()> {
        if admin.role != Role::Admin {
            return Err(StoreError::Forbidden(Msg::new("err-not-your-move")));
        }
        if admin.id == user_id && (role != Role::Admin || !active) {
            return Err(StoreError::invalid("err-self-demote"));
        }
        let target = self.user(user_id).await?;
        if role == Role::Seller && target.seller_id.is_none() {
            return Err(StoreError::invalid("err-no-shop"));
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE users SET role = $1, active = $2 WHERE id = $3")
            .bind(role.as_str())
            .bind(active as i64)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if !active {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A user whose password was hashed elsewhere (demo seeding hashes once for many).
    pub async fn insert_user_hashed(
        &self,
        phone: &str,
        name: &str,
        hash: &str,
        role: Role,
        place: Option<i64>,
    ) -> Result<i64> {
        let r = sqlx::query("INSERT INTO users (phone, email, name, password_hash, role, place_id, created_at) VALUES ($1, NULL, $2, $3, $4, $5, $6) RETURNING id")
            .bind(phone.to_string())
            .bind(name.to_string())
            .bind(hash.to_string())
            .bind(role.as_str())
            .bind(place)
            .bind(self.now_ms())
            .fetch_one(&self.write)
            .await?;
        row_i64(&r, "id")
    }

    /// Users matching a condition on `u` with one bound id (`$1`), by id.
    pub(crate) async fn users_where(&self, cond: &str, id: i64) -> Result<Vec<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE {cond} ORDER BY u.id LIMIT 1000"
        );
        sqlx::query(&q)
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    pub async fn list_users(&self, limit: i64) -> Result<Vec<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id ORDER BY u.id LIMIT $1"
        );
        sqlx::query(&q)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect()
    }

    // ---- sessions ----

    /// A new anonymous or signed-in session; returns (id, csrf token).
    pub async fn create_session(
        &self,
        user_id: Option<i64>,
        lang: Option<&str>,
    ) -> Result<(String, String)> {
        let csrf = random_token(16);
        let id = self.create_session_with(user_id, lang, &csrf).await?;
        Ok((id, csrf))
    }

    /// A new session keeping a CSRF token the visitor already holds (the pages they have open
    /// carry it). Written through the write path like every other write.
    pub async fn create_session_with(
        &self,
        user_id: Option<i64>,
        lang: Option<&str>,
        csrf: &str,
    ) -> Result<String> {
        let id = random_token(24);
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, &id, user_id, csrf, lang, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// (user id, csrf, lang) of a live session.
    pub async fn session(&self, id: &str) -> Result<Option<(Option<i64>, String, Option<String>)>> {
        let row = sqlx::query(
            "SELECT user_id, csrf, lang FROM sessions WHERE id = $1 AND expires_at > $2",
        )
        .bind(id.to_string())
        .bind(self.now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok((
                row_opt_i64(&r, "user_id")?,
                row_str(&r, "csrf")?,
                row_opt_str(&r, "lang")?,
            ))
        })
        .transpose()
    }

    /// Log in: a fresh session id (the old one is deleted, so a planted id is useless); the cart
    /// follows the buyer.
    pub async fn rotate_session(
        &self,
        old: Option<&str>,
        user_id: Option<i64>,
        lang: Option<&str>,
    ) -> Result<(String, String)> {
        let (id, csrf) = (random_token(24), random_token(16));
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, &id, user_id, &csrf, lang, now).await?;
        if let Some(old) = old {
            sqlx::query("UPDATE cart_lines SET session_id = $1 WHERE session_id = $2")
                .bind(id.clone())
                .bind(old.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM sessions WHERE id = $1")
                .bind(old.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok((id, csrf))
    }

    pub async fn set_session_lang(&self, id: &str, lang: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE sessions SET lang = $1 WHERE id = $2")
            .bind(lang.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many sessions are stored (for tests and the officials' view).
    pub async fn session_count(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM sessions")
            .fetch_one(&self.pool)
            .await?;
        row_i64(&r, "n")
    }

    /// Expired sessions and their carts go; returns how many sessions.
    pub async fn delete_expired_sessions(&self) -> Result<u64> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM cart_lines WHERE session_id IN (SELECT id FROM sessions WHERE expires_at <= $1)").bind(now).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    pub async fn delete_session(&self, id: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM cart_lines WHERE session_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- API tokens ----

    /// A new API token for a user; only its hash is stored, the token is shown once.
    pub async fn create_api_token(&self, user_id: i64, name: &str) -> Result<String> {
        let token = format!("tgs_{}", random_token(24));
        sqlx::query(
            "INSERT INTO api_tokens (token_hash, user_id, name, created_at) VALUES ($1,$2,$3,$4)",
        )
        .bind(hash_token(&token))
        .bind(user_id)
        .bind(name.to_string())
        .bind(self.now_ms())
        .execute(&self.write)
        .await?;
        Ok(token)
    }

    pub async fn user_by_token(&self, token: &str) -> Result<Option<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             LEFT JOIN sellers s ON s.user_id = u.id WHERE t.token_hash = $1 AND u.active = 1"
        );
        let row = sqlx::query(&q)
            .bind(hash_token(token))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from).transpose()
    }
}

async fn insert_session(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    id: &str,
    user_id: Option<i64>,
    csrf: &str,
    lang: Option<&str>,
    now: i64,
) -> Result<()> {
    sqlx::query("INSERT INTO sessions (id, user_id, csrf, lang, expires_at, created_at) VALUES ($1,$2,$3,$4,$5,$6)")
        .bind(id.to_string())
        .bind(user_id)
        .bind(csrf.to_string())
        .bind(lang.map(str::to_string))
        .bind(now + SESSION_TTL_MS)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const SESSION_TTL_MS: i64 = 30 * 86_400_000;

/// A person's name: present, at most 120 bytes, one line.
pub fn check_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.len() > 120 {
        return Err(StoreError::invalid("err-name-length"));
    }
    crate::text::line(name, "name")
}

/// Tokens carry 24 random bytes, so a fast hash suffices (nothing to brute-force).
pub(crate) fn hash_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
