//! Typed ids: an order's id is not a user's, and a function that wants one cannot be given the
//! other by mistake. Each wraps the row's integer; storage reads and binds the integer, and
//! `From<i64>` is the one door from an untyped number (a path segment, a row).

use std::fmt;

macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
            pub struct $name(pub i64);

            impl From<i64> for $name {
                fn from(v: i64) -> Self {
                    $name(v)
                }
            }
            impl From<$name> for i64 {
                fn from(v: $name) -> i64 {
                    v.0
                }
            }
            impl fmt::Display for $name {
                fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "{}", self.0)
                }
            }
        )+
    };
}

ids!(
    /// A person's account.
    UserId,
    /// A shop (a seller profile; its owner is a user).
    SellerId,
    OrderId,
    CheckoutId,
    PaymentId,
    ProductId,
    /// A pickup point or digital centre.
    PointId,
    PlaceId,
    CarrierId,
    /// A courier-pool delivery job.
    JobId,
    MandateId,
    CategoryId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_wrap_and_unwrap() {
        let o = OrderId::from(7);
        assert_eq!(i64::from(o), 7);
        assert_eq!(o.to_string(), "7");
        assert!(OrderId(1) < OrderId(2));
    }
}
