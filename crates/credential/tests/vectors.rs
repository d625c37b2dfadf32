//! The W3C's published eddsa-jcs-2022 test vectors (w3c/vc-di-eddsa `TestVectors/`, W3C
//! Software and Document License, `data/LICENSE.md`), step by step, and the ways a changed
//! credential is refused.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tianguis_credential::*;

fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&data(name)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key() -> Keypair {
    Keypair::from_multibase(
        json("keyPair.json")["privateKeyMultibase"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

fn options() -> ProofOptions {
    let c = json("proofConfigJCS.json");
    ProofOptions {
        created: c["created"].as_str().unwrap().into(),
        verification_method: c["verificationMethod"].as_str().unwrap().into(),
        proof_purpose: c["proofPurpose"].as_str().unwrap().into(),
    }
}

#[test]
fn the_multikey_pair_reads_and_writes_back() {
    let pair = json("keyPair.json");
    let k = key();
    assert_eq!(k.public().multibase(), pair["publicKeyMultibase"]);
    assert_eq!(k.private_multibase(), pair["privateKeyMultibase"]);
    assert_eq!(
        PublicKey::from_multibase(pair["publicKeyMultibase"].as_str().unwrap()).unwrap(),
        k.public()
    );
    assert_eq!(
        k.public().verification_method(),
        json("proofConfigJCS.json")["verificationMethod"]
    );
    // A public key is not a secret key, and the other way round.
    assert!(Keypair::from_multibase(pair["publicKeyMultibase"].as_str().unwrap()).is_err());
    assert!(PublicKey::from_multibase(pair["privateKeyMultibase"].as_str().unwrap()).is_err());
    assert!(PublicKey::from_multibase("6MkrJVnaZ").is_err());
}

#[test]
fn every_step_matches_the_published_vectors() {
    let unsigned = json("unsigned.json");
    let canon = canonical(&unsigned).unwrap();
    assert_eq!(
        String::from_utf8(canon.clone()).unwrap(),
        data("canonDocJCS.txt")
    );
    assert_eq!(hex(&Sha256::digest(&canon)), data("docHashJCS.txt"));
    let config = proof_config(&unsigned, &options()).unwrap();
    assert_eq!(config, json("proofConfigJCS.json"));
    let proof_canon = canonical(&config).unwrap();
    assert_eq!(
        String::from_utf8(proof_canon.clone()).unwrap(),
        data("proofCanonJCS.txt")
    );
    assert_eq!(hex(&Sha256::digest(&proof_canon)), data("proofHashJCS.txt"));
    assert_eq!(
        hex(&hash_data(&config, &unsigned).unwrap()),
        data("combinedHashJCS.txt")
    );
    let signed = sign(&unsigned, &key(), &options()).unwrap();
    let proof_value = signed["proof"]["proofValue"].as_str().unwrap();
    assert_eq!(proof_value, data("sigBTC58JCS.txt"));
    let raw = bs58::decode(&proof_value[1..]).into_vec().unwrap();
    assert_eq!(hex(&raw), data("sigHexJCS.txt"));
    assert_eq!(signed, json("signedJCS.json"));
}

#[test]
fn the_published_credential_verifies_and_any_change_is_refused() {
    let signed = json("signedJCS.json");
    let ok = verify(&signed).unwrap();
    assert_eq!(ok.key, key().public());
    assert_eq!(ok.proof_purpose, "assertionMethod");
    assert_eq!(ok.created.as_deref(), Some("2023-02-24T23:36:38Z"));
    let changed = |f: &dyn Fn(&mut Value)| {
        let mut v = signed.clone();
        f(&mut v);
        verify(&v)
    };
    assert_eq!(
        changed(&|v| v["credentialSubject"]["alumniOf"] = "The School of Forgeries".into()),
        Err(Invalid::Signature)
    );
    assert_eq!(
        changed(&|v| v["proof"]["created"] = "2024-02-24T23:36:38Z".into()),
        Err(Invalid::Signature)
    );
    assert_eq!(
        changed(&|v| v["validUntil"] = "2030-01-01T00:00:00Z".into()),
        Err(Invalid::Signature)
    );
    assert_eq!(
        changed(&|v| v["proof"]["cryptosuite"] = "eddsa-rdfc-2022".into()),
        Err(Invalid::Cryptosuite("eddsa-rdfc-2022".into()))
    );
    assert_eq!(
        changed(&|v| v["proof"]["type"] = "Ed25519Signature2020".into()),
        Err(Invalid::ProofType("Ed25519Signature2020".into()))
    );
    assert_eq!(
        changed(&|v| v["@context"] = json!(["https://www.w3.org/ns/credentials/v2"])),
        Err(Invalid::Context)
    );
    assert_eq!(
        changed(&|v| {
            v.as_object_mut().unwrap().remove("proof");
        }),
        Err(Invalid::NoProof)
    );
    assert_eq!(
        changed(&|v| {
            v["proof"].as_object_mut().unwrap().remove("proofValue");
        }),
        Err(Invalid::Missing("proofValue"))
    );
    assert!(matches!(
        changed(&|v| v["proof"]["proofValue"] = "z1111".into()),
        Err(Invalid::Multibase(_))
    ));
    // Signed by another key that names the marketplace's: the signature fails.
    let other = Keypair::from_seed([7; 32]);
    let mut forged = sign(&json("unsigned.json"), &other, &options()).unwrap();
    assert_eq!(verify(&forged), Err(Invalid::Signature));
    // Naming its own key, it verifies, and says which key it is: trust is the caller's.
    forged = sign(
        &json("unsigned.json"),
        &other,
        &ProofOptions {
            verification_method: other.public().verification_method(),
            ..options()
        },
    )
    .unwrap();
    assert_eq!(verify(&forged).unwrap().key, other.public());
    assert!(matches!(
        verify(
            &json!({"proof": {"type": "DataIntegrityProof", "cryptosuite": "eddsa-jcs-2022",
            "proofValue": "z1", "proofPurpose": "assertionMethod", "verificationMethod": "https://x.example/k"}})
        ),
        Err(Invalid::VerificationMethod(_))
    ));
    assert_eq!(verify(&json!([1])), Err(Invalid::NotAnObject));
}

#[test]
fn validity_dates_are_kept() {
    let at = |s: &str| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
    };
    let v = json!({"validFrom": "2025-01-01T00:00:00Z", "validUntil": "2026-01-01T00:00:00Z"});
    assert_eq!(in_force(&v, at("2025-06-01T00:00:00Z")), Ok(()));
    assert_eq!(
        in_force(&v, at("2024-06-01T00:00:00Z")),
        Err(Invalid::NotYetValid("2025-01-01T00:00:00Z".into()))
    );
    assert_eq!(
        in_force(&v, at("2026-06-01T00:00:00Z")),
        Err(Invalid::Expired("2026-01-01T00:00:00Z".into()))
    );
    assert_eq!(
        timestamp(at("2026-12-04T19:45:12.345+02:00")),
        "2026-12-04T17:45:12Z"
    );
}

#[test]
fn a_proof_counts_only_by_a_key_the_issuer_publishes() {
    assert_eq!(did_web("https://market.example"), "did:web:market.example");
    assert_eq!(
        did_web("http://127.0.0.1:8080/"),
        "did:web:127.0.0.1%3A8080"
    );
    assert_eq!(
        did_web("https://gob.example/tianguis/"),
        "did:web:gob.example:tianguis"
    );
    let ours = key();
    let old = Keypair::from_seed([1; 32]);
    let stolen = Keypair::from_seed([2; 32]);
    let published = |k: &Keypair, revoked: Option<&str>| Published {
        public_multibase: k.public().multibase(),
        expires: None,
        revoked: revoked.map(str::to_string),
    };
    let doc = did_document(
        "did:web:market.example",
        &[
            published(&old, None),
            published(&stolen, Some("2026-01-01T00:00:00Z")),
            published(&ours, None),
        ],
    );
    assert_eq!(doc["assertionMethod"].as_array().unwrap().len(), 2);
    assert_eq!(
        doc["verificationMethod"][1]["revoked"],
        "2026-01-01T00:00:00Z"
    );
    let by = |k: &Keypair| {
        let signed = sign(
            &json("unsigned.json"),
            k,
            &ProofOptions {
                verification_method: k.public().verification_method(),
                ..options()
            },
        )
        .unwrap();
        issued_by(&verify(&signed).unwrap(), &doc)
    };
    assert_eq!(by(&ours), Ok(()));
    assert_eq!(by(&old), Ok(()), "a retired key's credentials still count");
    assert_eq!(
        by(&stolen),
        Err(Invalid::Revoked(
            stolen.public().multibase(),
            "2026-01-01T00:00:00Z".into()
        ))
    );
    let stranger = Keypair::from_seed([3; 32]);
    assert_eq!(
        by(&stranger),
        Err(Invalid::UnknownKey(stranger.public().multibase()))
    );
    assert_eq!(
        issued_by(&verify(&json("signedJCS.json")).unwrap(), &json!({})),
        Err(Invalid::NotADidDocument)
    );
    // A retired key signed until it was retired (the vectors' proof: 2023-02-24T23:36:38Z).
    let retired = |at: &str| {
        did_document(
            "did:web:market.example",
            &[Published {
                public_multibase: ours.public().multibase(),
                expires: Some(at.into()),
                revoked: None,
            }],
        )
    };
    let signed = verify(&json("signedJCS.json")).unwrap();
    assert_eq!(issued_by(&signed, &retired("2024-01-01T00:00:00Z")), Ok(()));
    assert_eq!(
        issued_by(&signed, &retired("2023-01-01T00:00:00Z")),
        Err(Invalid::Retired(
            "2023-02-24T23:36:38Z".into(),
            ours.public().multibase(),
            "2023-01-01T00:00:00Z".into()
        ))
    );
    // Only an assertion counts as a credential.
    let auth = sign(
        &json("unsigned.json"),
        &ours,
        &ProofOptions {
            proof_purpose: "authentication".into(),
            ..options()
        },
    )
    .unwrap();
    assert_eq!(
        issued_by(&verify(&auth).unwrap(), &doc),
        Err(Invalid::Purpose("authentication".into()))
    );
}

#[test]
fn a_field_named_twice_is_refused() {
    let text = data("signedJCS.json");
    assert_eq!(parse(&text).unwrap(), json("signedJCS.json"));
    // A forged subject placed before the signed one: serde_json alone would keep the last.
    let forged = text.replacen(
        "\"credentialSubject\": {",
        "\"credentialSubject\": {\"alumniOf\": \"Forged\"}, \"credentialSubject\": {",
        1,
    );
    assert_ne!(forged, text);
    assert_eq!(
        parse(&forged),
        Err(Invalid::DuplicateKey("credentialSubject".into()))
    );
    assert!(matches!(parse("{\"a\": "), Err(Invalid::NotJson(_))));
    assert_eq!(
        parse("[1, 2.5, null, true, \"x\"]").unwrap(),
        json!([1, 2.5, null, true, "x"])
    );
}
