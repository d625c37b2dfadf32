//! Credentials anyone can check without calling tianguis: a JSON document (a W3C Verifiable
//! Credential, VC Data Model 2.0) secured with a Data Integrity proof of the `eddsa-jcs-2022`
//! cryptosuite (W3C "Data Integrity EdDSA Cryptosuites v1.0", section 3.3):
//! - the document without its proof, and the proof's options without `proofValue` (with the
//!   document's `@context`), are each canonicalised by JCS (RFC 8785) and hashed with SHA-256;
//! - Ed25519 signs the proof options' hash followed by the document's (64 bytes);
//! - `proofValue` is the signature in multibase base58btc (`z...`).
//!
//! Keys are Multikeys: the public key is `z` + base58btc(0xed 0x01 + 32 bytes), the secret
//! `z` + base58btc(0x80 0x26 + 32-byte seed). A proof names its key as a `did:key`
//! (`did:key:z6Mk...#z6Mk...`), so the signature is checked offline; whether the key is the
//! marketplace's is the caller's question (its published keys).
//!
//! Pure: no clock, no randomness, no I/O. The caller gives the time and the seed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const CRYPTOSUITE: &str = "eddsa-jcs-2022";
pub const PROOF_TYPE: &str = "DataIntegrityProof";
const PUBLIC_PREFIX: [u8; 2] = [0xed, 0x01];
const SECRET_PREFIX: [u8; 2] = [0x80, 0x26];

/// Why a credential or a key is refused (the reason a verifier prints).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("no proof")]
    NoProof,
    #[error("more than one proof (proof sets are not accepted)")]
    ProofSet,
    #[error("the proof's {0} is missing or not text")]
    Missing(&'static str),
    #[error("proof type {0} (expected DataIntegrityProof)")]
    ProofType(String),
    #[error("cryptosuite {0} (expected eddsa-jcs-2022)")]
    Cryptosuite(String),
    #[error("the proof's @context is not the start of the document's")]
    Context,
    #[error("{0} is not a date and time (RFC 3339)")]
    Date(String),
    #[error("not a multibase base58btc value: {0}")]
    Multibase(String),
    #[error("not an Ed25519 key: {0}")]
    Key(String),
    #[error("verification method {0} is not a did:key of an Ed25519 key")]
    VerificationMethod(String),
    #[error("the signature does not match: the credential was changed or signed by another key")]
    Signature,
    #[error("not valid before {0}")]
    NotYetValid(String),
    #[error("expired at {0}")]
    Expired(String),
    #[error("the document cannot be canonicalised: {0}")]
    Canonical(String),
    #[error("signed by {0}, which is not one of the issuer's keys")]
    UnknownKey(String),
    #[error("signed by {0}, a key revoked at {1}")]
    Revoked(String, String),
    #[error("not a DID document")]
    NotADidDocument,
    #[error("signed at {0} by {1}, a key retired at {2}")]
    Retired(String, String, String),
    #[error("proof purpose {0} (a credential needs assertionMethod)")]
    Purpose(String),
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("the key {0} appears twice in one object")]
    DuplicateKey(String),
}

pub type Result<T, E = Invalid> = std::result::Result<T, E>;

/// An Ed25519 key pair.
#[derive(Clone)]
pub struct Keypair(SigningKey);

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair({})", self.public().multibase())
    }
}

