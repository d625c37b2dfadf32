//! Who is asking, and how often. The client's address comes from the socket, or from a
//! configured header when the socket is a trusted proxy. Limits are kept in the database
//! (`tianguis_store::limits`), so every server behind a load balancer counts the same events,
//! and they are keyed per account or phone as well as per address: the people behind one
//! digital centre's address do not lock each other out.

use crate::AppState;
use crate::error::AppError;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::net::{IpAddr, SocketAddr};
use tianguis_store::limits::Limit;

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest address in
/// the configured header that is not itself a trusted proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn client_ip(peer: IpAddr, header: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(h) = header else { return peer };
    // X-Forwarded-For: client, proxy1, proxy2 (each proxy appends the address it saw).
    // Read from the right, where the trusted proxies wrote; what cannot be read ends the
    // walk (everything to its left could be the client's own writing).
    for part in h.split(',').rev() {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            Err(_) => return peer,
        }
    }
    peer
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = AppError;
    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, AppError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        // A header sent several times counts as one list, in order: the last proxy's
        // addition is the last value, which a client cannot write after.
        let header = s.config.client_ip_header.as_deref().map(|name| {
            parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or("invalid"))
                .collect::<Vec<_>>()
                .join(",")
        });
        let header = header.filter(|h| !h.is_empty());
        Ok(ClientIp(client_ip(
            peer,
            header.as_deref(),
            &s.config.trusted_proxies,
        )))
    }
}

/// A phone as limits key it: its E.164 form (read in the marketplace's country) when it
/// parses, so every way of typing one number counts against one limit; else as typed.
pub async fn phone_key(s: &AppState, raw: &str) -> Result<String, AppError> {
    let region = s.db.phone_region().await?;
    Ok(tianguis_domain::phone::PhoneNumber::parse(raw, region)
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|_| raw.trim().to_string()))
}

fn limited() -> AppError {
    AppError::user(StatusCode::TOO_MANY_REQUESTS, "error-rate")
}

/// Failed logins: per phone, and (more generously) per address.
pub async fn login_failures(
    s: &AppState,
    ip: ClientIp,
    phone: &str,
) -> Result<Vec<Limit>, AppError> {
    let n = s.config.login_per_minute;
    let key = phone_key(s, phone).await?;
    Ok(vec![
        Limit::per_minute(format!("login-fail:phone:{key}"), n),
        Limit::per_minute(format!("login-fail:ip:{}", ip.0), n.saturating_mul(10)),
    ])
}

/// New accounts per address.
pub fn signups(s: &AppState, ip: ClientIp) -> Vec<Limit> {
    vec![Limit::per_minute(
        format!("signup:ip:{}", ip.0),
        s.config.login_per_minute,
    )]
}

/// Checkouts per account (taken inside the checkout's own transaction). A checkout needs an
/// account, and making accounts is limited per address; a per-address count here would make
/// every checkout from one digital centre wait on one row.
pub fn checkouts(s: &AppState, _ip: ClientIp, account: i64) -> Vec<Limit> {
    vec![Limit::per_minute(
        format!("checkout:user:{account}"),
        s.config.checkout_per_minute,
    )]
}

/// Texted codes (they cost money) per address, and per phone so many addresses cannot flood
/// one person.
pub async fn texted_codes(
    s: &AppState,
    ip: ClientIp,
    phone: Option<&str>,
) -> Result<Vec<Limit>, AppError> {
    let mut v = vec![Limit::per_minute(
        format!("code:ip:{}", ip.0),
        s.config.codes_per_minute,
    )];
    if let Some(p) = phone {
        v.push(Limit::per_hour(
            format!("code:phone:{}", phone_key(s, p).await?),
            s.config.codes_per_phone_per_hour,
        ));
    }
    Ok(v)
}

/// Looking an order up by its code (codes can be guessed): per address, with the texted codes.
pub fn lookups(s: &AppState, ip: ClientIp) -> Vec<Limit> {
    vec![Limit::per_minute(
        format!("code:ip:{}", ip.0),
        s.config.codes_per_minute,
    )]
}

/// Take one event from every limit, or refuse with 429.
pub async fn take(s: &AppState, limits: &[Limit]) -> Result<(), AppError> {
    if s.db.rate_take(limits).await? {
        Ok(())
    } else {
        Err(limited())
    }
}

/// Take one event from every limit on failures before trying (refused with 429 when one is
/// reached); the moment it was counted, to give it back if the attempt succeeds.
pub async fn attempt(s: &AppState, limits: &[Limit]) -> Result<i64, AppError> {
    s.db.rate_attempt(limits).await?.ok_or_else(limited)
}

#[cfg(test)]
mod tests {
    use super::client_ip;
    use std::net::IpAddr;

    #[test]
    fn the_client_address_is_taken_from_trusted_proxies_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let proxy = ip("10.0.0.2");
        // No trusted proxy: the header is whatever the client wrote, ignored.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &[]),
            ip("203.0.113.9")
        );
        // Through the trusted proxy: the address it saw.
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7"), &[proxy]),
            ip("198.51.100.7")
        );
        // A client that forges the header gets its own address appended by the proxy: the
        // forged part is to the left and not believed.
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6, 198.51.100.7"), &[proxy]),
            ip("198.51.100.7")
        );
        // Two trusted hops.
        let lb = ip("10.0.0.1");
        assert_eq!(
            client_ip(proxy, Some("198.51.100.7, 10.0.0.1"), &[proxy, lb]),
            ip("198.51.100.7")
        );
        // A trusted proxy that sent no header, or garbage: the proxy itself.
        assert_eq!(client_ip(proxy, None, &[proxy]), proxy);
        assert_eq!(client_ip(proxy, Some("nonsense"), &[proxy]), proxy);
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6, nonsense"), &[proxy]),
            proxy,
            "nothing left of an unreadable entry is believed"
        );
        // The header sent twice is read as one list (the last value is the proxy's).
        assert_eq!(
            client_ip(proxy, Some("6.6.6.6,198.51.100.7"), &[proxy]),
            ip("198.51.100.7")
        );
    }
}
