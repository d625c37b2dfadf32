//! People (users and their roles), sessions kept in the database (so several server processes
//! share them), and API tokens for machine clients. Passwords arrive here already hashed.

use crate::{
    Db, Msg, Result, StoreError, random_token, row_i64, row_opt_i64, row_opt_str, row_str,
};
use tianguis_domain::ids::{SellerId, UserId};
use tianguis_domain::phone::PhoneNumber;

pub use tianguis_domain::policy::{Grant, GrantScope, Person, Role};

/// A role name from a form or the command line.
pub fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| StoreError::Invalid(Msg::new("err-role").arg("role", s)))
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub phone: String,
    pub email: Option<String>,
    pub name: String,
    pub place_id: Option<i64>,
    /// The seller profile id when the user sells.
    pub seller_id: Option<i64>,
    pub active: bool,
    /// The digital centre an agent works at (the first agent grant's), for pages.
    pub centre_id: Option<i64>,
    /// False for an account made for someone else (a walk-in buyer, a seller onboarded at a
    /// centre) until they claim it with a texted code.
    pub has_password: bool,
    /// The roles this person holds now (revoked grants are not here).
    pub grants: Vec<Grant>,
    /// They replied STOP: only the texts they need (delivery codes, money) reach them.
    pub texts_stopped: bool,
}

impl User {
    /// The person as the authorization policy sees them.
    pub fn person(&self) -> Person {
        Person {
            id: UserId(self.id),
            active: self.active,
            seller_id: self.seller_id.map(SellerId),
            grants: self.grants.clone(),
        }
    }
    pub fn is(&self, role: Role) -> bool {
        self.active && self.grants.iter().any(|g| g.role == role)
    }
    /// For templates: `u.has_role("agent")`.
    pub fn has_role(&self, name: &str) -> bool {
        Role::parse(name).is_some_and(|r| self.is(r))
    }
    /// The most telling role, for lists (admin, official, agent, ..., seller, buyer).
    pub fn primary_role(&self) -> Role {
        let mut roles: Vec<Role> = self.grants.iter().map(|g| g.role).collect();
        if self.seller_id.is_some() {
            roles.push(Role::Seller);
        }
        roles.into_iter().max().unwrap_or(Role::Buyer)
    }
}

/// A grant as recorded, with who gave it and who took it back (the audit trail).
#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub id: i64,
    pub user_id: i64,
    pub grant: Grant,
    pub granted_by: Option<i64>,
    pub granted_at: i64,
    pub revoked_by: Option<i64>,
    pub revoked_at: Option<i64>,
}

fn grant_from(r: &sqlx::any::AnyRow) -> Result<Grant> {
    let role = row_str(r, "role")?;
    let kind = row_str(r, "scope_kind")?;
    Ok(Grant {
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
        scope: GrantScope::from_parts(&kind, row_opt_i64(r, "scope_id")?)
            .ok_or_else(|| StoreError::Corrupt(format!("grant scope {kind}")))?,
    })
}

/// The grant a role gets when it needs no place to work (admins, couriers, champions).
pub fn everywhere(role: Role) -> Option<Grant> {
    Grant::new(role, GrantScope::Everywhere).ok()
}

/// A person's current grants, read inside a transaction (decisions are taken on them).
pub(crate) async fn grants_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<Vec<Grant>> {
    sqlx::query("SELECT role, scope_kind, scope_id FROM grants WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id")
        .bind(user_id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(grant_from)
        .collect()
}

/// The person behind a user id as they are now, read inside a transaction: the policy decides
/// on this, not on what a page loaded earlier.
pub async fn person_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<Person> {
    let r = sqlx::query("SELECT u.active, s.id AS seller_id FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE u.id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    Ok(Person {
        id: UserId(user_id),
        active: row_i64(&r, "active")? == 1,
        seller_id: row_opt_i64(&r, "seller_id")?.map(SellerId),
        grants: grants_in(tx, user_id).await?,
    })
}

/// Record a grant inside the caller's transaction; an identical active grant is kept.
pub(crate) async fn grant_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    by: Option<i64>,
    user_id: i64,
    g: Grant,
    now: i64,
) -> Result<i64> {
    let existing = sqlx::query("SELECT id FROM grants WHERE user_id = $1 AND role = $2 AND scope_kind = $3 AND COALESCE(scope_id, -1) = $4 AND revoked_at IS NULL")
        .bind(user_id)
        .bind(g.role.as_str())
        .bind(g.scope.kind())
        .bind(g.scope.id().unwrap_or(-1))
        .fetch_optional(&mut **tx)
        .await?;
    if let Some(r) = existing {
        return row_i64(&r, "id");
    }
    let r = sqlx::query("INSERT INTO grants (user_id, role, scope_kind, scope_id, granted_by, granted_at) VALUES ($1,$2,$3,$4,$5,$6) RETURNING id")
        .bind(user_id)
        .bind(g.role.as_str())
        .bind(g.scope.kind())
        .bind(g.scope.id())
        .bind(by)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?;
    row_i64(&r, "id")
}

