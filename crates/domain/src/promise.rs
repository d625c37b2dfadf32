//! The delivery promise (Ek-Shop: delivered within four days). Each order gets a due time at
//! checkout from its place's policy; this module says where an order stands against it.

use crate::process::OrderState;

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promise {
    /// Still on its way and not close to the deadline.
    OnTrack,
    /// Not yet shipped and the deadline is within the risk window.
    AtRisk,
    /// Past the deadline and not delivered.
    Late,
    /// Delivered by the deadline.
    Kept,
    /// Delivered after the deadline.
    Broken,
    /// Cancelled or never owed (no due date).
    NotOwed,
}

impl Promise {
    pub fn as_str(&self) -> &'static str {
        match self {
            Promise::OnTrack => "on_track",
            Promise::AtRisk => "at_risk",
            Promise::Late => "late",
            Promise::Kept => "kept",
            Promise::Broken => "broken",
            Promise::NotOwed => "not_owed",
        }
    }
}

/// The due time of an order placed at `placed_at` under a policy of `days`.
pub fn due_at(placed_at: i64, days: i64) -> i64 {
    placed_at + days.max(1) * DAY_MS
}

/// Where an order stands. `delivered_at` is when it reached `delivered` (if it did).
pub fn status(
    state: OrderState,
    now: i64,
    due: Option<i64>,
    delivered_at: Option<i64>,
    risk_window_ms: i64,
) -> Promise {
    let Some(due) = due else {
        return Promise::NotOwed;
    };
    if let Some(d) = delivered_at {
        return if d <= due {
            Promise::Kept
        } else {
            Promise::Broken
        };
    }
    match state {
        OrderState::Cancelled | OrderState::Refunded => Promise::NotOwed,
        // Handled by delivered_at; without it (data from before the promise) count as kept.
        OrderState::Delivered
        | OrderState::Completed
        | OrderState::ReturnRequested
        | OrderState::Returned
        | OrderState::Disputed
        | OrderState::Resolved => Promise::Kept,
        OrderState::Placed
        | OrderState::Paid
        | OrderState::Accepted
        | OrderState::Packed
        | OrderState::Shipped => {
            if now > due {
                Promise::Late
            } else if state != OrderState::Shipped && due - now <= risk_window_ms {
                Promise::AtRisk
            } else {
                Promise::OnTrack
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OrderState as S;

    #[test]
    fn four_days_from_checkout() {
        let due = due_at(0, 4);
        assert_eq!(due, 4 * DAY_MS);
        let risk = DAY_MS;
        assert_eq!(
            status(S::Paid, DAY_MS, Some(due), None, risk),
            Promise::OnTrack
        );
        assert_eq!(
            status(S::Packed, 3 * DAY_MS + 1, Some(due), None, risk),
            Promise::AtRisk
        );
        assert_eq!(
            status(S::Shipped, 3 * DAY_MS + 1, Some(due), None, risk),
            Promise::OnTrack,
            "on its way"
        );
        assert_eq!(
            status(S::Shipped, due + 1, Some(due), None, risk),
            Promise::Late
        );
        assert_eq!(
            status(S::Delivered, due + 5, Some(due), Some(due), risk),
            Promise::Kept
        );
        assert_eq!(
            status(S::Completed, due + 5, Some(due), Some(due + 1), risk),
            Promise::Broken
        );
        assert_eq!(
            status(S::Cancelled, due + 5, Some(due), None, risk),
            Promise::NotOwed
        );
        assert_eq!(status(S::Paid, 0, None, None, risk), Promise::NotOwed);
        assert_eq!(due_at(0, 0), DAY_MS, "at least a day");
    }
}
