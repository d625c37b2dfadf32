//! Who may do what: the one home of authorization. Every channel (pages, the API, and later a
//! USSD menu or an open-network endpoint) asks these functions, and the use cases ask them
//! inside the transaction that acts, on rows read in it. No I/O: a [`Person`] and the facts of
//! what they touch come in, a decision goes out.
//!
//! People hold **grants**: a role with an optional scope (a place, a pickup point or digital
//! centre, a programme). Being a buyer needs no grant; being a seller is owning a shop. One
//! person may hold several grants (a seller who is also an agent at a centre, an official of
//! one district).

use crate::Msg;
use crate::delivery::{JobAction, JobState};
use crate::ids::{CarrierId, PlaceId, PointId, SellerId, UserId};
use crate::mandate::Scope as MandateScope;
use crate::process::{Actor, Transition};

/// A role a grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Everyone may buy; kept for accounts whose only role it is.
    Buyer,
    /// Owns a shop (the shop itself is the scope).
    Seller,
    /// Runs a pickup point: checks parcels in and hands them over.
    Operator,
    /// Rides for the courier pool.
    Courier,
    /// Works at a digital centre (scope: the centre): orders and lists for people, takes cash.
    Agent,
    /// A digital champion bringing assigned businesses online (scope: a programme, or all).
    Champion,
    /// A government official who reads a place's pages (scope: the place).
    Official,
    /// Runs the marketplace.
    Admin,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Buyer,
        Role::Seller,
        Role::Operator,
        Role::Courier,
        Role::Agent,
        Role::Champion,
        Role::Official,
        Role::Admin,
    ];
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Buyer => "buyer",
            Role::Seller => "seller",
            Role::Operator => "operator",
            Role::Courier => "courier",
            Role::Agent => "agent",
            Role::Champion => "champion",
            Role::Official => "official",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s.trim())
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GrantScope {
    Everywhere,
    /// A place (district, city, town, village) and everything in it.
    Place(PlaceId),
    /// A pickup point or digital centre.
    Point(PointId),
    /// A programme (a grant scheme, a champions cohort).
    Programme(i64),
}

impl GrantScope {
    pub fn kind(&self) -> &'static str {
        match self {
            GrantScope::Everywhere => "everywhere",
            GrantScope::Place(_) => "place",
            GrantScope::Point(_) => "point",
            GrantScope::Programme(_) => "programme",
        }
    }
    pub fn id(&self) -> Option<i64> {
        match *self {
            GrantScope::Everywhere => None,
            GrantScope::Place(PlaceId(i))
            | GrantScope::Point(PointId(i))
            | GrantScope::Programme(i) => Some(i),
        }
    }
    pub fn from_parts(kind: &str, id: Option<i64>) -> Option<GrantScope> {
        match (kind, id) {
            ("everywhere", _) => Some(GrantScope::Everywhere),
            ("place", Some(i)) => Some(GrantScope::Place(PlaceId(i))),
            ("point", Some(i)) => Some(GrantScope::Point(PointId(i))),
            ("programme", Some(i)) => Some(GrantScope::Programme(i)),
            _ => None,
        }
    }
}

/// A role, where it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub role: Role,
    pub scope: GrantScope,
}

impl Grant {
    /// A grant that makes sense: agents and operators work at a point, officials read a place,
    /// admins run everything, champions work everywhere or in a programme. Buyer and seller are
    /// not granted (everyone buys; a seller owns a shop).
    pub fn new(role: Role, scope: GrantScope) -> Result<Grant, Denied> {
        let ok = match role {
            Role::Buyer | Role::Seller => false,
            Role::Agent | Role::Operator => matches!(scope, GrantScope::Point(_)),
            Role::Official => matches!(scope, GrantScope::Place(_)),
            Role::Admin | Role::Courier => scope == GrantScope::Everywhere,
            Role::Champion => {
                matches!(scope, GrantScope::Everywhere | GrantScope::Programme(_))
            }
        };
        if ok {
            Ok(Grant { role, scope })
        } else {
            Err(Denied::Invalid("err-grant-scope"))
        }
    }
}

