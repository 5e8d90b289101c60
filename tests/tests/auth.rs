//! Authentication and authorisation: every bad token is a 401, a non-member a 403, a
//! viewer's write a 403.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;

use herald::auth::Clock;
use herald::auth::jwt::{LEEWAY, MAX_TOKEN_BYTES};
use herald::config::JwtConfig;
use herald_tests::{FakeServer, SECRET, TestApp, read};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use reqwest::Method;
use serde_json::{Value, json};

const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_public.pem");
const EC_PRIVATE: &[u8] = include_bytes!("../fixtures/ec_private.pem");
const JWKS: &str = include_str!("../fixtures/jwks.json");

fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "exp": get_current_timestamp() + 600 })
}

fn sign(header: Header, claims: &Value, key: &EncodingKey) -> String {
    encode(&header, claims, key).unwrap()
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    sign(
        Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
}

fn with_kid(alg: Algorithm, kid: &str) -> Header {
    Header {
        kid: Some(kid.into()),
        ..Header::new(alg)
    }
}

async fn call(app: &TestApp, token: Option<&str>, tenant: uuid::Uuid) -> herald_tests::Reply {
    let mut req = app
        .request(Method::GET, "/api/contacts")
        .header("X-Tenant-ID", tenant.to_string());
    if let Some(token) = token {
        req = req.header("Authorization", format!("Bearer {token}"));
    }
    read(req.send().await.unwrap()).await
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;

    let expired = hs256(
        &json!({ "sub": "alice", "exp": get_current_timestamp() - 3600 }),
        SECRET.as_bytes(),
    );
    let wrong_signature = hs256(&claims("alice"), b"some-other-secret-of-sufficient-length");
    let no_sub = hs256(
        &json!({ "exp": get_current_timestamp() + 600 }),
        SECRET.as_bytes(),
    );
    let no_exp = hs256(&json!({ "sub": "alice" }), SECRET.as_bytes());
    let hs384 = sign(
        Header::new(Algorithm::HS384),
        &claims("alice"),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    );
    let alg_none = {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
        format!("{header}.{body}.")
    };

    for (what, token) in [
        ("missing", None),
        ("malformed", Some("not-a-jwt")),
        ("expired", Some(expired.as_str())),
        ("wrong signature", Some(wrong_signature.as_str())),
        ("no sub", Some(no_sub.as_str())),
        ("no exp", Some(no_exp.as_str())),
        ("unpinned algorithm", Some(hs384.as_str())),
        ("alg none", Some(alg_none.as_str())),
    ] {
        let reply = call(&app, token, tenant).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.json);
        reply.problem(401);
        assert_eq!(reply.headers["www-authenticate"], "Bearer", "{what}");
    }

    // A scheme other than Bearer is refused too.
    let basic = read(
        app.request(Method::GET, "/api/contacts")
            .header("Authorization", "Basic YWxpY2U6cGFzcw==")
            .send()
            .await
            .unwrap(),
    )
    .await;
    basic.problem(401);

    // And the valid token works, so the refusals above are about the tokens.
    let valid = hs256(&claims("alice"), SECRET.as_bytes());
    assert_eq!(call(&app, Some(&valid), tenant).await.status, 200);
}

