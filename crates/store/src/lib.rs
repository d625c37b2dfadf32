//! Storage of tianguis: one code path over SQLite and PostgreSQL through sqlx's `Any` driver
//! (portable SQL: `$n` placeholders, BIGINT everywhere, epoch-ms times, guarded updates instead
//! of `FOR UPDATE`). This crate turns the domain's decisions into rows inside one transaction:
//! state change, event, ledger postings, stock and timers commit together or not at all.
//! It knows nothing of HTTP or HTML.

pub mod agents;
pub mod audit;
pub mod catalog;
pub mod champions;
pub mod db;
pub mod delivery;
pub mod diagnostics;
pub mod directory;
pub mod group;
pub mod images;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod mandates;
pub mod orders;
pub mod outbox;
pub mod payouts;
pub mod phones;
pub mod pickup;
pub mod queue;
pub mod registry;
pub mod search;
pub mod users;

pub use db::{Backend, Clock, Db};

pub use tianguis_domain::Msg;
use tianguis_domain::checkout::CheckoutError;
use tianguis_domain::ledger::LedgerError;
use tianguis_domain::process::ProcessError;

/// Errors of the storage layer. `Invalid`, `NotFound`, `Conflict`, `Forbidden` and the domain
/// errors carry a [`Msg`] for the person who asked (translated by the web layer); `Corrupt` and
/// `Db` are internal failures whose cause is logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(Msg),
    /// What was not found: `user`, `seller`, `product`, `photo`, `order`, `payment`.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(Msg),
    #[error("{0}")]
    Forbidden(Msg),
    /// A rate limit was reached; try again later.
    #[error("too many requests")]
    Limited,
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// Stored data that cannot be read back, or a library failing on valid input.
    #[error("corrupt or unexpected data: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    pub fn invalid(key: &'static str) -> StoreError {
        StoreError::Invalid(Msg::new(key))
    }
    /// The message for a person, when there is one.
    pub fn msg(&self) -> Option<Msg> {
        match self {
            StoreError::Invalid(m) | StoreError::Conflict(m) | StoreError::Forbidden(m) => {
                Some(m.clone())
            }
            StoreError::NotFound(w) => Some(Msg::new("err-not-found").arg("what", w)),
            StoreError::Limited => Some(Msg::new("error-rate")),
            StoreError::Process(p) => Some(p.msg()),
            StoreError::Ledger(l) => Some(l.msg()),
            StoreError::Checkout(c) => Some(c.msg()),
            _ => None,
        }
    }
}

impl StoreError {
    /// True when the database cannot be reached (down, restarting, the network to it cut):
    /// the request is answered 503 and jobs try again; nothing was written.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Db(
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_),
            ) => true,
            // PostgreSQL's connection exceptions (08) and operator intervention (57P: shut
            // down, cannot connect now).
            StoreError::Db(sqlx::Error::Database(e)) => e
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }

    /// True when the same request may succeed if tried again (lock timeouts, deadlocks,
    /// serialization failures).
    pub fn is_transient(&self) -> bool {
        if self.is_unavailable() {
            return true;
        }
        match self {
            StoreError::Db(sqlx::Error::Database(e)) => {
                let code = e.code().map(|c| c.to_string()).unwrap_or_default();
                matches!(code.as_str(), "40001" | "40P01" | "5" | "6" | "517")
                    || e.message().contains("database is locked")
            }
            StoreError::Db(sqlx::Error::PoolTimedOut) => true,
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn row_i64(row: &sqlx::any::AnyRow, col: &str) -> Result<i64> {
    use sqlx::Row;
    Ok(row.try_get::<i64, _>(col)?)
}
pub(crate) fn row_str(row: &sqlx::any::AnyRow, col: &str) -> Result<String> {
    use sqlx::Row;
    Ok(row.try_get::<String, _>(col)?)
}
pub(crate) fn row_opt_str(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<String>> {
    use sqlx::Row;
    Ok(row.try_get::<Option<String>, _>(col)?)
}
pub(crate) fn row_opt_i64(row: &sqlx::any::AnyRow, col: &str) -> Result<Option<i64>> {
    use sqlx::Row;
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

/// SQL this crate assembled at run time, vouched for: built only from constant fragments of
/// this crate, numbered placeholders and integers it formatted itself. Whatever a person typed
/// is always bound as a parameter, never spliced in. The one place sqlx's `AssertSqlSafe` is
/// used (a test keeps it so).
pub(crate) fn sql(assembled: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(assembled)
}

/// A refusal of the authorization policy, as a storage error.
pub fn denied(d: tianguis_domain::policy::Denied) -> StoreError {
    use tianguis_domain::policy::Denied;
    match d {
        Denied::SignIn | Denied::Forbidden(_) => StoreError::Forbidden(d.msg()),
        Denied::Hidden(what) => StoreError::NotFound(what),
        Denied::Invalid(_) => StoreError::Invalid(d.msg()),
    }
}

/// Checks on text people type, as storage errors (see `tianguis_domain::text`).
pub(crate) mod text {
    use crate::{Result, StoreError};
    pub fn line(s: &str, field: &str) -> Result<()> {
        tianguis_domain::text::line(s, field).map_err(StoreError::Invalid)
    }
    pub fn multiline(s: &str, field: &str) -> Result<()> {
        tianguis_domain::text::multiline(s, field).map_err(StoreError::Invalid)
    }
}

/// A one-time code of six decimal digits, from the same CSPRNG as tokens.
pub fn six_digit_code() -> String {
    use rand::RngExt;
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// A random URL-safe token of `bytes` random bytes, hex encoded.
pub fn random_token(bytes: usize) -> String {
    // ThreadRng: a CSPRNG (ChaCha12) seeded from the operating system and reseeded.
    use rand::Rng;
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
