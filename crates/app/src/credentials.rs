//! The credentials the marketplace issues (training certificates, sales statements) and the
//! keys it signs them with: a key is made from the operating system's randomness and kept in
//! the database (never in the repository); rotating puts a new one in use and keeps the old
//! one published, so what it signed still verifies. The cryptography is
//! `tianguis_credential`'s; this module only joins it to the store and the clock.

use serde_json::Value;
pub use tianguis_credential::{Invalid, parse};
use tianguis_credential::{Keypair, ProofOptions, Published};
use tianguis_store::keys::SigningKey;
use tianguis_store::{Db, Msg, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

fn at(ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

/// Make a key and put it in use. `rotate`: retire the one in use; otherwise there must be
/// none yet.
pub async fn new_key(db: &Db, rotate: bool) -> Result<SigningKey> {
    use rand::Rng;
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = Keypair::from_seed(seed);
    db.add_signing_key(&key.public().multibase(), &key.private_multibase(), !rotate)
        .await
}

/// Sign `document` (a credential without a proof) with the key in use.
pub async fn issue(db: &Db, document: &Value) -> Result<Value> {
    let Some((_, secret)) = db.current_signing_key().await? else {
        return Err(StoreError::Conflict(Msg::new("err-no-signing-key")));
    };
    let key = Keypair::from_multibase(&secret)
        .map_err(|e| StoreError::Corrupt(format!("the signing key in use: {e}")))?;
    let options = ProofOptions {
        created: tianguis_credential::timestamp(at(db.now_ms())),
        verification_method: key.public().verification_method(),
        proof_purpose: "assertionMethod".into(),
    };
    // The document is the caller's input (a file given to `credential issue`): a bad one is
    // refused with the reason, not taken for damage.
    tianguis_credential::sign(document, &key, &options).map_err(|e| {
        StoreError::Invalid(Msg::new("err-credential-unsignable").arg("reason", e.to_string()))
    })
}

/// The marketplace's DID document for `public_url` (served at `/.well-known/did.json`).
pub async fn did_document(db: &Db, public_url: &str) -> Result<Value> {
    let keys: Vec<Published> = db
        .signing_keys()
        .await?
        .into_iter()
        .map(|k| Published {
            public_multibase: k.public_multibase,
            expires: k.retired_at.map(|t| tianguis_credential::timestamp(at(t))),
            revoked: k.revoked_at.map(|t| tianguis_credential::timestamp(at(t))),
        })
        .collect();
    Ok(tianguis_credential::did_document(
        &tianguis_credential::did_web(public_url),
        &keys,
    ))
}

/// Check a credential offline: its proof, its dates at the database's clock, and that the key
/// is one of the issuer's in `did_document`. The reason, if not.
pub fn check(
    credential: &Value,
    did_document: &Value,
    now_ms: i64,
) -> std::result::Result<(), Invalid> {
    let verified = tianguis_credential::verify(credential)?;
    tianguis_credential::issued_by(&verified, did_document)?;
    tianguis_credential::in_force(credential, at(now_ms))
}
