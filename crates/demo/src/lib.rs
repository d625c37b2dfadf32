//! The demo district and benchmark support for tianguis: seeding a demo marketplace through
//! the product's own code paths (`tianguis serve --demo`), demo photos, and the raw database
//! ceilings `tianguis bench` compares against. Linked by the command line, never by the
//! libraries that serve a real marketplace.

pub mod bench;
pub mod photo;
pub mod seed;

pub use seed::*;
