//! Behaviour of `JwtAuthenticator` over valid, expired, forged and garbage tokens.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use collab_core::{AuthError, Role};
use collab_jwt::{Algorithm, Claims, JwtAuthenticator, JwtError, MAX_TOKEN_LEN};
use collab_server::Authenticator;
use proptest::prelude::*;
use serde_json::{json, Value};

const SECRET: &[u8] = b"test-secret-0123456789abcdef-0123456789";
const HOUR: Duration = Duration::from_secs(3600);

// Test-only key pairs, generated once with openssl. Never use them elsewhere.
const RS256_PRIVATE: &[u8] = include_bytes!("keys/rs256_private.pem");
const RS256_PUBLIC: &[u8] = include_bytes!("keys/rs256_public.pem");
const ES256_PRIVATE: &[u8] = include_bytes!("keys/es256_private.pem");
const ES256_PUBLIC: &[u8] = include_bytes!("keys/es256_public.pem");
const EDDSA_PRIVATE: &[u8] = include_bytes!("keys/eddsa_private.pem");
const EDDSA_PUBLIC: &[u8] = include_bytes!("keys/eddsa_public.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

fn hs(claims: &Claims) -> String {
    JwtAuthenticator::issue_hs256(SECRET, claims).unwrap()
}

/// Signs arbitrary JSON claims with HS256 and `SECRET`.
fn hs_raw(claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn b64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn auth() -> JwtAuthenticator {
    JwtAuthenticator::hs256(SECRET)
}

#[test]
fn valid_hs256_token_yields_identity_and_expiry() {
    let claims = Claims::new("u1", HOUR)
        .with_name("Ann")
        .with_role(Role::Host);
    let token = hs(&claims);
    let v = auth().verify(Some(&token)).unwrap();
    assert_eq!(v.identity.user_id.0, "u1");
    assert_eq!(v.identity.name, "Ann");
    assert_eq!(v.identity.role, Some(Role::Host));
    assert_eq!(v.expires_at, Some(claims.exp));
    assert_eq!(auth().expires_at(&token), Some(claims.exp));

    let id = run(auth().authenticate(Some(&token))).unwrap();
    assert_eq!(id, v.identity);
}

#[test]
fn name_defaults_to_sub_and_role_to_none() {
    let token = hs(&Claims::new("u2", HOUR));
    let id = run(auth().authenticate(Some(&token))).unwrap();
    assert_eq!(id.name, "u2");
    assert_eq!(id.role, None);
}

#[test]
fn role_claim_maps_to_roles() {
    for (wire, role) in [
        ("host", Role::Host),
        ("editor", Role::Editor),
        ("viewer", Role::Viewer),
    ] {
        let token = hs_raw(&json!({"sub": "u", "exp": now() + 600, "role": wire}));
        assert_eq!(
            auth().verify(Some(&token)).unwrap().identity.role,
            Some(role)
        );
    }
    for bad in [json!("admin"), json!("Host"), json!(3), json!({"x": 1})] {
        let token = hs_raw(&json!({"sub": "u", "exp": now() + 600, "role": bad}));
        assert_eq!(
            auth().verify(Some(&token)),
            Err(AuthError::Invalid),
            "{bad}"
        );
    }
    let token = hs_raw(&json!({"sub": "u", "exp": now() + 600, "role": null}));
    assert_eq!(auth().verify(Some(&token)).unwrap().identity.role, None);
}

#[test]
fn valid_rs256_token() {
    let auth = JwtAuthenticator::rs256_pem(RS256_PUBLIC).unwrap();
    assert_eq!(auth.algorithm(), Algorithm::RS256);
    let claims = Claims::new("r1", HOUR).with_role(Role::Viewer);
    let token = JwtAuthenticator::issue_pem(Algorithm::RS256, RS256_PRIVATE, &claims).unwrap();
    let v = auth.verify(Some(&token)).unwrap();
    assert_eq!(v.identity.user_id.0, "r1");
    assert_eq!(v.identity.role, Some(Role::Viewer));
    assert_eq!(v.expires_at, Some(claims.exp));
}

#[test]
fn valid_es256_token() {
    let auth = JwtAuthenticator::es256_pem(ES256_PUBLIC).unwrap();
    let token =
        JwtAuthenticator::issue_pem(Algorithm::ES256, ES256_PRIVATE, &Claims::new("e1", HOUR))
            .unwrap();
    assert_eq!(auth.verify(Some(&token)).unwrap().identity.user_id.0, "e1");
}

#[test]
fn valid_eddsa_token() {
    let auth = JwtAuthenticator::eddsa_pem(EDDSA_PUBLIC).unwrap();
    let token =
        JwtAuthenticator::issue_pem(Algorithm::EdDSA, EDDSA_PRIVATE, &Claims::new("d1", HOUR))
            .unwrap();
    assert_eq!(auth.verify(Some(&token)).unwrap().identity.user_id.0, "d1");
}

#[test]
fn bad_keys_are_typed_errors() {
    let garbage: &[u8] = b"-----BEGIN PUBLIC KEY-----\nnot base64!!\n-----END PUBLIC KEY-----\n";
    type Ctor = fn(&[u8]) -> Result<JwtAuthenticator, JwtError>;
    let ctors: [(Algorithm, Ctor); 3] = [
        (Algorithm::RS256, JwtAuthenticator::rs256_pem),
        (Algorithm::ES256, JwtAuthenticator::es256_pem),
        (Algorithm::EdDSA, JwtAuthenticator::eddsa_pem),
    ];
    for (alg, ctor) in ctors {
        for bad in [&b""[..], b"hello", garbage, RS256_PRIVATE, ES256_PRIVATE] {
            match ctor(bad) {
                Err(JwtError::InvalidKey { algorithm, .. }) => assert_eq!(algorithm, alg),
                other => panic!("{alg}: expected InvalidKey, got {other:?}"),
            }
        }
    }
    // A key of the wrong type.
    assert!(JwtAuthenticator::rs256_pem(ES256_PUBLIC).is_err());
    assert!(JwtAuthenticator::es256_pem(RS256_PUBLIC).is_err());
    assert!(JwtAuthenticator::es256_pem(EDDSA_PUBLIC).is_err());
    assert!(JwtAuthenticator::eddsa_pem(ES256_PUBLIC).is_err());
    // Signing with a bad private key is a typed error too.
    assert!(matches!(
        JwtAuthenticator::issue_pem(Algorithm::RS256, b"nope", &Claims::new("x", HOUR)),
        Err(JwtError::InvalidKey { .. })
    ));
}

#[test]
fn asymmetric_tokens_from_other_keys_are_invalid() {
    let es = JwtAuthenticator::es256_pem(ES256_PUBLIC).unwrap();
    let rs = JwtAuthenticator::rs256_pem(RS256_PUBLIC).unwrap();
    let claims = Claims::new("x", HOUR);
    let rs_token = JwtAuthenticator::issue_pem(Algorithm::RS256, RS256_PRIVATE, &claims).unwrap();
    let ed_token = JwtAuthenticator::issue_pem(Algorithm::EdDSA, EDDSA_PRIVATE, &claims).unwrap();
    assert_eq!(es.verify(Some(&rs_token)), Err(AuthError::Invalid));
    assert_eq!(es.verify(Some(&ed_token)), Err(AuthError::Invalid));
    assert_eq!(rs.verify(Some(&hs(&claims))), Err(AuthError::Invalid));
}

#[test]
fn hs256_signed_with_public_key_is_refused_by_rs256() {
    // The classic algorithm-confusion forgery: HMAC keyed with the public PEM.
    let rs = JwtAuthenticator::rs256_pem(RS256_PUBLIC).unwrap();
    let forged = JwtAuthenticator::issue_hs256(RS256_PUBLIC, &Claims::new("admin", HOUR)).unwrap();
    assert_eq!(rs.verify(Some(&forged)), Err(AuthError::Invalid));
}

#[test]
fn expired_token_is_expired() {
    let token = hs(&Claims::new("u", HOUR).with_expiry(now() - 3600));
    assert_eq!(auth().verify(Some(&token)), Err(AuthError::Expired));
    assert_eq!(
        run(auth().authenticate(Some(&token))),
        Err(AuthError::Expired)
    );
    assert_eq!(auth().expires_at(&token), None);
}

#[test]
fn leeway_forgives_small_skew() {
    let token = hs(&Claims::new("u", HOUR).with_expiry(now() - 30));
    assert!(auth().verify(Some(&token)).is_ok(), "default leeway is 60s");
    assert_eq!(
        auth().leeway(Duration::ZERO).verify(Some(&token)),
        Err(AuthError::Expired)
    );
    // Huge leeways are clamped, not overflowed.
    let old = hs(&Claims::new("u", HOUR).with_expiry(now() - 3 * 24 * 3600));
    assert_eq!(
        auth().leeway(Duration::MAX).verify(Some(&old)),
        Err(AuthError::Expired)
    );
}

#[test]
fn not_before_in_future_is_expired() {
    let token = hs(&Claims::new("u", HOUR).with_not_before(now() + 1800));
    assert_eq!(auth().verify(Some(&token)), Err(AuthError::Expired));
    let ok = hs(&Claims::new("u", HOUR).with_not_before(now() - 10));
    assert!(auth().verify(Some(&ok)).is_ok());
}

#[test]
fn audience_is_checked_when_configured() {
    let collab = hs(&Claims::new("u", HOUR).with_audience("collab"));
    let other = hs(&Claims::new("u", HOUR).with_audience("billing"));
    let none = hs(&Claims::new("u", HOUR));
    let strict = auth().audience("collab");
    assert!(strict.verify(Some(&collab)).is_ok());
    assert_eq!(strict.verify(Some(&other)), Err(AuthError::Invalid));
    assert_eq!(strict.verify(Some(&none)), Err(AuthError::Invalid));
    // Several accepted audiences; array-valued aud.
    let either = auth().audience("billing").audience("collab");
    assert!(either.verify(Some(&other)).is_ok());
    let multi = hs_raw(&json!({"sub": "u", "exp": now() + 60, "aud": ["x", "collab"]}));
    assert!(strict.verify(Some(&multi)).is_ok());
    // Not configured: not checked.
    assert!(auth().verify(Some(&other)).is_ok());
}

#[test]
fn issuer_is_checked_when_configured() {
    let good = hs(&Claims::new("u", HOUR).with_issuer("login.example"));
    let bad = hs(&Claims::new("u", HOUR).with_issuer("evil.example"));
    let strict = auth().issuer("login.example");
    assert!(strict.verify(Some(&good)).is_ok());
    assert_eq!(strict.verify(Some(&bad)), Err(AuthError::Invalid));
    let none = hs(&Claims::new("u", HOUR));
    assert_eq!(strict.verify(Some(&none)), Err(AuthError::Invalid));
    assert!(
        auth().verify(Some(&bad)).is_ok(),
        "not configured: not checked"
    );
}

#[test]
fn wrong_secret_is_invalid() {
    let token = JwtAuthenticator::issue_hs256(b"another-secret", &Claims::new("u", HOUR)).unwrap();
    assert_eq!(auth().verify(Some(&token)), Err(AuthError::Invalid));
}

#[test]
fn tampered_payload_is_invalid() {
    let real = hs(&Claims::new("u", HOUR).with_role(Role::Viewer));
    let wanted = hs(&Claims::new("u", HOUR).with_role(Role::Host));
    let real: Vec<&str> = real.split('.').collect();
    let wanted: Vec<&str> = wanted.split('.').collect();
    let forged = format!("{}.{}.{}", real[0], wanted[1], real[2]);
    assert_eq!(auth().verify(Some(&forged)), Err(AuthError::Invalid));

    // Flip one character of the signature.
    let mut sig: Vec<u8> = real[2].bytes().collect();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let forged = format!(
        "{}.{}.{}",
        real[0],
        real[1],
        String::from_utf8(sig).unwrap()
    );
    assert_eq!(auth().verify(Some(&forged)), Err(AuthError::Invalid));
}

#[test]
fn alg_none_is_invalid() {
    let payload = b64url(
        json!({"sub": "admin", "exp": now() + 3600, "role": "host"})
            .to_string()
            .as_bytes(),
    );
    for header in [
        r#"{"alg":"none","typ":"JWT"}"#,
        r#"{"alg":"None"}"#,
        r#"{"alg":"NONE"}"#,
    ] {
        let h = b64url(header.as_bytes());
        for token in [format!("{h}.{payload}."), format!("{h}.{payload}")] {
            assert_eq!(auth().verify(Some(&token)), Err(AuthError::Invalid));
        }
    }
}

#[test]
fn missing_or_malformed_claims_are_invalid() {
    let exp = now() + 600;
    for claims in [
        json!({"exp": exp}),
        json!({"sub": "", "exp": exp}),
        json!({"sub": 7, "exp": exp}),
        json!({"sub": null, "exp": exp}),
        json!({"sub": "u"}),
        json!({"sub": "u", "exp": "tomorrow"}),
        json!({"sub": "u", "exp": -5}),
        json!({"sub": "u", "exp": exp, "nbf": "soon"}),
        json!({"sub": "u", "exp": exp, "name": 5}),
        json!([1, 2, 3]),
        json!("just a string"),
    ] {
        assert_eq!(
            auth().verify(Some(&hs_raw(&claims))),
            Err(AuthError::Invalid),
            "{claims}"
        );
    }
}

#[test]
fn fractional_exp_is_accepted() {
    let exp = now() + 600;
    let token = hs_raw(&json!({"sub": "u", "exp": exp as f64 + 0.25, "name": ""}));
    let v = auth().verify(Some(&token)).unwrap();
    assert_eq!(v.expires_at, Some(exp));
    assert_eq!(v.identity.name, "u", "an empty name falls back to sub");
}

#[test]
fn anonymous_is_off_by_default() {
    assert_eq!(auth().verify(None), Err(AuthError::Missing));
    assert_eq!(auth().verify(Some("")), Err(AuthError::Missing));
    assert_eq!(run(auth().authenticate(None)), Err(AuthError::Missing));
    assert_eq!(
        auth().allow_anonymous(false).verify(None),
        Err(AuthError::Missing)
    );
}

#[test]
fn anonymous_on_gives_random_guests_but_still_checks_tokens() {
    let anon = auth().allow_anonymous(true);
    let a = run(anon.authenticate(None)).unwrap();
    let b = run(anon.authenticate(Some("  "))).unwrap();
    assert!(a.user_id.0.starts_with("guest:"));
    assert_ne!(a.user_id, b.user_id);
    assert_eq!(a.name, "Guest");
    assert_eq!(a.role, None);
    assert_eq!(anon.verify(None).unwrap().expires_at, None);
    // A present but bad token is not silently downgraded to a guest.
    assert_eq!(anon.verify(Some("garbage")), Err(AuthError::Invalid));
    let expired = hs(&Claims::new("u", HOUR).with_expiry(now() - 3600));
    assert_eq!(anon.verify(Some(&expired)), Err(AuthError::Expired));
    let good = hs(&Claims::new("u", HOUR));
    assert_eq!(anon.verify(Some(&good)).unwrap().identity.user_id.0, "u");
}

#[test]
fn oversized_token_is_invalid() {
    let token = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(auth().verify(Some(&token)), Err(AuthError::Invalid));
}

#[test]
fn debug_does_not_leak_the_secret() {
    let s = format!("{:?}", auth());
    assert!(!s.contains("test-secret"), "{s}");
}

proptest! {
    #[test]
    fn garbage_never_panics_or_passes(s in any::<String>()) {
        for a in [auth(), JwtAuthenticator::rs256_pem(RS256_PUBLIC).unwrap(),
                  JwtAuthenticator::es256_pem(ES256_PUBLIC).unwrap(),
                  JwtAuthenticator::eddsa_pem(EDDSA_PUBLIC).unwrap()] {
            let r = a.verify(Some(&s));
            prop_assert!(r.is_err() || s.trim().is_empty());
        }
    }

    #[test]
    fn jwt_shaped_garbage_never_panics_or_passes(
        h in "[A-Za-z0-9_=-]{0,60}",
        p in "[A-Za-z0-9_=-]{0,80}",
        s in "[A-Za-z0-9_=-]{0,90}",
    ) {
        let token = format!("{h}.{p}.{s}");
        prop_assert!(auth().verify(Some(&token)).is_err());
        prop_assert!(JwtAuthenticator::rs256_pem(RS256_PUBLIC).unwrap().verify(Some(&token)).is_err());
    }

    #[test]
    fn encoded_json_garbage_never_panics_or_passes(
        header in "\\PC{0,40}",
        payload in "\\PC{0,60}",
        alg in prop::sample::select(vec!["HS256", "RS256", "ES256", "EdDSA", "none", "HS512"]),
        exp in any::<i64>(),
        nbf in any::<f64>(),
    ) {
        let hdr = b64url(format!(r#"{{"alg":"{alg}","x":{header:?}}}"#).as_bytes());
        let body = b64url(
            json!({"sub": payload, "exp": exp, "nbf": nbf}).to_string().as_bytes(),
        );
        let token = format!("{hdr}.{body}.AAAA");
        prop_assert!(auth().leeway(Duration::MAX).verify(Some(&token)).is_err());
        prop_assert!(JwtAuthenticator::eddsa_pem(EDDSA_PUBLIC).unwrap().verify(Some(&token)).is_err());
    }

    #[test]
    fn random_claims_round_trip(
        sub in "[a-z0-9:_-]{1,40}",
        name in "\\PC{1,40}",
        ttl in 120u64..10_000_000,
    ) {
        let claims = Claims::new(sub.clone(), Duration::from_secs(ttl)).with_name(name.clone());
        let v = auth().verify(Some(&hs(&claims))).unwrap();
        prop_assert_eq!(v.identity.user_id.0, sub);
        let expected = if name.trim().is_empty() { claims.sub.clone() } else { name };
        prop_assert_eq!(v.identity.name, expected);
        prop_assert_eq!(v.expires_at, Some(claims.exp));
    }
}