impl Keypair {
    /// From a 32-byte secret seed (the caller draws it from the operating system).
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        Keypair(SigningKey::from_bytes(&seed))
    }

    /// From `privateKeyMultibase`.
    pub fn from_multibase(s: &str) -> Result<Keypair> {
        let bytes = multikey(s, SECRET_PREFIX)?;
        Ok(Keypair::from_seed(bytes))
    }

    /// `privateKeyMultibase`: keep it secret.
    pub fn private_multibase(&self) -> String {
        multibase(SECRET_PREFIX, self.0.as_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// From `publicKeyMultibase`.
    pub fn from_multibase(s: &str) -> Result<PublicKey> {
        let bytes = multikey(s, PUBLIC_PREFIX)?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|e| Invalid::Key(e.to_string()))
    }

    /// `publicKeyMultibase`.
    pub fn multibase(&self) -> String {
        multibase(PUBLIC_PREFIX, self.0.as_bytes())
    }

    /// The key as a verification method: `did:key:z6Mk...#z6Mk...`.
    pub fn verification_method(&self) -> String {
        let m = self.multibase();
        format!("did:key:{m}#{m}")
    }

    /// The key a `did:key` verification method names.
    pub fn from_verification_method(vm: &str) -> Result<PublicKey> {
        let bad = || Invalid::VerificationMethod(vm.to_string());
        let rest = vm.strip_prefix("did:key:").ok_or_else(bad)?;
        let (did, fragment) = rest.split_once('#').unwrap_or((rest, rest));
        if did != fragment {
            return Err(bad());
        }
        PublicKey::from_multibase(did).map_err(|_| bad())
    }
}

fn multibase(prefix: [u8; 2], key: &[u8; 32]) -> String {
    let mut bytes = prefix.to_vec();
    bytes.extend_from_slice(key);
    format!("z{}", bs58::encode(bytes).into_string())
}

fn base58btc(s: &str) -> Result<Vec<u8>> {
    let body = s
        .strip_prefix('z')
        .ok_or_else(|| Invalid::Multibase(s.to_string()))?;
    bs58::decode(body)
        .into_vec()
        .map_err(|_| Invalid::Multibase(s.to_string()))
}

fn multikey(s: &str, prefix: [u8; 2]) -> Result<[u8; 32]> {
    let bytes = base58btc(s)?;
    match bytes.split_first_chunk::<2>() {
        Some((p, key)) if *p == prefix => key
            .try_into()
            .map_err(|_| Invalid::Key(format!("{} bytes", key.len()))),
        _ => Err(Invalid::Key(
            "not the expected multicodec (ed25519-pub 0xed01, ed25519-priv 0x8026)".into(),
        )),
    }
}

/// The proof's options other than the cryptosuite's own (`type`, `cryptosuite`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofOptions {
    /// When it was signed, RFC 3339 in UTC (`2023-02-24T23:36:38Z`).
    pub created: String,
    pub verification_method: String,
    /// `assertionMethod` for credentials.
    pub proof_purpose: String,
}

/// What a good proof says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub key: PublicKey,
    pub verification_method: String,
    pub created: Option<String>,
    pub proof_purpose: String,
}

pub fn canonical(v: &Value) -> Result<Vec<u8>> {
    serde_json_canonicalizer::to_vec(v).map_err(|e| Invalid::Canonical(e.to_string()))
}

/// SHA-256 of the canonical proof options, then of the canonical document.
pub fn hash_data(proof_config: &Value, document: &Value) -> Result<Vec<u8>> {
    let mut out = Sha256::digest(canonical(proof_config)?).to_vec();
    out.extend_from_slice(&Sha256::digest(canonical(document)?));
    Ok(out)
}

fn date(s: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| Invalid::Date(s.to_string()))
}

/// The proof configuration for `options` over `document` (section 3.3.5): type, cryptosuite
/// and the document's `@context`.
pub fn proof_config(document: &Value, options: &ProofOptions) -> Result<Value> {
    date(&options.created)?;
    let mut p = Map::new();
    p.insert("type".into(), PROOF_TYPE.into());
    p.insert("cryptosuite".into(), CRYPTOSUITE.into());
    p.insert("created".into(), options.created.clone().into());
    p.insert(
        "verificationMethod".into(),
        options.verification_method.clone().into(),
    );
    p.insert("proofPurpose".into(), options.proof_purpose.clone().into());
    if let Some(ctx) = document.get("@context") {
        p.insert("@context".into(), ctx.clone());
    }
    Ok(Value::Object(p))
}