#[tokio::test]
async fn membership_and_roles_decide_what_a_valid_token_may_do() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    app.add_member(tenant, "vera", "viewer").await;
    app.add_member(tenant, "mo", "member").await;
    let owner = app.user("alice", tenant);
    let created = owner.contact("Ada", "+14155552671").await;
    let path = format!("/api/contacts/{}", created["id"].as_str().unwrap());

    // Not a member: 403.
    app.user("eve", tenant)
        .get("/api/contacts")
        .await
        .problem(403);

    // A viewer reads but every write is 403 and changes nothing.
    let viewer = app.user("vera", tenant);
    viewer.get("/api/contacts").await.ok(200);
    viewer.get(&path).await.ok(200);
    viewer
        .post(
            "/api/contacts",
            &json!({ "name": "V", "phone": "+14155552672" }),
        )
        .await
        .problem(403);
    viewer
        .patch(&path, &json!({ "name": "V" }))
        .await
        .problem(403);
    viewer.delete(&path).await.problem(403);
    viewer
        .post(
            "/api/contacts/import",
            &json!([{ "name": "V", "phone": "+14155552673" }]),
        )
        .await
        .problem(403);
    assert_eq!(app.live_contacts(tenant).await, 1);
    assert_eq!(owner.get(&path).await.ok(200)["name"], "Ada");

    // A member writes.
    app.user("mo", tenant).contact("Mo", "+14155552674").await;

    // No tenant named anywhere: 400; a malformed one: 400.
    let nowhere = herald_tests::User {
        tenant: None,
        ..app.user("alice", tenant)
    };
    assert_eq!(
        nowhere.get("/api/contacts").await.problem(400)["type"],
        "https://herald.dev/problems/tenant-required"
    );
    let reply = read(
        app.request(Method::GET, "/api/contacts")
            .bearer_auth(&owner.token)
            .header("X-Tenant-ID", "not-a-uuid")
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.problem(400);

    // The token's own tenant claim works when nothing else names one.
    let claimed = herald_tests::token("alice", Some(tenant), 600);
    let reply = read(
        app.request(Method::GET, "/api/contacts")
            .bearer_auth(claimed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.ok(200)["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn jwks_tokens_are_verified_with_pinned_algorithms_and_cached_keys() {
    let jwks = FakeServer::serve_json(serde_json::from_str(JWKS).unwrap()).await;
    let app = TestApp::spawn_with(JwtConfig {
        hs256_secret: None,
        jwks_url: Some(format!("{}/.well-known/jwks.json", jwks.url)),
        issuer: Some("https://issuer.example".into()),
        audience: Some("herald".into()),
    })
    .await;
    let tenant = app.tenant("alice").await;

    let good = json!({ "sub": "alice", "exp": get_current_timestamp() + 600,
                       "iss": "https://issuer.example", "aud": "herald" });
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();

    let rs256 = sign(with_kid(Algorithm::RS256, "rsa-1"), &good, &rsa);
    let es256 = sign(with_kid(Algorithm::ES256, "ec-1"), &good, &ec);
    assert_eq!(call(&app, Some(&rs256), tenant).await.status, 200);
    assert_eq!(call(&app, Some(&es256), tenant).await.status, 200);

    // Algorithm confusion: an HS256 token whose "secret" is the RSA public key.
    let confused = sign(
        with_kid(Algorithm::HS256, "rsa-1"),
        &good,
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    // An RSA key used for a PS256 token, a token naming the EC key with RS256, an unknown kid.
    let ps256 = sign(with_kid(Algorithm::PS256, "rsa-1"), &good, &rsa);
    let mismatched = sign(with_kid(Algorithm::RS256, "ec-1"), &good, &rsa);
    let unknown_kid = sign(with_kid(Algorithm::RS256, "rsa-9"), &good, &rsa);
    let wrong_iss = sign(
        with_kid(Algorithm::RS256, "rsa-1"),
        &json!({ "sub": "alice", "exp": get_current_timestamp() + 600, "iss": "https://evil.example", "aud": "herald" }),
        &rsa,
    );
    let wrong_aud = sign(
        with_kid(Algorithm::RS256, "rsa-1"),
        &json!({ "sub": "alice", "exp": get_current_timestamp() + 600, "iss": "https://issuer.example", "aud": "other" }),
        &rsa,
    );
    let no_iss = sign(
        with_kid(Algorithm::RS256, "rsa-1"),
        &json!({ "sub": "alice", "exp": get_current_timestamp() + 600, "aud": "herald" }),
        &rsa,
    );
    for (what, token) in [
        ("HS256 signed with the RSA public key", confused),
        ("PS256", ps256),
        ("RS256 naming an EC key", mismatched),
        ("unknown kid", unknown_kid),
        ("wrong issuer", wrong_iss),
        ("wrong audience", wrong_aud),
        ("missing issuer", no_iss),
    ] {
        let reply = call(&app, Some(&token), tenant).await;
        assert_eq!(reply.status, 401, "{what}: {}", reply.json);
    }

    // Keys were fetched once for all of the above: the unknown kid's refetch is rate-limited
    // and everything else came from the cache.
    assert_eq!(jwks.hits(), 1, "JWKS fetched {} times", jwks.hits());
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_fails_even_when_hs256_is_enabled() {
    let jwks = FakeServer::serve_json(serde_json::from_str(JWKS).unwrap()).await;
    let app = TestApp::spawn_with(JwtConfig {
        hs256_secret: Some(SECRET.into()),
        jwks_url: Some(jwks.url.clone()),
        ..JwtConfig::default()
    })
    .await;
    let tenant = app.tenant("alice").await;
    let confused = sign(
        with_kid(Algorithm::HS256, "rsa-1"),
        &claims("alice"),
        &EncodingKey::from_secret(RSA_PUBLIC),
    );
    call(&app, Some(&confused), tenant).await.problem(401);
}

/// A 401 problem whose detail names `why`, with a Bearer challenge.
#[track_caller]
fn refused(reply: &herald_tests::Reply, what: &str, why: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.json);
    let detail = reply.problem(401)["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(why), "{what}: {}", reply.json);
    assert_eq!(reply.headers["www-authenticate"], "Bearer", "{what}");
}

fn now() -> u64 {
    get_current_timestamp()
}

/// RFC 7519 §4.1.5 and §4.1.6: a token is not accepted before its `nbf`, nor when it says it
/// was issued after now, each with the leeway `exp` has; and it is accepted once its `nbf`
/// has come (a refusal is not remembered).
#[tokio::test]
async fn nbf_and_iat_in_the_future_are_refused_beyond_the_leeway() {
    let clock = Clock::adjustable();
    let app = TestApp::spawn_config(|c| c.jwt_clock = clock.clone()).await;
    let tenant = app.tenant("alice").await;
    let token = |extra: Value| {
        let mut claims = claims("alice");
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        hs256(&claims, SECRET.as_bytes())
    };

    let early = token(json!({ "nbf": now() + 3600 }));
    refused(
        &call(&app, Some(&early), tenant).await,
        "nbf in an hour",
        "nbf",
    );
    let issued_later = token(json!({ "iat": now() + 3600 }));
    refused(
        &call(&app, Some(&issued_later), tenant).await,
        "iat in an hour",
        "iat",
    );
    // Within the leeway both pass, as an exp that long gone would.
    let skewed = token(json!({ "nbf": now() + LEEWAY - 10, "iat": now() + LEEWAY - 10 }));
    assert_eq!(call(&app, Some(&skewed), tenant).await.status, 200);
    let expired_within_leeway = hs256(
        &json!({ "sub": "alice", "exp": now() - (LEEWAY - 10) }),
        SECRET.as_bytes(),
    );
    assert_eq!(
        call(&app, Some(&expired_within_leeway), tenant)
            .await
            .status,
        200
    );

    // An hour on, the early token is good (the token expires in ten minutes of real time,
    // hence a fresh one with the same nbf).
    let early = hs256(
        &json!({ "sub": "alice", "exp": now() + 7200, "nbf": now() + 3600 }),
        SECRET.as_bytes(),
    );
    refused(
        &call(&app, Some(&early), tenant).await,
        "nbf in an hour",
        "nbf",
    );
    clock.advance(Duration::from_secs(3600));
    assert_eq!(call(&app, Some(&early), tenant).await.status, 200);
}

/// The same checks for an RS256 token from a JWKS; and a token that is too large or of
/// another type is refused before any key is fetched for it.
#[tokio::test]
async fn jwks_tokens_are_held_to_their_nbf_size_and_type() {
    let jwks = FakeServer::serve_json(serde_json::from_str(JWKS).unwrap()).await;
    let clock = Clock::adjustable();
    let app = TestApp::spawn_config(|c| {
        c.jwt = JwtConfig {
            hs256_secret: None,
            jwks_url: Some(format!("{}/.well-known/jwks.json", jwks.url)),
            issuer: Some("https://issuer.example".into()),
            audience: Some("herald".into()),
        };
        c.jwt_clock = clock.clone();
    })
    .await;
    let tenant = app.tenant("alice").await;
    let rsa = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
    let rs256 = |extra: Value, header: Header| {
        let mut claims = json!({ "sub": "alice", "exp": now() + 7200,
                                 "iss": "https://issuer.example", "aud": "herald" });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        sign(header, &claims, &rsa)
    };
    let rsa_1 = || with_kid(Algorithm::RS256, "rsa-1");

    let oversized = rs256(json!({ "pad": "x".repeat(MAX_TOKEN_BYTES) }), rsa_1());
    refused(
        &call(&app, Some(&oversized), tenant).await,
        "oversized",
        "longer than",
    );
    let dpop = rs256(
        json!({}),
        Header {
            typ: Some("dpop+jwt".into()),
            ..rsa_1()
        },
    );
    refused(
        &call(&app, Some(&dpop), tenant).await,
        "typ dpop+jwt",
        "typ",
    );
    assert_eq!(jwks.hits(), 0, "keys fetched for tokens refused unread");

    let early = rs256(json!({ "nbf": now() + 3600 }), rsa_1());
    refused(
        &call(&app, Some(&early), tenant).await,
        "RS256 nbf in an hour",
        "nbf",
    );
    let issued_later = rs256(json!({ "iat": now() + 3600 }), rsa_1());
    refused(
        &call(&app, Some(&issued_later), tenant).await,
        "RS256 iat in an hour",
        "iat",
    );
    // RFC 9068 access tokens are JWTs too, whichever way their type is spelt.
    for typ in ["JWT", "jwt", "at+jwt", "application/at+jwt"] {
        let typed = rs256(
            json!({}),
            Header {
                typ: Some(typ.into()),
                ..rsa_1()
            },
        );
        assert_eq!(call(&app, Some(&typed), tenant).await.status, 200, "{typ}");
    }

    clock.advance(Duration::from_secs(3600));
    assert_eq!(call(&app, Some(&early), tenant).await.status, 200);
    assert_eq!(jwks.hits(), 1, "JWKS fetched {} times", jwks.hits());
}

/// Size and type for HS256 tokens: an otherwise valid token over the cap, or one whose
/// `typ` says it is something else, is refused; `typ: JWT` and no `typ` at all pass.
#[tokio::test]
async fn oversized_tokens_and_other_types_are_refused() {
    let app = TestApp::spawn().await;
    let tenant = app.tenant("alice").await;
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let typed = |typ: Option<&str>, claims: &Value| {
        let header = Header {
            typ: typ.map(str::to_owned),
            ..Header::new(Algorithm::HS256)
        };
        sign(header, claims, &secret)
    };
    let padded = |pad: usize| json!({ "sub": "alice", "exp": now() + 600, "pad": "x".repeat(pad) });

    let fits = typed(Some("JWT"), &padded(MAX_TOKEN_BYTES * 3 / 4 - 300));
    assert!(fits.len() <= MAX_TOKEN_BYTES);
    assert_eq!(call(&app, Some(&fits), tenant).await.status, 200);
    let oversized = typed(Some("JWT"), &padded(MAX_TOKEN_BYTES * 3 / 4));
    assert!(oversized.len() > MAX_TOKEN_BYTES);
    refused(
        &call(&app, Some(&oversized), tenant).await,
        "oversized",
        "longer than",
    );

    assert_eq!(
        call(&app, Some(&typed(None, &claims("alice"))), tenant)
            .await
            .status,
        200
    );
    for bogus in ["JWS", "dpop+jwt", "logout+jwt", "text/plain"] {
        let token = typed(Some(bogus), &claims("alice"));
        refused(&call(&app, Some(&token), tenant).await, bogus, "typ");
    }
}

/// A token that passed is remembered, but never past its `exp`: moved past it (and the
/// leeway) well within the memory's recheck interval, the same token is refused.
#[tokio::test]
async fn a_remembered_token_is_refused_once_past_its_exp() {
    let clock = Clock::adjustable();
    let app = TestApp::spawn_config(|c| c.jwt_clock = clock.clone()).await;
    let tenant = app.tenant("alice").await;
    let token = hs256(
        &json!({ "sub": "alice", "exp": now() + 5 }),
        SECRET.as_bytes(),
    );
    assert_eq!(call(&app, Some(&token), tenant).await.status, 200);
    assert_eq!(call(&app, Some(&token), tenant).await.status, 200);
    clock.advance(Duration::from_secs(5 + LEEWAY + 1));
    assert!(5 + LEEWAY + 1 < herald::auth::jwt::RECHECK_AFTER.as_secs());
    refused(
        &call(&app, Some(&token), tenant).await,
        "remembered, past exp",
        "expired",
    );
}

/// The tenant comes from `X-Tenant-ID`, else `tenantId`, else the token's claim; a request
/// that names it ambiguously (two different tenants, or a malformed id anywhere) is 400.
#[tokio::test]
async fn the_tenant_is_named_once_by_header_query_or_claim() {
    let app = TestApp::spawn().await;
    let a = app.tenant("alice").await;
    let b = app.tenant("bob").await;
    app.add_member(b, "alice", "member").await;
    app.user("alice", a).contact("Ada", "+14155552671").await;
    app.user("alice", b).contact("Bo", "+14155552672").await;
    let names = |reply: &herald_tests::Reply| -> Vec<String> {
        reply.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let plain = herald_tests::token("alice", None, 600);
    let claims_b = herald_tests::token("alice", Some(b), 600);
    let list = |query: &str, token: &str| {
        app.request(Method::GET, &format!("/api/contacts{query}"))
            .bearer_auth(token.to_owned())
    };
    let send = async |req: reqwest::RequestBuilder| read(req.send().await.unwrap()).await;

    assert_eq!(
        names(&send(list(&format!("?tenantId={a}"), &plain)).await),
        ["Ada"]
    );
    assert_eq!(names(&send(list("", &claims_b)).await), ["Bo"]);
    assert_eq!(
        names(&send(list(&format!("?tenantId={a}"), &claims_b)).await),
        ["Ada"],
        "the parameter beats the claim"
    );
    let agreeing = list(&format!("?tenantId={b}"), &plain).header("X-Tenant-ID", b.to_string());
    assert_eq!(names(&send(agreeing).await), ["Bo"]);

    let differing = list(&format!("?tenantId={a}"), &plain).header("X-Tenant-ID", b.to_string());
    send(differing).await.problem(400);
    let malformed_query = list("?tenantId=", &plain).header("X-Tenant-ID", a.to_string());
    send(malformed_query).await.problem(400);
    send(list("?tenantId=nope", &plain)).await.problem(400);
}