/// The person asking, as the policy needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: UserId,
    pub active: bool,
    /// Their shop, when they sell.
    pub seller_id: Option<SellerId>,
    pub grants: Vec<Grant>,
}

impl Person {
    pub fn has(&self, role: Role) -> bool {
        self.active && self.grants.iter().any(|g| g.role == role)
    }
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }
    /// The points (digital centres) where this person works as an agent.
    pub fn agent_points(&self) -> impl Iterator<Item = PointId> + '_ {
        self.grants
            .iter()
            .filter(|g| self.active && g.role == Role::Agent)
            .filter_map(|g| match g.scope {
                GrantScope::Point(p) => Some(p),
                _ => None,
            })
    }
    pub fn agent_at(&self, point: Option<PointId>) -> bool {
        point.is_some_and(|p| self.agent_points().any(|a| a == p))
    }
    /// Whether this person runs the pickup point (an operator's grant there).
    pub fn operator_at(&self, point: Option<PointId>) -> bool {
        point.is_some_and(|p| {
            self.active
                && self
                    .grants
                    .iter()
                    .any(|g| g.role == Role::Operator && g.scope == GrantScope::Point(p))
        })
    }
    /// Whether this person hands parcels over at the point: its operator, or an agent there.
    pub fn serves_at(&self, point: Option<PointId>) -> bool {
        self.operator_at(point) || self.agent_at(point)
    }
    /// The one centre an agent works at (the first, if several).
    pub fn centre(&self) -> Option<PointId> {
        self.agent_points().next()
    }
    /// Places this person reads as an official (admins read everything).
    pub fn official_places(&self) -> impl Iterator<Item = PlaceId> + '_ {
        self.grants
            .iter()
            .filter(|g| self.active && g.role == Role::Official)
            .filter_map(|g| match g.scope {
                GrantScope::Place(p) => Some(p),
                _ => None,
            })
    }
    pub fn sells(&self) -> bool {
        self.active && self.seller_id.is_some()
    }
}

/// Why not. `SignIn`: nobody is signed in; `Forbidden`: the person may see the thing but not do
/// this (a message key); `Hidden`: the thing is not theirs to know about (404, naming what);
/// `Invalid`: the request itself makes no sense (a message key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    SignIn,
    Forbidden(&'static str),
    Hidden(&'static str),
    Invalid(&'static str),
}

impl Denied {
    pub fn msg(&self) -> Msg {
        match self {
            Denied::SignIn => Msg::new("error-login-needed"),
            Denied::Forbidden(k) | Denied::Invalid(k) => Msg::new(k),
            Denied::Hidden(what) => Msg::new("err-not-found").arg("what", what),
        }
    }
}

/// Things only some people may do, with no resource beyond the marketplace itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Duty {
    /// Fees, timers, currency, the marketplace's settings.
    ManageSettings,
    /// Places, categories, pickup points and centres, the address registry.
    ManageDirectory,
    /// Suspend people, grant and revoke roles.
    ManagePeople,
    /// Cash recorded at the counter for a payment; reconciliation; payouts.
    ManageMoney,
    /// Agents' commission rules, attaching agents to centres.
    ManageAssistedCommerce,
    /// Digital champions: assignments and bounties.
    ManageChampions,
    /// The officials' pages: deliveries, disputes, cash, promise watch.
    ReadOfficialPages,
    /// Prometheus metrics, what the local simulators received.
    ReadOperations,
    /// Order for a walk-in buyer at the centre, onboard sellers under a mandate.
    ServeAtCentre,
    /// Run a pickup point's counter (check parcels in, hand them over).
    ServeCounter,
    /// The champion's own page.
    Champion,
}

/// Whether `p` may do `duty`.
pub fn may(p: &Person, duty: Duty) -> Result<(), Denied> {
    if !p.active {
        return Err(Denied::SignIn);
    }
    let ok = match duty {
        Duty::ManageSettings
        | Duty::ManageDirectory
        | Duty::ManagePeople
        | Duty::ManageMoney
        | Duty::ManageAssistedCommerce
        | Duty::ManageChampions
        | Duty::ReadOperations => p.is_admin(),
        Duty::ReadOfficialPages => p.is_admin() || p.has(Role::Official),
        Duty::ServeAtCentre => p.centre().is_some(),
        Duty::ServeCounter => p.is_admin() || p.has(Role::Operator) || p.centre().is_some(),
        Duty::Champion => p.has(Role::Champion),
    };
    if ok {
        Ok(())
    } else {
        Err(Denied::Forbidden(match duty {
            Duty::ServeAtCentre => "err-not-an-agent",
            Duty::Champion => "err-not-a-champion",
            _ => "error-forbidden",
        }))
    }
}

/// What the policy needs to know about an order, read in the transaction that acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFacts {
    pub buyer_id: UserId,
    pub seller_id: SellerId,
    /// The digital centre it was placed at (by an agent), if any.
    pub placed_at: Option<PointId>,
    /// The pickup point it goes to, if any (who runs it is a matter of grants).
    pub pickup_point: Option<PointId>,
    /// The user riding for the carrier holding its delivery job.
    pub courier: Option<UserId>,
}