/// Revoke a person's active grants of `role` inside the caller's transaction.
pub(crate) async fn revoke_role_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    by: Option<i64>,
    user_id: i64,
    role: Role,
    now: i64,
) -> Result<u64> {
    Ok(sqlx::query("UPDATE grants SET revoked_by = $1, revoked_at = $2 WHERE user_id = $3 AND role = $4 AND revoked_at IS NULL")
        .bind(by)
        .bind(now)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

pub(crate) const USER_COLS: &str = "u.id, u.phone, u.email, u.name, u.place_id, s.id AS seller_id, u.active, u.password_set, u.sms_stop";

/// A user with their current grants, one row per grant (none: one row with NULLs).
const USER_WITH_GRANTS: &str = "SELECT u.id, u.phone, u.email, u.name, u.place_id, s.id AS seller_id, u.active, u.password_set, u.sms_stop, \
    g.role, g.scope_kind, g.scope_id FROM users u LEFT JOIN sellers s ON s.user_id = u.id \
    LEFT JOIN grants g ON g.user_id = u.id AND g.revoked_at IS NULL";

/// The user of [`USER_WITH_GRANTS`] rows, with their grants.
fn fold_user(rows: &[sqlx::any::AnyRow]) -> Result<Option<User>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut u = user_from(first)?;
    for r in rows {
        if row_opt_str(r, "role")?.is_some() {
            u.grants.push(grant_from(r)?);
        }
    }
    u.centre_id = u.person().centre().map(i64::from);
    Ok(Some(u))
}

/// A user row without grants yet (see [`Db::with_grants`]).
pub(crate) fn user_from(row: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: row_i64(row, "id")?,
        phone: row_str(row, "phone")?,
        email: row_opt_str(row, "email")?,
        name: row_str(row, "name")?,
        place_id: row_opt_i64(row, "place_id")?,
        seller_id: row_opt_i64(row, "seller_id")?,
        active: row_i64(row, "active")? == 1,
        centre_id: None,
        has_password: row_i64(row, "password_set")? == 1,
        texts_stopped: row_i64(row, "sms_stop")? != 0,
        grants: Vec::new(),
    })
}

/// A person's row as stored: validated and with the password already hashed (by
/// `tianguis_app::people`, on the blocking pool).
pub struct UserRow<'a> {
    pub phone: &'a PhoneNumber,
    pub email: Option<&'a str>,
    pub name: &'a str,
    pub password_hash: &'a str,
    /// A role that needs no place (admin, courier, champion) becomes a grant; buyer and seller
    /// need none.
    pub role: Role,
    pub place_id: Option<i64>,
    /// False for an account made for someone else, until they claim it.
    pub password_set: bool,
}

