//! The closed sets of the marketplace as types, not strings: how a payment is made and where
//! it stands, what a place is, what a pickup point is. Each parses from and prints to the word
//! stored in the database and used in URLs and forms; comparing with that word still reads
//! naturally (`method == "cash"`).

use std::fmt;

macro_rules! word_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
            pub fn parse(s: &str) -> Option<$name> {
                match s.trim() {
                    $($word => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

word_enum!(
    /// How a buyer pays.
    PaymentMethod {
        /// From the payer's phone; the provider confirms.
        MobileMoney = "mobile_money",
        /// Cash at a digital centre, before fulfilment.
        Cash = "cash",
        /// Cash handed to whoever delivers; recorded by them with the buyer's code.
        CashOnDelivery = "cash_on_delivery",
    }
);

word_enum!(
    /// Where a payment stands.
    PaymentStatus {
        /// Asked of the mobile-money provider; its answer has not come.
        Pending = "pending",
        /// To be paid in cash at the counter.
        AwaitingCash = "awaiting_cash",
        /// Paid at the door (cash on delivery).
        OnDelivery = "on_delivery",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Failed, and then the buyer chose again: a newer payment of the checkout stands.
        Replaced = "replaced",
    }
);

impl PaymentStatus {
    /// A new payment's status, by how it is made.
    pub fn initial(method: PaymentMethod) -> PaymentStatus {
        match method {
            PaymentMethod::MobileMoney => PaymentStatus::Pending,
            PaymentMethod::Cash => PaymentStatus::AwaitingCash,
            PaymentMethod::CashOnDelivery => PaymentStatus::OnDelivery,
        }
    }
    /// Still waiting for money (a succeeded or failed payment is settled).
    pub fn is_open(&self) -> bool {
        matches!(self, PaymentStatus::Pending | PaymentStatus::AwaitingCash)
    }
}

word_enum!(
    /// How a payout reaches its payee.
    PayoutChannel {
        /// To the payee's mobile-money wallet (their phone), by the provider's disbursement API.
        MobileMoney = "mobile_money",
        /// Counted out in cash at a digital centre, against the payee's signature.
        Cash = "cash",
        /// To the payee's bank account, a transfer an official makes in the bank's own
        /// system and records here with its reference (no bank API is assumed).
        Bank = "bank",
    }
);

impl PayoutChannel {
    /// Paid by a person, who records the receipt or the transfer's reference: cash and bank
    /// transfers. A mobile-money line is settled only by the provider's answer.
    pub fn by_hand(&self) -> bool {
        !matches!(self, PayoutChannel::MobileMoney)
    }
}

/// A bank account as a payee gives it ("BBVA 012 180 00123456789 1"): a bank's name or code and
/// an account number (a CLABE, an IBAN, a local number), 6 to 34 letters and digits in the
/// number. Kept as typed, spaces tidied.
pub fn bank_account(input: &str) -> Option<String> {
    let t = input.split_whitespace().collect::<Vec<_>>().join(" ");
    let digits = t.chars().filter(|c| c.is_ascii_digit()).count();
    let ok_chars = t
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '.' | '/'));
    (ok_chars && (6..=34).contains(&digits) && t.chars().count() <= 80).then_some(t)
}

word_enum!(
    /// Where a payout batch stands.
    BatchStatus {
        /// Proposed by the schedule or an official; its money already set aside.
        Prepared = "prepared",
        /// Approved (by another official than the one who prepared it): its lines go out.
        Approved = "approved",
        /// Every line is paid or failed.
        Done = "done",
        /// Thrown away before approval: its money went back to the payees.
        Cancelled = "cancelled",
    }
);

word_enum!(
    /// Where one payout line stands.
    LineStatus {
        /// Set aside, waiting for the batch's approval.
        Proposed = "proposed",
        /// Asked of the provider (or handed to the centre); the answer is awaited.
        Sending = "sending",
        /// The payee has it.
        Paid = "paid",
        /// The transfer failed; the money is back in the payee's balance, with the reason.
        Failed = "failed",
        /// Its batch was cancelled; the money is back in the payee's balance.
        Cancelled = "cancelled",
    }
);

word_enum!(
    /// What a place is, from the district down.
    PlaceKind {
        District = "district",
        City = "city",
        Town = "town",
        Village = "village",
    }
);

word_enum!(
    /// What a pickup point is.
    PointKind {
        /// A digital centre: agents serve its counter.
        Centre = "centre",
        Store = "store",
        FuelStation = "fuel_station",
        Locker = "locker",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        for m in PaymentMethod::ALL {
            assert_eq!(PaymentMethod::parse(m.as_str()), Some(*m));
        }
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(*s));
        }
        for k in PlaceKind::ALL {
            assert_eq!(PlaceKind::parse(k.as_str()), Some(*k));
        }
        for k in PointKind::ALL {
            assert_eq!(PointKind::parse(k.as_str()), Some(*k));
        }
        assert_eq!(PaymentMethod::parse("bitcoin"), None);
        assert!(PaymentMethod::Cash == "cash");
        assert_eq!(
            PaymentStatus::initial(PaymentMethod::MobileMoney),
            PaymentStatus::Pending
        );
        assert!(!PaymentStatus::Succeeded.is_open());
    }

    #[test]
    fn bank_accounts() {
        assert_eq!(
            super::bank_account("  BBVA   012180001234567891 "),
            Some("BBVA 012180001234567891".into())
        );
        assert!(super::bank_account("GB82 WEST 1234 5698 7654 32").is_some());
        assert!(super::bank_account("my bank").is_none());
        assert!(super::bank_account("BBVA 0121<script>").is_none());
        assert!(super::PayoutChannel::Bank.by_hand() && super::PayoutChannel::Cash.by_hand());
        assert!(!super::PayoutChannel::MobileMoney.by_hand());
    }
}