/// Every role `p` plays for an order.
pub fn order_roles(p: &Person, o: &OrderFacts) -> Vec<Actor> {
    let mut v = Vec::new();
    if !p.active {
        return v;
    }
    if p.is_admin() {
        v.push(Actor::Admin);
    }
    if p.seller_id == Some(o.seller_id) {
        v.push(Actor::Seller);
    }
    if p.id == o.buyer_id {
        v.push(Actor::Buyer);
    }
    if p.serves_at(o.pickup_point) {
        v.push(Actor::Collector);
    }
    if o.courier == Some(p.id) {
        v.push(Actor::Courier);
    }
    v
}

/// Whether `p` may see an order at all. Agents see their centre's orders: placed there or
/// addressed to it.
pub fn may_view_order(p: &Person, o: &OrderFacts) -> bool {
    !order_roles(p, o).is_empty() || (p.active && p.agent_at(o.placed_at))
}

/// How a person comes to act for the seller: an agent holding an active mandate of this scope.
pub type Mandate = Option<MandateScope>;

/// The role in which `p` takes transition `t` on an order, given the transition's allowed
/// actors, or why not. An agent with an active orders mandate acts as the seller for the moves
/// the mandate covers (accept, pack, ship), never for refunds. Transitions that need the
/// buyer's code, and paying, go their own ways.
pub fn order_actor(
    p: &Person,
    o: &OrderFacts,
    t: Transition,
    mandate: Mandate,
) -> Result<Actor, Denied> {
    let allowed = t.def().actors;
    let own = order_roles(p, o);
    let as_seller = mandate.is_some_and(|m| crate::mandate::covers(&m, t));
    // An orders mandate shows the agent the seller's orders; it covers fewer moves.
    let sees = may_view_order(p, o) || mandate.is_some_and(|m| m.orders);
    if !sees {
        return Err(Denied::Hidden("order"));
    }
    let actor = own
        .iter()
        .copied()
        .find(|a| allowed.contains(a))
        .or_else(|| (as_seller && allowed.contains(&Actor::Seller)).then_some(Actor::Seller));
    let Some(actor) = actor else {
        return Err(Denied::Forbidden(
            if mandate.is_some_and(|m| m.orders) && !as_seller {
                "err-mandate-action"
            } else {
                "err-not-your-move"
            },
        ));
    };
    if t.def().needs_code {
        return Err(Denied::Forbidden("err-code-needed"));
    }
    if matches!(t, Transition::Pay) {
        return Err(Denied::Forbidden("err-pay-via-payment"));
    }
    Ok(actor)
}