/// Secure `document` (without a proof) with an eddsa-jcs-2022 proof by `key`.
pub fn sign(document: &Value, key: &Keypair, options: &ProofOptions) -> Result<Value> {
    let Value::Object(doc) = document else {
        return Err(Invalid::NotAnObject);
    };
    if doc.contains_key("proof") {
        return Err(Invalid::ProofSet);
    }
    let mut proof = proof_config(document, options)?;
    let signature = key.0.sign(&hash_data(&proof, document)?);
    proof["proofValue"] = format!("z{}", bs58::encode(signature.to_bytes()).into_string()).into();
    let mut secured = doc.clone();
    secured.insert("proof".into(), proof);
    Ok(Value::Object(secured))
}

fn text<'a>(proof: &'a Map<String, Value>, field: &'static str) -> Result<&'a str> {
    proof
        .get(field)
        .and_then(Value::as_str)
        .ok_or(Invalid::Missing(field))
}

/// Check a secured document's proof (section 3.3.2); the key is the one its `did:key`
/// verification method names.
pub fn verify(secured: &Value) -> Result<Verified> {
    let Value::Object(doc) = secured else {
        return Err(Invalid::NotAnObject);
    };
    let proof = match doc.get("proof") {
        None => return Err(Invalid::NoProof),
        Some(Value::Object(p)) => p,
        Some(Value::Array(_)) => return Err(Invalid::ProofSet),
        Some(_) => return Err(Invalid::Missing("proof")),
    };
    let kind = text(proof, "type")?;
    if kind != PROOF_TYPE {
        return Err(Invalid::ProofType(kind.to_string()));
    }
    let suite = text(proof, "cryptosuite")?;
    if suite != CRYPTOSUITE {
        return Err(Invalid::Cryptosuite(suite.to_string()));
    }
    let proof_value = text(proof, "proofValue")?;
    let vm = text(proof, "verificationMethod")?;
    let purpose = text(proof, "proofPurpose")?;
    let created = match proof.get("created") {
        None => None,
        Some(Value::String(c)) => {
            date(c)?;
            Some(c.clone())
        }
        Some(_) => return Err(Invalid::Missing("created")),
    };
    let key = PublicKey::from_verification_method(vm)?;
    let signature = Signature::from_slice(&base58btc(proof_value)?)
        .map_err(|_| Invalid::Multibase(proof_value.to_string()))?;
    let mut unsecured = doc.clone();
    unsecured.remove("proof");
    let mut options = proof.clone();
    options.remove("proofValue");
    if let Some(ctx) = options.get("@context") {
        // The document's @context must start with the proof's, in order.
        let list = |v: &Value| match v {
            Value::Array(a) => a.clone(),
            other => vec![other.clone()],
        };
        let (own, theirs) = (list(ctx), doc.get("@context").map(list).unwrap_or_default());
        if theirs.len() < own.len() || theirs[..own.len()] != own[..] {
            return Err(Invalid::Context);
        }
        unsecured.insert("@context".into(), ctx.clone());
    }
    let data = hash_data(&Value::Object(options), &Value::Object(unsecured))?;
    key.0
        .verify_strict(&data, &signature)
        .map_err(|_| Invalid::Signature)?;
    Ok(Verified {
        key,
        verification_method: vm.to_string(),
        created,
        proof_purpose: purpose.to_string(),
    })
}

/// Whether a credential is in force at `now` (`validFrom`, `validUntil` of VC 2.0).
pub fn in_force(credential: &Value, now: OffsetDateTime) -> Result<()> {
    if let Some(from) = credential.get("validFrom").and_then(Value::as_str)
        && now < date(from)?
    {
        return Err(Invalid::NotYetValid(from.to_string()));
    }
    if let Some(until) = credential.get("validUntil").and_then(Value::as_str)
        && now > date(until)?
    {
        return Err(Invalid::Expired(until.to_string()));
    }
    Ok(())
}

/// `now` as a proof's `created`: RFC 3339 in UTC, to the second.
pub fn timestamp(now: OffsetDateTime) -> String {
    let t = now
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(now);
    t.format(&Rfc3339).unwrap_or_default()
}

