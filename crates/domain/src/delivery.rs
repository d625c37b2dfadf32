//! Delivery jobs for the courier pool, as data: a packed order becomes a job (pick up at the
//! seller, drop at the address or a pickup point); it is offered to carriers whose working area
//! and spare capacity fit; a carrier accepts it, picks it up, goes out for delivery, and either
//! delivers (with the buyer's one-time code, or by a pickup point's check-in) or records a failed
//! attempt with a reason, after which there is a second attempt or a redirect to the nearest
//! pickup point. No I/O: storage persists what [`job_step`] decides.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Offered to carriers that fit; nobody has taken it yet.
    Open,
    Accepted,
    PickedUp,
    OutForDelivery,
    /// The last attempt failed; the next move is a second attempt or a redirect.
    Failed,
    Delivered,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 7] = [
        JobState::Open,
        JobState::Accepted,
        JobState::PickedUp,
        JobState::OutForDelivery,
        JobState::Failed,
        JobState::Delivered,
        JobState::Cancelled,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Open => "open",
            JobState::Accepted => "accepted",
            JobState::PickedUp => "picked_up",
            JobState::OutForDelivery => "out_for_delivery",
            JobState::Failed => "failed",
            JobState::Delivered => "delivered",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        Self::ALL.into_iter().find(|j| j.as_str() == s)
    }
    pub fn is_final(&self) -> bool {
        matches!(self, JobState::Delivered | JobState::Cancelled)
    }
    /// A carrier holds the job (it counts against the carrier's capacity).
    pub fn is_held(&self) -> bool {
        matches!(
            self,
            JobState::Accepted | JobState::PickedUp | JobState::OutForDelivery | JobState::Failed
        )
    }
}

/// Why a delivery attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    NotHome,
    WrongAddress,
    Refused,
}

impl FailReason {
    pub const ALL: [FailReason; 3] = [
        FailReason::NotHome,
        FailReason::WrongAddress,
        FailReason::Refused,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            FailReason::NotHome => "not_home",
            FailReason::WrongAddress => "wrong_address",
            FailReason::Refused => "refused",
        }
    }
    pub fn parse(s: &str) -> Option<FailReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a carrier (or the system) does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobAction {
    Accept,
    PickUp,
    Depart,
    Fail,
    /// Try the same address again (only while attempts are left).
    Retry,
    /// Take the parcel to the nearest pickup point with room instead.
    Redirect,
    /// Delivered to the buyer (code) or checked in at the pickup point.
    Deliver,
    /// The order went away (cancelled) before delivery.
    Cancel,
}

impl JobAction {
    pub const ALL: [JobAction; 8] = [
        JobAction::Accept,
        JobAction::PickUp,
        JobAction::Depart,
        JobAction::Fail,
        JobAction::Retry,
        JobAction::Redirect,
        JobAction::Deliver,
        JobAction::Cancel,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            JobAction::Accept => "accept",
            JobAction::PickUp => "pick_up",
            JobAction::Depart => "depart",
            JobAction::Fail => "fail",
            JobAction::Retry => "retry",
            JobAction::Redirect => "redirect",
            JobAction::Deliver => "deliver",
            JobAction::Cancel => "cancel",
        }
    }
    pub fn parse(s: &str) -> Option<JobAction> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Delivery attempts at the buyer's address before the parcel must go to a pickup point.
pub const MAX_ATTEMPTS: i64 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error("a job that is {from:?} cannot take {action:?}")]
    NotAllowed { action: JobAction, from: JobState },
    #[error("no attempts left at this address")]
    NoAttemptsLeft,
    #[error("the job already goes to a pickup point")]
    AlreadyAtPoint,
}

impl JobError {
    pub fn msg(&self) -> crate::Msg {
        match self {
            JobError::NotAllowed { action, from } => crate::Msg::new("err-job-state")
                .arg("action", action.as_str())
                .arg("state", from.as_str()),
            JobError::NoAttemptsLeft => crate::Msg::new("err-job-no-attempts"),
            JobError::AlreadyAtPoint => crate::Msg::new("err-job-at-point"),
        }
    }
}