/// The role in which `p` records a delivery with the buyer's code (`t` is the code-proven
/// transition for the order's payment method).
pub fn delivery_actor(p: &Person, o: &OrderFacts, t: Transition) -> Result<Actor, Denied> {
    if !may_view_order(p, o) {
        return Err(Denied::Hidden("order"));
    }
    order_roles(p, o)
        .into_iter()
        .find(|a| t.def().actors.contains(a))
        .ok_or(Denied::Forbidden("err-not-your-move"))
}

/// What the policy needs to know about a delivery job, read in the transaction that moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobFacts {
    pub state: JobState,
    /// The carrier holding it, if any.
    pub carrier_id: Option<CarrierId>,
}

/// Whether `p`, riding for carrier `mine` (active, if any), may move a job: accepting is for
/// any active carrier while the job is open; every other move only for the carrier holding it
/// (or an admin). Delivery goes through the buyer's code, never through here.
pub fn job_move(
    p: &Person,
    mine: Option<CarrierId>,
    j: &JobFacts,
    action: JobAction,
) -> Result<(), Denied> {
    let holder = mine.is_some() && mine == j.carrier_id;
    let visible = holder || p.is_admin() || (j.state == JobState::Open && mine.is_some());
    if !p.active || !visible {
        return Err(Denied::Hidden("delivery job"));
    }
    match action {
        JobAction::Accept if mine.is_none() => Err(Denied::Forbidden("err-not-a-carrier")),
        JobAction::Accept => Ok(()),
        JobAction::Deliver | JobAction::Cancel => {
            Err(Denied::Forbidden("err-job-deliver-with-code"))
        }
        _ if holder => Ok(()),
        // Another carrier's job (it was open when they looked): not theirs to move.
        _ => Err(Denied::Forbidden("err-job-changed")),
    }
}

/// Whether `p` may record the door delivery of a job (with the buyer's code).
pub fn job_deliver(p: &Person, mine: Option<CarrierId>, j: &JobFacts) -> Result<(), Denied> {
    if p.active && ((mine.is_some() && mine == j.carrier_id) || p.is_admin()) {
        Ok(())
    } else {
        Err(Denied::Hidden("delivery job"))
    }
}

/// Whether `p` may read a carrier's route plan.
pub fn route_plan(p: &Person, carrier_user: UserId) -> Result<(), Denied> {
    if p.active && (p.id == carrier_user || p.is_admin()) {
        Ok(())
    } else {
        Err(Denied::Hidden("route plan"))
    }
}

/// Whether `p` may check a parcel in at, or hand it over from, the order's pickup point.
pub fn serve_parcel(p: &Person, o: &OrderFacts) -> Result<(), Denied> {
    if o.pickup_point.is_none() {
        return Err(Denied::Hidden("order"));
    }
    if p.active && (p.is_admin() || p.serves_at(o.pickup_point)) {
        Ok(())
    } else {
        Err(Denied::Hidden("order"))
    }
}

/// Whose commission statement `p` may read: an agent their own; an admin anyone's.
pub fn commission_statement(p: &Person, asked: Option<UserId>) -> Result<UserId, Denied> {
    match asked {
        Some(a) if p.is_admin() => Ok(a),
        _ if p.has(Role::Agent) => Ok(p.id),
        _ => Err(Denied::Forbidden("err-not-an-agent")),
    }
}

/// Whether `p` may see a mandate's photographed consent form: the agent who took it, the
/// seller, admins.
pub fn consent_form(p: &Person, agent_id: UserId, seller_id: SellerId) -> Result<(), Denied> {
    if p.active && (p.is_admin() || p.id == agent_id || p.seller_id == Some(seller_id)) {
        Ok(())
    } else {
        Err(Denied::Hidden("photo"))
    }
}

/// Whether `p` may revoke a mandate: the seller it is for, or an admin.
pub fn revoke_mandate(p: &Person, seller_id: SellerId) -> Result<(), Denied> {
    if p.active && (p.is_admin() || p.seller_id == Some(seller_id)) {
        Ok(())
    } else {
        Err(Denied::Forbidden("err-not-your-move"))
    }
}