/// The `did:web` of a site (`https://market.example/x` -> `did:web:market.example:x`; a port's
/// colon is written `%3A`).
pub fn did_web(url: &str) -> String {
    let rest = url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut did = format!("did:web:{}", host.replace(':', "%3A"));
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        did.push(':');
        did.push_str(seg);
    }
    did
}

/// A published key: `publicKeyMultibase`; when it was retired (`expires`: it signs nothing
/// later) and when it was revoked (what it signed no longer counts), if it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub public_multibase: String,
    pub expires: Option<String>,
    pub revoked: Option<String>,
}

/// The issuer's DID document (`/.well-known/did.json`): every key as a Multikey verification
/// method; the ones not revoked are its assertion methods (they sign credentials).
pub fn did_document(did: &str, keys: &[Published]) -> Value {
    let id = |k: &Published| format!("{did}#{}", k.public_multibase);
    let methods: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut m = Map::new();
            m.insert("id".into(), id(k).into());
            m.insert("type".into(), "Multikey".into());
            m.insert("controller".into(), did.into());
            m.insert(
                "publicKeyMultibase".into(),
                k.public_multibase.clone().into(),
            );
            if let Some(e) = &k.expires {
                m.insert("expires".into(), e.clone().into());
            }
            if let Some(r) = &k.revoked {
                m.insert("revoked".into(), r.clone().into());
            }
            Value::Object(m)
        })
        .collect();
    let assertion: Vec<Value> = keys
        .iter()
        .filter(|k| k.revoked.is_none())
        .map(|k| id(k).into())
        .collect();
    serde_json::json!({
        "@context": ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"],
        "id": did,
        "verificationMethod": methods,
        "assertionMethod": assertion,
    })
}

/// Whether the key of a good proof is one of the issuer's (its DID document's assertion
/// methods, not revoked, and not retired before the proof was made), for an assertion.
pub fn issued_by(verified: &Verified, did_document: &Value) -> Result<()> {
    if verified.proof_purpose != "assertionMethod" {
        return Err(Invalid::Purpose(verified.proof_purpose.clone()));
    }
    let key = verified.key.multibase();
    let methods = did_document
        .get("verificationMethod")
        .and_then(Value::as_array)
        .ok_or(Invalid::NotADidDocument)?;
    let assertion: Vec<&str> = did_document
        .get("assertionMethod")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for m in methods {
        if m.get("publicKeyMultibase").and_then(Value::as_str) != Some(key.as_str()) {
            continue;
        }
        if let Some(r) = m.get("revoked").and_then(Value::as_str) {
            return Err(Invalid::Revoked(key, r.to_string()));
        }
        if let Some(e) = m.get("expires").and_then(Value::as_str) {
            let made = verified.created.clone().unwrap_or_default();
            let late = match &verified.created {
                Some(c) => date(c)? > date(e)?,
                None => true,
            };
            if late {
                return Err(Invalid::Retired(made, key, e.to_string()));
            }
        }
        let id = m.get("id").and_then(Value::as_str).unwrap_or_default();
        if assertion.contains(&id) {
            return Ok(());
        }
    }
    Err(Invalid::UnknownKey(key))
}

/// Read a credential's text as JSON, refusing an object that names a key twice (RFC 8785 and
/// I-JSON forbid it; parsers differ in which of the two they keep, so a forged field could
/// hide beside a signed one).
pub fn parse(text: &str) -> Result<Value> {
    let v: Strict = serde_json::from_str(text).map_err(|e| {
        let m = e.to_string();
        match m.strip_prefix(DUPLICATE) {
            Some(rest) => {
                Invalid::DuplicateKey(rest.split(" at line").next().unwrap_or(rest).to_string())
            }
            None => Invalid::NotJson(m),
        }
    })?;
    Ok(v.0)
}

const DUPLICATE: &str = "duplicate key: ";

struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut a: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = a.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut a: A,
    ) -> std::result::Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = a.next_key::<String>()? {
            let Strict(v) = a.next_value()?;
            if out.contains_key(&k) {
                return Err(serde::de::Error::custom(format!("{DUPLICATE}{k}")));
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}
