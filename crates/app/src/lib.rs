//! Use cases of tianguis. Each public function is one thing a person or a timer does (check
//! out, act on an order, onboard a seller, pay out), composed from the persistence of several
//! aggregates (`tianguis_store`) inside one database transaction, with the authorization
//! policy (`tianguis_domain::policy`) decided inside that same transaction on rows read fresh.
//! Knows nothing of HTTP, HTML or JSON wire formats.

pub mod images;

pub use tianguis_store::{Result, StoreError as Error};
pub mod people;