impl Db {
    /// Store a person. A phone already taken is a conflict.
    pub async fn insert_user(&self, u: &UserRow<'_>) -> Result<User> {
        let grant = match u.role {
            Role::Buyer | Role::Seller => None,
            r => Some(everywhere(r).ok_or(StoreError::invalid("err-grant-scope"))?),
        };
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let res = sqlx::query(
            "INSERT INTO users (phone, email, name, password_hash, role, place_id, created_at, password_set) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(u.phone.as_str().to_string())
        .bind(u.email.filter(|e| !e.is_empty()).map(str::to_string))
        .bind(u.name.trim().to_string())
        .bind(u.password_hash.to_string())
        .bind("buyer")
        .bind(u.place_id)
        .bind(now)
        .bind(i64::from(u.password_set))
        .fetch_one(&mut *tx)
        .await;
        match res {
            Ok(row) => {
                let id = row_i64(&row, "id")?;
                if let Some(g) = grant {
                    grant_in(&mut tx, None, id, g, now).await?;
                }
                tx.commit().await?;
                self.user(id).await
            }
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
        let phone = self.phone(phone).await?;
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
        let q = format!("{USER_WITH_GRANTS} WHERE u.id = $1 ORDER BY g.id");
        let rows = sqlx::query(crate::sql(q))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        fold_user(&rows)?.ok_or(StoreError::NotFound("user"))
    }

    async fn one_with_grants(&self, u: User) -> Result<User> {
        Ok(self.with_grants(vec![u]).await?.remove(0))
    }

    /// Attach each user's current grants (one query for the lot).
    pub async fn with_grants(&self, mut users: Vec<User>) -> Result<Vec<User>> {
        if users.is_empty() {
            return Ok(users);
        }
        // Ids are integers: listing them inline is safe and portable.
        let ids: Vec<String> = users.iter().map(|u| u.id.to_string()).collect();
        let q = format!(
            "SELECT user_id, role, scope_kind, scope_id FROM grants WHERE revoked_at IS NULL AND user_id IN ({}) ORDER BY id",
            ids.join(",")
        );
        let rows = sqlx::query(crate::sql(q)).fetch_all(&self.pool).await?;
        let mut by_user: std::collections::HashMap<i64, Vec<Grant>> = Default::default();
        for r in &rows {
            by_user
                .entry(row_i64(r, "user_id")?)
                .or_default()
                .push(grant_from(r)?);
        }
        for u in &mut users {
            u.grants = by_user.remove(&u.id).unwrap_or_default();
            u.centre_id = u.person().centre().map(i64::from);
        }
        Ok(users)
    }

    pub async fn user_by_phone(&self, phone: &str) -> Result<User> {
        let phone = self.phone(phone).await?;
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE u.phone = $1"
        );
        let row = sqlx::query(crate::sql(q))
            .bind(phone.as_str().to_string())
            .fetch_optional(&self.pool)
            .await?;
        self.one_with_grants(user_from(&row.ok_or(StoreError::NotFound("user"))?)?)
            .await
    }

    /// An admin suspends (or reinstates) a person. A suspended person's sessions and API tokens
    /// stop working at once. Nobody suspends themselves. Decided on the admin's grants as they
    /// are inside the transaction.
    pub async fn set_user_active(&self, admin_id: i64, user_id: i64, active: bool) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let admin = person_in(&mut tx, admin_id).await?;
        tianguis_domain::policy::change_access(&admin, UserId(user_id), !active)
            .map_err(crate::denied)?;
        let n = sqlx::query("UPDATE users SET active = $1 WHERE id = $2")
            .bind(active as i64)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("user"));
        }
        if !active {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// An admin gives an account another phone (settling a reported duplicate, or a person who
    /// changed number): normalised like every phone; a number another account holds is refused.
    /// Their sessions end, so the next sign-in is with the new number.
    pub async fn set_user_phone(&self, admin_id: i64, user_id: i64, raw: &str) -> Result<()> {
        let phone = self.phone(raw).await?;
        let mut tx = self.begin_write().await?;
        let admin = person_in(&mut tx, admin_id).await?;
        tianguis_domain::policy::change_access(&admin, UserId(user_id), false)
            .map_err(crate::denied)?;
        let res = sqlx::query("UPDATE users SET phone = $1 WHERE id = $2")
            .bind(phone.as_str().to_string())
            .bind(user_id)
            .execute(&mut *tx)
            .await;
        match res {
            Ok(r) if r.rows_affected() == 0 => return Err(StoreError::NotFound("user")),
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Conflict(Msg::new("err-phone-taken")));
            }
            Err(e) => return Err(e.into()),
        }
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An admin gives a person a role (where it applies). Recorded with who and when.
    pub async fn grant_role(&self, admin_id: i64, user_id: i64, g: Grant) -> Result<i64> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let admin = person_in(&mut tx, admin_id).await?;
        tianguis_domain::policy::change_access(&admin, UserId(user_id), false)
            .map_err(crate::denied)?;
        person_in(&mut tx, user_id).await?;
        if let GrantScope::Point(p) = g.scope {
            let found = sqlx::query("SELECT id FROM pickup_points WHERE id = $1")
                .bind(p.0)
                .fetch_optional(&mut *tx)
                .await?;
            found.ok_or(StoreError::NotFound("pickup point"))?;
        }
        if let GrantScope::Place(p) = g.scope {
            let found = sqlx::query("SELECT id FROM places WHERE id = $1")
                .bind(p.0)
                .fetch_optional(&mut *tx)
                .await?;
            found.ok_or(StoreError::NotFound("place"))?;
        }
        let id = grant_in(&mut tx, Some(admin_id), user_id, g, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// An admin takes a grant back (kept, marked revoked, for the record). Nobody takes their
    /// own admin grant.
    pub async fn revoke_grant(&self, admin_id: i64, grant_id: i64) -> Result<()> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("SELECT user_id, role, scope_kind, scope_id FROM grants WHERE id = $1 AND revoked_at IS NULL")
            .bind(grant_id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("grant"))?;
        let g = grant_from(&r)?;
        let admin = person_in(&mut tx, admin_id).await?;
        tianguis_domain::policy::change_access(
            &admin,
            UserId(row_i64(&r, "user_id")?),
            g.role == Role::Admin,
        )
        .map_err(crate::denied)?;
        sqlx::query("UPDATE grants SET revoked_by = $1, revoked_at = $2 WHERE id = $3 AND revoked_at IS NULL")
            .bind(admin_id)
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whose grant this is.
    pub async fn grant_owner(&self, grant_id: i64) -> Result<i64> {
        let r = sqlx::query("SELECT user_id FROM grants WHERE id = $1")
            .bind(grant_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound("grant"))?;
        row_i64(&r, "user_id")
    }

    /// Every grant a person was ever given, newest first, revoked ones included.
    pub async fn grant_records(&self, user_id: i64) -> Result<Vec<GrantRecord>> {
        sqlx::query("SELECT * FROM grants WHERE user_id = $1 ORDER BY id DESC")
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(GrantRecord {
                    id: row_i64(r, "id")?,
                    user_id: row_i64(r, "user_id")?,
                    grant: grant_from(r)?,
                    granted_by: row_opt_i64(r, "granted_by")?,
                    granted_at: row_i64(r, "granted_at")?,
                    revoked_by: row_opt_i64(r, "revoked_by")?,
                    revoked_at: row_opt_i64(r, "revoked_at")?,
                })
            })
            .collect()
    }

    /// Active grants of a role at a scope (the agents of a centre, say), by user id.
    pub async fn holders(&self, g: Grant) -> Result<Vec<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id WHERE u.id IN \
             (SELECT user_id FROM grants WHERE revoked_at IS NULL AND role = $1 AND scope_kind = $2 AND COALESCE(scope_id, -1) = $3) ORDER BY u.id"
        );
        let users = sqlx::query(crate::sql(q))
            .bind(g.role.as_str())
            .bind(g.scope.kind())
            .bind(g.scope.id().unwrap_or(-1))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect::<Result<Vec<_>>>()?;
        self.with_grants(users).await
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
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let r = sqlx::query("INSERT INTO users (phone, email, name, password_hash, role, place_id, created_at) VALUES ($1, NULL, $2, $3, 'buyer', $4, $5) RETURNING id")
            .bind(phone.to_string())
            .bind(name.to_string())
            .bind(hash.to_string())
            .bind(place)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
        let id = row_i64(&r, "id")?;
        if let Some(g) = everywhere(role) {
            grant_in(&mut tx, None, id, g, now).await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    pub async fn list_users(&self, limit: i64) -> Result<Vec<User>> {
        let q = format!(
            "SELECT {USER_COLS} FROM users u LEFT JOIN sellers s ON s.user_id = u.id ORDER BY u.id LIMIT $1"
        );
        let users = sqlx::query(crate::sql(q))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(user_from)
            .collect::<Result<Vec<_>>>()?;
        self.with_grants(users).await
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
        if let Some(u) = user_id {
            // The cart is the person's: what they left in it on another device comes along
            // (quantities of the same product add up; checkout checks them against stock).
            sqlx::query(
                "INSERT INTO cart_lines (session_id, product_id, quantity) \
                 SELECT $1, product_id, quantity FROM cart_lines \
                 WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $2 AND id <> $3) \
                 ON CONFLICT (session_id, product_id) DO UPDATE SET quantity = cart_lines.quantity + excluded.quantity",
            )
            .bind(id.clone())
            .bind(u)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM cart_lines WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1 AND id <> $2)",
            )
            .bind(u)
            .bind(id.clone())
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
        // A signed-in person's choice is theirs: their texts follow it.
        sqlx::query(
            "UPDATE users SET lang = $1 WHERE id = (SELECT user_id FROM sessions WHERE id = $2)",
        )
        .bind(lang.to_string())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The language a person reads their texts in (`en`, `es`, `bn`, ...: a short code).
    pub async fn set_user_lang(&self, user_id: i64, lang: &str) -> Result<()> {
        let lang = lang.trim();
        if lang.is_empty() || lang.len() > 8 || !lang.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(StoreError::invalid("err-lang"));
        }
        sqlx::query("UPDATE users SET lang = $1 WHERE id = $2")
            .bind(lang.to_string())
            .bind(user_id)
            .execute(&self.write)
            .await?;
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
        // The person and their grants in one round trip: every API request starts here.
        let q = format!(
            "{USER_WITH_GRANTS} WHERE u.id = (SELECT t.user_id FROM api_tokens t WHERE t.token_hash = $1) \
             AND u.active = 1 ORDER BY g.id"
        );
        let rows = sqlx::query(crate::sql(q))
            .bind(hash_token(token))
            .fetch_all(&self.pool)
            .await?;
        fold_user(&rows)
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

/// The language a person's texts go in (theirs, else the marketplace's `default_lang`, else
/// Spanish, as at checkout), read inside the caller's transaction.
pub async fn lang_of_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<String> {
    let r = sqlx::query(
        "SELECT COALESCE(u.lang, (SELECT value FROM settings WHERE key = 'default_lang'), 'es') AS lang FROM users u WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound("user"))?;
    row_str(&r, "lang")
}

/// A person's phone, read inside the caller's transaction.
pub async fn phone_of_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    user_id: i64,
) -> Result<String> {
    let r = sqlx::query("SELECT phone FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound("user"))?;
    row_str(&r, "phone")
}
