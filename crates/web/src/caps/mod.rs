//! The pages, one module per capability, each with its routes, handlers, forms and templates.
//! A capability uses what `views` (and the edge modules: `ctx`, `forms`, `who`, `error`)
//! share, never another capability's internals. Every route is registered through a
//! [`Table`], so the route list ([`route_list`]) is the router's own: the authorization matrix
//! and the CSRF test are generated from it and a new route without a row fails them.

pub mod account;
pub mod admin;
pub mod assisted;
pub mod browse;
pub mod catalogue;
pub mod checkout;
pub mod courier;
pub mod credentials;
pub mod diagnostic;
pub mod directory;
pub mod mandates;
pub mod orders;
pub mod payouts;
pub mod pickup;
pub mod shop;
pub mod views;

use crate::AppState;
use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};

/// One route as the router serves it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RouteInfo {
    pub method: &'static str,
    pub path: String,
    pub capability: &'static str,
}

/// A capability's routes: the router and the list of what it serves, built together.
pub struct Table {
    capability: &'static str,
    router: Router<AppState>,
    list: Vec<RouteInfo>,
}

impl Table {
    pub fn new(capability: &'static str) -> Table {
        Table {
            capability,
            router: Router::new(),
            list: Vec::new(),
        }
    }

    fn add(
        mut self,
        path: &'static str,
        mr: MethodRouter<AppState>,
        methods: &[&'static str],
    ) -> Table {
        for m in methods {
            self.list.push(RouteInfo {
                method: m,
                path: path.to_string(),
                capability: self.capability,
            });
        }
        self.router = self.router.route(path, mr);
        self
    }

    pub fn get<H, T>(self, path: &'static str, h: H) -> Table
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, get(h), &["GET"])
    }

    pub fn post<H, T>(self, path: &'static str, h: H) -> Table
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.add(path, post(h), &["POST"])
    }

    pub fn get_post<G, TG, P, TP>(self, path: &'static str, g: G, p: P) -> Table
    where
        G: Handler<TG, AppState>,
        TG: 'static,
        P: Handler<TP, AppState>,
        TP: 'static,
    {
        self.add(path, get(g).post(p), &["GET", "POST"])
    }

    pub fn merge(mut self, other: Table) -> Table {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }

    /// Everything under `prefix` (the JSON API under `/api/v1`).
    pub fn nest(mut self, prefix: &'static str, other: Table) -> Table {
        self.router = self.router.nest(prefix, other.router);
        self.list.extend(other.list.into_iter().map(|mut r| {
            r.path = format!("{prefix}{}", r.path);
            r
        }));
        self
    }

    pub fn into_parts(self) -> (Router<AppState>, Vec<RouteInfo>) {
        (self.router, self.list)
    }
}

/// Every capability's pages.
pub fn pages() -> Table {
    Table::new("pages")
        .merge(browse::routes())
        .merge(catalogue::routes())
        .merge(checkout::routes())
        .merge(orders::routes())
        .merge(account::routes())
        .merge(shop::routes())
        .merge(admin::routes())
        .merge(pickup::routes())
        .merge(courier::routes())
        .merge(assisted::routes())
        .merge(mandates::routes())
        .merge(payouts::routes())
        .merge(directory::routes())
        .merge(credentials::routes())
        .merge(diagnostic::routes())
}

/// The pages' router: the context layer (session, language, errors as translated pages) and
/// the refusal of control characters around every capability.
pub fn router(state: AppState) -> Router<AppState> {
    let (router, _) = pages().into_parts();
    router
        .fallback(views::not_found)
        // Inside the context layer: a refused request still gets a page in the reader's
        // language.
        .layer(axum::middleware::from_fn(crate::forms::pages_guard))
        .layer(axum::middleware::from_fn_with_state(
            state,
            crate::ctx::layer,
        ))
}

/// Every route the server answers (pages, the API, the edge's own, and the local simulators'
/// when they are mounted), from the same tables the router is built from.
pub fn route_list() -> Vec<RouteInfo> {
    let mut v = pages().into_parts().1;
    v.extend(
        crate::api::routes()
            .into_parts()
            .1
            .into_iter()
            .map(|mut r| {
                r.path = format!("/api/v1{}", r.path);
                r
            }),
    );
    v.extend(crate::edge_routes().into_parts().1);
    // The simulators speak their providers' protocols (mounted with --simulators only).
    for (method, path) in [
        ("POST", "/sim/momo/v1/payments"),
        ("GET", "/sim/momo/v1/payments/{r}"),
        ("POST", "/sim/sms/version1/messaging"),
    ] {
        v.push(RouteInfo {
            method,
            path: path.to_string(),
            capability: "simulators",
        });
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_listed_once() {
        let list = super::route_list();
        let mut seen = std::collections::BTreeSet::new();
        for r in &list {
            println!("{} {} ({})", r.method, r.path, r.capability);
            assert!(seen.insert((r.method, r.path.clone())), "twice: {r:?}");
        }
        assert!(list.len() > 60, "{}", list.len());
    }
}
