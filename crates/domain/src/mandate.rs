//! Mandates: what an agent may do for a seller they onboarded, with the seller's consent on
//! record. A mandate has a scope (listings, orders); consent is a one-time code sent to the
//! seller's phone and read back to the agent, or a signed paper form's reference. The seller can
//! claim the account and revoke the mandate. One-time codes expire and lock after a few tries.
//! Paper consent opens new accounts only, with the signed form photographed; an orders mandate
//! covers moving orders along, not refunds.
//! No I/O.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scope {
    /// Create and edit the seller's listings.
    pub listings: bool,
    /// Accept, pack and ship the seller's orders.
    pub orders: bool,
}

impl Scope {
    pub fn as_str(&self) -> String {
        let mut v = Vec::new();
        if self.listings {
            v.push("listings");
        }
        if self.orders {
            v.push("orders");
        }
        v.join(",")
    }
    pub fn parse(s: &str) -> Scope {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        Scope {
            listings: parts.contains(&"listings"),
            orders: parts.contains(&"orders"),
        }
    }
    pub fn is_empty(&self) -> bool {
        !self.listings && !self.orders
    }
}

/// How the seller consented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consent {
    /// The code the seller received by text and read out.
    Code(String),
    /// The reference of a signed paper form kept at the centre.
    Paper(String),
}

/// Why a consent cannot be taken as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentRefusal {
    /// A paper form cannot hand over an account that already exists: its owner must read back
    /// a code texted to the account's phone.
    PaperForExistingAccount,
    /// A paper consent is taken only with the signed form photographed.
    PaperWithoutPhoto,
    /// The paper form's reference is missing or too long.
    PaperReference,
}

impl ConsentRefusal {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new(match self {
            ConsentRefusal::PaperForExistingAccount => "err-mandate-paper-existing",
            ConsentRefusal::PaperWithoutPhoto => "err-mandate-paper-photo",
            ConsentRefusal::PaperReference => "err-mandate-paper",
        })
    }
}

/// Whether a paper consent may stand: only to open a new account, only with the signed form
/// photographed, and with the form's reference.
pub fn paper_consent(
    reference: &str,
    account_exists: bool,
    form_photographed: bool,
) -> Result<(), ConsentRefusal> {
    let r = reference.trim();
    if r.is_empty() || r.chars().count() > 80 {
        return Err(ConsentRefusal::PaperReference);
    }
    if account_exists {
        return Err(ConsentRefusal::PaperForExistingAccount);
    }
    if !form_photographed {
        return Err(ConsentRefusal::PaperWithoutPhoto);
    }
    Ok(())
}

/// The order transitions an orders mandate lets an agent take for the seller: moving the
/// order along (accept, pack, ship). Cancelling with a refund, returns and disputes stay the
/// seller's own.
pub fn covers(scope: &Scope, t: crate::process::Transition) -> bool {
    use crate::process::Transition::*;
    scope.orders && matches!(t, Accept | AcceptOnDelivery | Pack | Ship)
}

/// Minutes a one-time code stays valid, and wrong tries before it locks.
pub const CODE_MINUTES: i64 = 15;
pub const CODE_TRIES: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("no code was sent, or it expired")]
    Expired,
    #[error("too many wrong tries")]
    Locked,
    #[error("wrong code")]
    Wrong { left: i64 },
}

impl CodeError {
    pub fn msg(&self) -> crate::Msg {
        match self {
            CodeError::Expired => crate::Msg::new("err-otp-expired"),
            CodeError::Locked => crate::Msg::new("err-otp-locked"),
            CodeError::Wrong { left } => crate::Msg::new("err-otp-wrong").arg("left", left),
        }
    }
}

/// A sent code's facts, for checking what someone typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentCode {
    pub expires_at: i64,
    pub failures: i64,
    pub used: bool,
}

/// Whether a code may still be tried now; `matches` is whether what was typed equals it.
pub fn check_code(sent: Option<SentCode>, matches: bool, now: i64) -> Result<(), CodeError> {
    let Some(s) = sent.filter(|s| !s.used && s.expires_at > now) else {
        return Err(CodeError::Expired);
    };
    if s.failures >= CODE_TRIES {
        return Err(CodeError::Locked);
    }
    if !matches {
        return Err(CodeError::Wrong {
            left: CODE_TRIES - s.failures - 1,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip() {
        for s in [
            Scope {
                listings: true,
                orders: true,
            },
            Scope {
                listings: true,
                orders: false,
            },
            Scope {
                listings: false,
                orders: true,
            },
            Scope::default(),
        ] {
            assert_eq!(Scope::parse(&s.as_str()), s);
        }
        assert!(Scope::parse("nonsense").is_empty());
    }

    #[test]
    fn paper_opens_new_accounts_only_with_the_form_photographed() {
        assert_eq!(paper_consent("FORM-1", false, true), Ok(()));
        assert_eq!(
            paper_consent("FORM-1", true, true),
            Err(ConsentRefusal::PaperForExistingAccount)
        );
        assert_eq!(
            paper_consent("FORM-1", false, false),
            Err(ConsentRefusal::PaperWithoutPhoto)
        );
        assert_eq!(
            paper_consent("  ", false, true),
            Err(ConsentRefusal::PaperReference)
        );
    }

    #[test]
    fn an_orders_mandate_moves_orders_along_and_nothing_more() {
        use crate::process::Transition::*;
        let orders = Scope {
            listings: false,
            orders: true,
        };
        for t in [Accept, AcceptOnDelivery, Pack, Ship] {
            assert!(covers(&orders, t), "{t:?}");
            assert!(!covers(&Scope::default(), t));
        }
        for t in [
            Cancel,
            Resolve,
            Dispute,
            MarkReturned,
            ConfirmReceipt,
            RequestReturn,
        ] {
            assert!(!covers(&orders, t), "{t:?}");
        }
    }

    #[test]
    fn codes_expire_lock_and_count_down() {
        let s = SentCode {
            expires_at: 100,
            failures: 0,
            used: false,
        };
        assert_eq!(check_code(Some(s), true, 50), Ok(()));
        assert_eq!(check_code(Some(s), true, 100), Err(CodeError::Expired));
        assert_eq!(check_code(None, true, 0), Err(CodeError::Expired));
        assert_eq!(
            check_code(Some(SentCode { used: true, ..s }), true, 0),
            Err(CodeError::Expired)
        );
        assert_eq!(
            check_code(Some(s), false, 0),
            Err(CodeError::Wrong { left: 4 })
        );
        let locked = SentCode {
            failures: CODE_TRIES,
            ..s
        };
        assert_eq!(
            check_code(Some(locked), true, 0),
            Err(CodeError::Locked),
            "even the right code"
        );
    }
}