/// The job's facts a move depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    pub state: JobState,
    /// Failed attempts so far.
    pub attempts: i64,
    /// The drop is a pickup point (no door attempts: the point's check-in completes it).
    pub to_point: bool,
}

/// Decide a move: the job's next state, or why not.
pub fn job_step(job: Job, action: JobAction) -> Result<JobState, JobError> {
    use JobAction as A;
    use JobState as S;
    let to = match (job.state, action) {
        (S::Open, A::Accept) => S::Accepted,
        (S::Accepted, A::PickUp) => S::PickedUp,
        (S::PickedUp, A::Depart) => S::OutForDelivery,
        (S::OutForDelivery, A::Fail) if job.to_point => return Err(JobError::AlreadyAtPoint),
        (S::OutForDelivery, A::Fail) => S::Failed,
        (S::Failed, A::Retry) if job.attempts >= MAX_ATTEMPTS => {
            return Err(JobError::NoAttemptsLeft);
        }
        (S::Failed, A::Retry) => S::OutForDelivery,
        (S::Failed, A::Redirect) if job.to_point => return Err(JobError::AlreadyAtPoint),
        (S::Failed, A::Redirect) => S::OutForDelivery,
        (S::PickedUp | S::OutForDelivery | S::Failed, A::Deliver) => S::Delivered,
        (s, A::Cancel) if !s.is_final() => S::Cancelled,
        (from, action) => return Err(JobError::NotAllowed { action, from }),
    };
    Ok(to)
}

/// Actions a carrier holding the job can take now (for showing buttons). Delivery is not
/// listed: it goes through the buyer's code or the point's check-in.
pub fn carrier_actions(job: Job) -> Vec<JobAction> {
    [
        JobAction::PickUp,
        JobAction::Depart,
        JobAction::Fail,
        JobAction::Retry,
        JobAction::Redirect,
    ]
    .into_iter()
    .filter(|a| job_step(job, *a).is_ok())
    .collect()
}

/// A carrier's working area and vehicle, as far as offering jobs is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub base: (f64, f64),
    pub radius_m: f64,
}

impl Area {
    pub fn covers(&self, point: (f64, f64)) -> bool {
        tianguis_geo::haversine_m(self.base, point) <= self.radius_m
    }
}

