//! Digital addresses for places without street names: Open Location Code ("plus codes"),
//! implemented from the specification (google/open-location-code,
//! `Documentation/Specification/specification.md`) with integer arithmetic, and checked against
//! the official test vectors. The published crate is the 2018 float code and fails official
//! cases, hence this one. No I/O.

pub mod olc;

pub use olc::{CodeArea, OlcError, PlusCode};

/// Metres between two (latitude, longitude) points on a spherical earth (haversine).
pub fn haversine_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().min(1.0).asin()
}
