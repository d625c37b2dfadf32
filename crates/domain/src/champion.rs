//! Digital champions (Buenos Aires' "Digitalizate"): trained young people, each assigned two to
//! four local businesses to bring online. The programme tracks each business's progress (listed,
//! first sale, a journey level up since the assignment) and pays the champion per business that
//! reaches the agreed milestone. No I/O.

pub const MIN_BUSINESSES: usize = 2;
pub const MAX_BUSINESSES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// At least one product on sale.
    Listed,
    /// At least one completed order.
    FirstSale,
    /// A journey level above the one at assignment.
    LevelUp,
}

impl Milestone {
    pub const ALL: [Milestone; 3] = [Milestone::Listed, Milestone::FirstSale, Milestone::LevelUp];
    pub fn as_str(&self) -> &'static str {
        match self {
            Milestone::Listed => "listed",
            Milestone::FirstSale => "first_sale",
            Milestone::LevelUp => "level_up",
        }
    }
    pub fn parse(s: &str) -> Option<Milestone> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What is known of a business now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Facts {
    pub active_products: i64,
    pub completed_orders: i64,
    pub level: i64,
    pub baseline_level: i64,
}

impl Facts {
    pub fn reached(&self, m: Milestone) -> bool {
        match m {
            Milestone::Listed => self.active_products > 0,
            Milestone::FirstSale => self.completed_orders > 0,
            Milestone::LevelUp => self.level > self.baseline_level,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChampionError {
    #[error("a champion takes at most {MAX_BUSINESSES} businesses")]
    TooMany,
}

impl ChampionError {
    pub fn msg(&self) -> crate::Msg {
        crate::Msg::new("err-champion-full").arg("max", MAX_BUSINESSES)
    }
}

/// Whether one more business may be assigned to a champion who has `current`.
pub fn can_assign(current: usize) -> Result<(), ChampionError> {
    if current >= MAX_BUSINESSES {
        Err(ChampionError::TooMany)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milestones_follow_the_facts() {
        let mut f = Facts {
            baseline_level: 1,
            level: 1,
            ..Default::default()
        };
        assert!(Milestone::ALL.iter().all(|m| !f.reached(*m)));
        f.active_products = 3;
        assert!(f.reached(Milestone::Listed) && !f.reached(Milestone::FirstSale));
        f.completed_orders = 1;
        f.level = 2;
        assert!(Milestone::ALL.iter().all(|m| f.reached(*m)));
        for m in Milestone::ALL {
            assert_eq!(Milestone::parse(m.as_str()), Some(m));
        }
    }

    #[test]
    fn two_to_four_businesses() {
        assert!((0..MAX_BUSINESSES).all(|n| can_assign(n).is_ok()));
        assert_eq!(can_assign(MAX_BUSINESSES), Err(ChampionError::TooMany));
    }
}