/// Whether a job fits a carrier: both ends inside the working area and the parcels within the
/// vehicle's spare capacity (capacity less the parcels of jobs the carrier already holds).
pub fn fits(
    area: Area,
    capacity: i64,
    held: i64,
    pickup: (f64, f64),
    drop: (f64, f64),
    parcels: i64,
) -> bool {
    area.covers(pickup) && area.covers(drop) && held + parcels <= capacity
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(state: JobState) -> Job {
        Job {
            state,
            attempts: 0,
            to_point: false,
        }
    }

    #[test]
    fn door_delivery_path() {
        let mut j = job(JobState::Open);
        for a in [
            JobAction::Accept,
            JobAction::PickUp,
            JobAction::Depart,
            JobAction::Deliver,
        ] {
            j.state = job_step(j, a).unwrap();
        }
        assert_eq!(j.state, JobState::Delivered);
        assert!(job_step(j, JobAction::Cancel).is_err());
    }

    #[test]
    fn failed_attempts_then_redirect() {
        let mut j = job(JobState::OutForDelivery);
        j.state = job_step(j, JobAction::Fail).unwrap();
        j.attempts = 1;
        assert_eq!(
            carrier_actions(j),
            vec![JobAction::Retry, JobAction::Redirect]
        );
        j.state = job_step(j, JobAction::Retry).unwrap();
        j.state = job_step(j, JobAction::Fail).unwrap();
        j.attempts = 2;
        assert_eq!(job_step(j, JobAction::Retry), Err(JobError::NoAttemptsLeft));
        assert_eq!(carrier_actions(j), vec![JobAction::Redirect]);
        j.state = job_step(j, JobAction::Redirect).unwrap();
        j.to_point = true;
        assert_eq!(j.state, JobState::OutForDelivery);
        // At the point there is no door to knock on: only the check-in completes it.
        assert_eq!(job_step(j, JobAction::Fail), Err(JobError::AlreadyAtPoint));
        assert_eq!(job_step(j, JobAction::Deliver), Ok(JobState::Delivered));
    }

    #[test]
    fn every_state_and_action_is_decided_without_panic() {
        for s in JobState::ALL {
            for a in JobAction::ALL {
                for attempts in 0..=3 {
                    for to_point in [false, true] {
                        let r = job_step(
                            Job {
                                state: s,
                                attempts,
                                to_point,
                            },
                            a,
                        );
                        if s.is_final() {
                            assert!(r.is_err(), "{s:?} {a:?}");
                        }
                        if let Err(e) = r {
                            assert!(e.msg().key.starts_with("err-job"));
                        }
                    }
                }
            }
            assert_eq!(JobState::parse(s.as_str()), Some(s));
        }
        for a in JobAction::ALL {
            assert_eq!(JobAction::parse(a.as_str()), Some(a));
        }
        // Only an open job can be accepted: two carriers cannot both hold one.
        for s in JobState::ALL {
            assert_eq!(
                job_step(job(s), JobAction::Accept).is_ok(),
                s == JobState::Open
            );
        }
    }

    #[test]
    fn offers_follow_area_and_spare_capacity() {
        let area = Area {
            base: (23.8103, 90.4125),
            radius_m: 10_000.0,
        };
        let near = (23.85, 90.41);
        let far = (24.5, 90.4);
        assert!(fits(area, 10, 6, near, near, 4));
        assert!(!fits(area, 10, 7, near, near, 4), "over capacity");
        assert!(!fits(area, 10, 0, near, far, 1), "drop outside the area");
        assert!(!fits(area, 10, 0, far, near, 1), "pickup outside the area");
    }
}

/// The first time range in an opening-hours text ("Lun-Sáb 8:00-20:00" -> 08:00-20:00), in
/// minutes since midnight. Hours are free text people write; anything unreadable is `None`
/// (no window).
pub fn opening_window(hours: &str) -> Option<(i64, i64)> {
    fn time(s: &str) -> Option<i64> {
        let (h, m) = s.split_once(':')?;
        let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
        ((0..=24).contains(&h) && (0..60).contains(&m) && h * 60 + m <= 1440).then_some(h * 60 + m)
    }
    let chars: Vec<char> = hours.chars().collect();
    for start in 0..chars.len() {
        if !chars[start].is_ascii_digit() || (start > 0 && chars[start - 1].is_ascii_digit()) {
            continue;
        }
        let rest: String = chars[start..].iter().collect();
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ':' || *c == '-' || *c == ' ')
            .collect();
        if let Some((a, b)) = token.trim().split_once('-')
            && let (Some(a), Some(b)) = (time(a.trim()), time(b.trim()))
            && a < b
        {
            return Some((a, b));
        }
    }
    None
}

#[cfg(test)]
mod hours_tests {
    use super::opening_window;

    #[test]
    fn reads_the_first_range() {
        assert_eq!(opening_window("Lun-Sáb 8:00-20:00"), Some((480, 1200)));
        assert_eq!(
            opening_window("Mon-Fri 09:30 - 17:15, Sat 9:00-12:00"),
            Some((570, 1035))
        );
        assert_eq!(opening_window("always open"), None);
        assert_eq!(opening_window("20:00-8:00"), None);
        assert_eq!(opening_window("99:00-100:00"), None);
        assert_eq!(opening_window(""), None);
    }
}