/// Whether an admin may change another person's access: nobody suspends themselves or takes
/// their own admin grant away.
pub fn change_access(
    admin: &Person,
    target: UserId,
    removes_own_admin: bool,
) -> Result<(), Denied> {
    may(admin, Duty::ManagePeople)?;
    if admin.id == target && removes_own_admin {
        return Err(Denied::Invalid("err-self-demote"));
    }
    Ok(())
}

/// Who may choose again how an order is paid once its payment failed: the buyer, the agent
/// at the centre where it was placed (a walk-in buyer has no account to do it with), an admin.
pub fn pay_again(p: &Person, o: &OrderFacts) -> Result<(), Denied> {
    if !may_view_order(p, o) {
        return Err(Denied::Hidden("order"));
    }
    if p.id == o.buyer_id || p.is_admin() || p.agent_at(o.placed_at) {
        Ok(())
    } else {
        Err(Denied::Forbidden("err-not-your-move"))
    }
}

/// Whether `approver` may approve a payout batch `prepared_by` prepared: an official who
/// manages money, and (four eyes) not the one who prepared it, unless the marketplace relaxed
/// the rule for a one-person office.
pub fn approve_payouts(
    approver: &Person,
    prepared_by: UserId,
    four_eyes: bool,
) -> Result<(), Denied> {
    may(approver, Duty::ManageMoney)?;
    if four_eyes && approver.id == prepared_by {
        return Err(Denied::Forbidden("err-payout-four-eyes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::TRANSITIONS;

    #[test]
    fn a_payout_batch_needs_a_second_official() {
        let a = person(1, &[(Role::Admin, GrantScope::Everywhere)]);
        let b = person(2, &[(Role::Admin, GrantScope::Everywhere)]);
        let seller = person(3, &[]);
        assert_eq!(
            approve_payouts(&a, UserId(1), true),
            Err(Denied::Forbidden("err-payout-four-eyes"))
        );
        assert_eq!(approve_payouts(&b, UserId(1), true), Ok(()));
        assert_eq!(approve_payouts(&a, UserId(1), false), Ok(()), "relaxed");
        assert!(approve_payouts(&seller, UserId(1), false).is_err());
    }

    fn person(id: i64, grants: &[(Role, GrantScope)]) -> Person {
        Person {
            id: UserId(id),
            active: true,
            seller_id: None,
            grants: grants
                .iter()
                .map(|&(role, scope)| Grant { role, scope })
                .collect(),
        }
    }
    const ORDER: OrderFacts = OrderFacts {
        buyer_id: UserId(1),
        seller_id: SellerId(20),
        placed_at: Some(PointId(7)),
        pickup_point: Some(PointId(8)),
        courier: Some(UserId(4)),
    };

    #[test]
    fn grants_make_sense_or_are_refused() {
        assert!(Grant::new(Role::Agent, GrantScope::Point(PointId(7))).is_ok());
        assert!(Grant::new(Role::Agent, GrantScope::Everywhere).is_err());
        assert!(Grant::new(Role::Official, GrantScope::Place(PlaceId(1))).is_ok());
        assert!(Grant::new(Role::Official, GrantScope::Everywhere).is_err());
        assert!(Grant::new(Role::Admin, GrantScope::Place(PlaceId(1))).is_err());
        assert!(Grant::new(Role::Seller, GrantScope::Everywhere).is_err());
        assert!(Grant::new(Role::Champion, GrantScope::Programme(2)).is_ok());
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        for s in [
            GrantScope::Everywhere,
            GrantScope::Place(PlaceId(1)),
            GrantScope::Point(PointId(2)),
            GrantScope::Programme(3),
        ] {
            assert_eq!(GrantScope::from_parts(s.kind(), s.id()), Some(s));
        }
    }

    #[test]
    fn one_person_holds_several_roles() {
        // A seller who is also an agent at centre 7.
        let mut p = person(5, &[(Role::Agent, GrantScope::Point(PointId(7)))]);
        p.seller_id = Some(SellerId(20));
        assert!(p.sells() && p.agent_at(Some(PointId(7))) && !p.agent_at(Some(PointId(8))));
        assert_eq!(
            order_roles(&p, &ORDER),
            vec![Actor::Seller],
            "not a collector at another point"
        );
        assert!(may(&p, Duty::ServeAtCentre).is_ok());
        assert!(may(&p, Duty::ManageSettings).is_err());
    }

    #[test]
    fn suspended_people_do_nothing() {
        let mut admin = person(9, &[(Role::Admin, GrantScope::Everywhere)]);
        admin.active = false;
        assert_eq!(may(&admin, Duty::ManageSettings), Err(Denied::SignIn));
        assert!(order_roles(&admin, &ORDER).is_empty());
        assert!(!may_view_order(&admin, &ORDER));
    }

    #[test]
    fn order_visibility_and_moves() {
        let buyer = person(1, &[]);
        let stranger = person(2, &[]);
        let operator = person(3, &[(Role::Operator, GrantScope::Point(PointId(8)))]);
        let courier = person(4, &[(Role::Courier, GrantScope::Everywhere)]);
        let centre_agent = person(6, &[(Role::Agent, GrantScope::Point(PointId(7)))]);
        let other_agent = person(66, &[(Role::Agent, GrantScope::Point(PointId(99)))]);
        let mut seller = person(10, &[]);
        seller.seller_id = Some(SellerId(20));
        assert!(may_view_order(&buyer, &ORDER));
        assert!(!may_view_order(&stranger, &ORDER));
        assert!(
            may_view_order(&centre_agent, &ORDER),
            "placed at their centre"
        );
        assert!(!may_view_order(&other_agent, &ORDER));
        assert_eq!(order_roles(&operator, &ORDER), vec![Actor::Collector]);
        let elsewhere = person(3, &[(Role::Operator, GrantScope::Point(PointId(9)))]);
        assert!(
            order_roles(&elsewhere, &ORDER).is_empty(),
            "an operator's grant is for one point"
        );
        assert!(serve_parcel(&elsewhere, &ORDER).is_err());
        assert!(serve_parcel(&operator, &ORDER).is_ok());
        assert_eq!(order_roles(&courier, &ORDER), vec![Actor::Courier]);
        assert_eq!(
            order_actor(&stranger, &ORDER, Transition::Accept, None),
            Err(Denied::Hidden("order"))
        );
        assert_eq!(
            order_actor(&seller, &ORDER, Transition::Accept, None),
            Ok(Actor::Seller)
        );
        assert_eq!(
            order_actor(&buyer, &ORDER, Transition::Accept, None),
            Err(Denied::Forbidden("err-not-your-move"))
        );
        assert_eq!(
            order_actor(&seller, &ORDER, Transition::Pay, None),
            Err(Denied::Forbidden("err-not-your-move")),
            "nobody pays by a move"
        );
        assert_eq!(
            order_actor(&courier, &ORDER, Transition::DeliverWithCode, None),
            Err(Denied::Forbidden("err-code-needed"))
        );
        assert_eq!(
            delivery_actor(&courier, &ORDER, Transition::DeliverWithCode),
            Ok(Actor::Courier)
        );
        assert!(delivery_actor(&stranger, &ORDER, Transition::DeliverWithCode).is_err());
    }

    #[test]
    fn a_mandate_moves_orders_along_and_never_refunds() {
        let agent = person(66, &[(Role::Agent, GrantScope::Point(PointId(99)))]);
        let orders = Some(MandateScope {
            listings: false,
            orders: true,
        });
        for t in [Transition::Accept, Transition::Pack, Transition::Ship] {
            assert_eq!(
                order_actor(&agent, &ORDER, t, orders),
                Ok(Actor::Seller),
                "{t:?}"
            );
        }
        assert_eq!(
            order_actor(&agent, &ORDER, Transition::Cancel, orders),
            Err(Denied::Forbidden("err-mandate-action")),
            "a refund is not covered"
        );
        let listings_only = Some(MandateScope {
            listings: true,
            orders: false,
        });
        assert_eq!(
            order_actor(&agent, &ORDER, Transition::Accept, listings_only),
            Err(Denied::Hidden("order"))
        );
        // The agent of the centre where it was placed sees it; the mandate still covers only
        // the seller's moves.
        let centre_agent = person(6, &[(Role::Agent, GrantScope::Point(PointId(7)))]);
        assert_eq!(
            order_actor(&centre_agent, &ORDER, Transition::Cancel, orders),
            Err(Denied::Forbidden("err-mandate-action"))
        );
    }

    #[test]
    fn every_transition_has_someone_or_a_timer() {
        // Each transition is takeable by some actor the policy can produce, or by the system.
        for t in TRANSITIONS {
            assert!(!t.actors.is_empty(), "{:?}", t.name);
        }
    }

    #[test]
    fn jobs_move_only_for_their_holder() {
        let rider = person(4, &[(Role::Courier, GrantScope::Everywhere)]);
        let open = JobFacts {
            state: JobState::Open,
            carrier_id: None,
        };
        let taken = JobFacts {
            state: JobState::Accepted,
            carrier_id: Some(CarrierId(1)),
        };
        assert_eq!(
            job_move(&rider, Some(CarrierId(2)), &open, JobAction::Accept),
            Ok(())
        );
        assert_eq!(
            job_move(&rider, None, &open, JobAction::Accept),
            Err(Denied::Hidden("delivery job")),
            "not a carrier: no offers to see"
        );
        // Carrier 2 saw the job open; carrier 1 took it first: 2 cannot pick it up.
        assert_eq!(
            job_move(&rider, Some(CarrierId(2)), &taken, JobAction::PickUp),
            Err(Denied::Hidden("delivery job"))
        );
        assert_eq!(
            job_move(&rider, Some(CarrierId(1)), &taken, JobAction::PickUp),
            Ok(())
        );
        assert_eq!(
            job_move(&rider, Some(CarrierId(1)), &taken, JobAction::Deliver),
            Err(Denied::Forbidden("err-job-deliver-with-code"))
        );
        let admin = person(9, &[(Role::Admin, GrantScope::Everywhere)]);
        assert_eq!(
            job_move(&admin, None, &open, JobAction::Accept),
            Err(Denied::Forbidden("err-not-a-carrier"))
        );
        assert_eq!(
            job_move(&admin, None, &taken, JobAction::PickUp),
            Err(Denied::Forbidden("err-job-changed")),
            "admins see jobs; only the holder moves them"
        );
        assert!(job_deliver(&admin, None, &taken).is_ok());
        assert!(job_deliver(&rider, Some(CarrierId(2)), &taken).is_err());
    }

    #[test]
    fn duties() {
        let admin = person(9, &[(Role::Admin, GrantScope::Everywhere)]);
        let official = person(8, &[(Role::Official, GrantScope::Place(PlaceId(1)))]);
        let nobody = person(7, &[]);
        assert!(may(&admin, Duty::ManageSettings).is_ok());
        assert!(may(&official, Duty::ReadOfficialPages).is_ok());
        assert!(may(&official, Duty::ManageSettings).is_err());
        assert_eq!(
            official.official_places().collect::<Vec<_>>(),
            vec![PlaceId(1)]
        );
        assert_eq!(
            may(&nobody, Duty::ServeAtCentre),
            Err(Denied::Forbidden("err-not-an-agent"))
        );
        assert_eq!(
            change_access(&admin, UserId(9), true),
            Err(Denied::Invalid("err-self-demote"))
        );
        assert!(change_access(&admin, UserId(7), true).is_ok());
        assert!(change_access(&official, UserId(7), false).is_err());
        assert_eq!(commission_statement(&admin, Some(UserId(3))), Ok(UserId(3)));
        let agent = person(6, &[(Role::Agent, GrantScope::Point(PointId(7)))]);
        assert_eq!(
            commission_statement(&agent, Some(UserId(3))),
            Ok(UserId(6)),
            "only their own"
        );
    }
}
