//! Who is asking, as extractors: a handler states in its signature what it needs (someone
//! signed in, someone the policy lets do a duty, an agent at a centre), the check runs before
//! the handler, through `tianguis_domain::policy`, and the handler cannot forget it. Use cases
//! decide again inside their transactions on fresh rows; this is the page's early answer.

use crate::AppState;
use crate::ctx::Ctx;
use crate::error::AppError;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::marker::PhantomData;
use tianguis_domain::policy::{self, Denied, Duty};
use tianguis_store::users::User;

/// A policy refusal as a page or problem: 401 to sign in, 403, 404, 422.
pub fn refusal(d: Denied) -> AppError {
    let status = match d {
        Denied::SignIn => StatusCode::UNAUTHORIZED,
        Denied::Forbidden(_) => StatusCode::FORBIDDEN,
        Denied::Hidden(_) => StatusCode::NOT_FOUND,
        Denied::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    AppError::User(status, d.msg())
}

fn ctx(parts: &Parts) -> Result<&Ctx, AppError> {
    parts
        .extensions
        .get::<Ctx>()
        .ok_or_else(|| AppError::Internal("no page context".into()))
}

/// Someone signed in (401 otherwise).
pub struct SignedIn(pub User);

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        Ok(SignedIn(ctx(parts)?.require_user()?.clone()))
    }
}

/// A duty as a type, for [`Can`].
pub trait DutyKind: Send + Sync {
    const DUTY: Duty;
}

macro_rules! duties {
    ($($name:ident),* $(,)?) => {
        $(
            #[doc = concat!("[`Duty::", stringify!($name), "`] as a type.")]
            pub struct $name;
            impl DutyKind for $name {
                const DUTY: Duty = Duty::$name;
            }
        )*
    };
}

duties!(
    ManageSettings,
    ManageDirectory,
    ManagePeople,
    ManageMoney,
    ManageAssistedCommerce,
    ManageChampions,
    ReadOfficialPages,
    ReadOperations,
    ServeAtCentre,
    ServeCounter,
    Champion,
);

/// Someone signed in whom the policy lets do duty `D`.
pub struct Can<D: DutyKind>(pub User, PhantomData<D>);

impl<D: DutyKind> Can<D> {
    pub fn user(&self) -> &User {
        &self.0
    }
}

/// The policy's answer for a page context: the user, if they may do `duty`.
pub fn may(c: &Ctx, duty: Duty) -> Result<User, AppError> {
    let u = c.require_user()?;
    policy::may(&u.person(), duty).map_err(refusal)?;
    Ok(u.clone())
}

impl<D: DutyKind> FromRequestParts<AppState> for Can<D> {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        Ok(Can(may(ctx(parts)?, D::DUTY)?, PhantomData))
    }
}

/// An agent and the centre they work at.
pub struct AtCentre(pub User, pub i64);

impl FromRequestParts<AppState> for AtCentre {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        let u = may(ctx(parts)?, Duty::ServeAtCentre)?;
        let centre = u
            .person()
            .centre()
            .ok_or_else(|| refusal(Denied::Forbidden("err-not-an-agent")))?;
        Ok(AtCentre(u, centre.into()))
    }
}

/// A seller and their shop.
pub struct Selling(pub User, pub i64);

impl FromRequestParts<AppState> for Selling {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, AppError> {
        let u = ctx(parts)?.require_user()?.clone();
        match u.seller_id.filter(|_| u.active) {
            Some(sid) => Ok(Selling(u, sid)),
            None => Err(AppError::user(StatusCode::FORBIDDEN, "err-no-shop")),
        }
    }
}
