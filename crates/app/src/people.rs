//! People: signing up, signing in, and setting a password with a texted code. Passwords are
//! hashed with argon2id (OWASP's minimum: 19 MiB, 2 passes) on the blocking pool, so the CPU it
//! takes by design never stalls the async workers; storage only ever sees the hash.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use tianguis_domain::phone::PhoneNumber;
use tianguis_store::users::{Role, User, UserRow, check_name};
use tianguis_store::{Db, Msg, Result, StoreError};

/// A person signing up, or an account an official adds.
pub struct NewUser<'a> {
    pub phone: &'a str,
    pub email: Option<&'a str>,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub place_id: Option<i64>,
}

fn argon() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hash a password now, on this thread (demo seeding hashes once for many accounts).
pub fn hash_password(pw: &str) -> Result<String> {
    // A fresh random salt from the operating system for each hash.
    argon()
        .hash_password(pw.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Corrupt(format!("cannot hash password: {e}")))
}

/// Hash on the blocking pool.
pub async fn hash_blocking(pw: &str) -> Result<String> {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || hash_password(&pw))
        .await
        .map_err(|e| StoreError::Corrupt(format!("hashing task failed: {e}")))?
}

fn verify_password(pw: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| argon().verify_password(pw.as_bytes(), &h).is_ok())
}

/// A valid argon2id hash of a random string, to spend the same time on unknown phones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$F2wXbyc3SGkRx1B7XkzKq8XbTUD0sGQ4oQ1hG4wPc3E";

fn check_password(pw: &str) -> Result<()> {
    if pw.chars().count() < 8 {
        return Err(StoreError::invalid("err-password-short"));
    }
    Ok(())
}

/// Make an account with a password of its own.
pub async fn create_user(db: &Db, u: NewUser<'_>) -> Result<User> {
    let phone = db.phone(u.phone).await?;
    check_name(u.name)?;
    check_password(u.password)?;
    if let Some(e) = u.email
        && !e.is_empty()
        && (!e.contains('@') || e.len() > 200 || tianguis_domain::text::line(e, "email").is_err())
    {
        return Err(StoreError::Invalid(Msg::new("err-email").arg("email", e)));
    }
    let hash = hash_blocking(u.password).await?;
    db.insert_user(&UserRow {
        phone: &phone,
        email: u.email,
        name: u.name,
        password_hash: &hash,
        role: u.role,
        place_id: u.place_id,
        password_set: true,
    })
    .await
}

/// Checks a phone and password. Runs the hash even for unknown phones so the answer takes
/// the same time either way.
pub async fn authenticate(db: &Db, phone: &str, password: &str) -> Result<Option<User>> {
    let Ok(phone) = PhoneNumber::parse(phone, db.phone_region().await?) else {
        return Ok(None);
    };
    let row = db.login_row(&phone).await?;
    let (id, hash) = match row {
        Some((id, hash)) if !hash.is_empty() => (Some(id), hash),
        _ => (None, DUMMY_HASH.to_string()),
    };
    let pw = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&pw, &hash))
        .await
        .unwrap_or(false);
    match (ok, id) {
        (true, Some(id)) => Ok(Some(db.user(id).await?)),
        _ => Ok(None),
    }
}

/// Sign in with the code texted to the phone (a password is optional): the same answer as a
/// wrong code for a phone with no account, and a suspended account stays out.
pub async fn sign_in_with_code(db: &Db, phone: &str, code: &str) -> Result<User> {
    let phone = db.phone(phone).await?;
    let no_code = || StoreError::Invalid(tianguis_domain::mandate::CodeError::Expired.msg());
    let user = match db.user_by_phone(phone.as_str()).await {
        Ok(u) if u.active => u,
        Ok(_) | Err(StoreError::NotFound(_)) => return Err(no_code()),
        Err(e) => return Err(e),
    };
    db.use_phone_code("login", phone.as_str(), code).await?;
    Ok(user)
}

/// Claim an account made at a centre (it has no password yet) with the code texted to it.
pub async fn claim_account(db: &Db, phone: &str, code: &str, password: &str) -> Result<User> {
    set_password_with_code(db, "claim", false, phone, code, password).await
}

/// "Forgot password": an account with a password sets a new one with a code texted to it.
pub async fn reset_password(db: &Db, phone: &str, code: &str, password: &str) -> Result<User> {
    set_password_with_code(db, "reset", true, phone, code, password).await
}

async fn set_password_with_code(
    db: &Db,
    purpose: &str,
    has_password: bool,
    phone: &str,
    code: &str,
    password: &str,
) -> Result<User> {
    let phone = db.phone(phone).await?;
    check_password(password)?;
    // No such account, or not one in this state: the same answer as no code sent, so nothing
    // is learnt about who has an account.
    let no_code = || StoreError::Invalid(tianguis_domain::mandate::CodeError::Expired.msg());
    let user = match db.user_by_phone(phone.as_str()).await {
        Ok(u) => u,
        Err(StoreError::NotFound(_)) => return Err(no_code()),
        Err(e) => return Err(e),
    };
    if user.has_password != has_password {
        return Err(no_code());
    }
    db.use_phone_code(purpose, phone.as_str(), code).await?;
    let hash = hash_blocking(password).await?;
    db.set_password_hash(user.id, &hash, has_password).await?;
    Ok(user)
}
