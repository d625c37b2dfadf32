//! Digital addresses for places without street names: Open Location Code ("plus codes"),
//! implemented from the specification (google/open-location-code,
//! `Documentation/Specification/specification.md`) with integer arithmetic, and checked against
//! the official test vectors. The published crate is the 2018 float code and fails official
//! cases, hence this one. No I/O.

pub mod olc;

pub use olc::{CodeArea, OlcError, PlusCode};
