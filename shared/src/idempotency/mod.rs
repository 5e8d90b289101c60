//! `Idempotency-Key` on POST, with Stripe's semantics, scoped per tenant.
//!
//! A client that is not sure its POST arrived (a timeout, a dropped connection, a 503)
//! sends it again with the same key and gets the first answer back instead of a second
//! contact, campaign start or webhook test:
//!
//! 1. [`claim`] records the key with the request's [`Fingerprint`] and a lease, in its own
//!    transaction, before the handler runs. The same key with another request is 422; a
//!    retry while the first still holds the lease is 409; a retry after the first finished
//!    replays its stored response (with `Idempotent-Replayed: true`).
//! 2. The handler's first write transaction in the key's tenant does not commit when the
//!    handler says so: it waits in the request's slot ([`Pending`]) until the response is
//!    known, then [`Held::finish`] marks the key committed and stores the response in that
//!    same transaction and commits it. The work and its answer cannot be separated by a
//!    crash, so a retry after one replays the answer.
//! 3. Server errors and 429s roll that transaction back and release the key, so the retry
//!    they invite runs the request afresh. A request that wrote nothing stores its response
//!    on its own.
//!
//! A request that crashed before committing leaves a lease that ends after [`LEASE`]; a
//! retry then runs it. Keys are kept 24 hours, then purged by the scheduler ([`purge`]); an
//! expired key may be used afresh.

pub mod store;

use http::{HeaderName, HeaderValue, StatusCode};
use sha2::{Digest, Sha256};
use store::StoredKey;
pub use store::{PURGE_BATCH, purge};
use uuid::Uuid;

use crate::db::{Conn, Database, Deferred, TenantTx};
use crate::http::problem::Kind;
use crate::http::{Body, Problem, Request, Response};

pub const HEADER: &str = "idempotency-key";
/// Set on a response replayed from a stored one.
pub const REPLAYED: &str = "idempotent-replayed";
/// How long a request holds its key before a retry may take it over, by default. Longer
/// than any request may run (API Gateway gives up after 30 s).
pub const LEASE: std::time::Duration = std::time::Duration::from_secs(60);
pub const MAX_LEN: usize = 255;

/// A key as the client sent it: 1 to 255 visible ASCII characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    pub fn parse(raw: &str) -> Result<Key, Problem> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if ok && !raw.trim().is_empty() {
            Ok(Key(raw.to_owned()))
        } else {
            Err(Key::invalid())
        }
    }

    fn invalid() -> Problem {
        Problem::malformed(format!(
            "the Idempotency-Key header must be 1 to {MAX_LEN} visible ASCII characters"
        ))
    }

    /// The `Idempotency-Key` header, if sent, whatever the route.
    pub fn from_header(req: &Request) -> Result<Option<Key>, Problem> {
        match req.headers().get(HEADER) {
            None => Ok(None),
            Some(value) => {
                let text = value.to_str().map_err(|_| Key::invalid())?;
                Key::parse(text).map(Some)
            }
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The id of the tenant that `sub` creates with `key` (`POST /api/tenants`, which has no
/// tenant yet to keep a key in): derived, so that a retry names the same tenant and finds
/// it made instead of making a second one. Unlike other keys, such a key never expires.
pub fn tenant_id(sub: &str, key: &Key) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"herald tenant\0");
    hash.update((sub.len() as u64).to_be_bytes());
    hash.update(sub.as_bytes());
    hash.update(key.as_str().as_bytes());
    let digest: [u8; 32] = hash.finalize().into();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// What makes two requests "the same": method, path, query string and body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(req: &Request) -> Fingerprint {
        let mut hash = Sha256::new();
        for part in [
            req.method().as_str().as_bytes(),
            req.uri().path().as_bytes(),
            req.uri().query().unwrap_or("").as_bytes(),
        ] {
            // Length-prefixed, so that no two different requests hash the same parts.
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(req.body().as_ref());
        Fingerprint(hash.finalize().into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What [`claim`] decided.
pub enum Claim {
    /// The key is this request's: run it with [`Held::pending`], then [`Held::finish`].
    Run(Held),
    /// An earlier request with this key finished: its response, to send again.
    Replay(Response<Body>),
}

/// A key this request holds.
pub struct Held {
    tenant: Uuid,
    key: Key,
    slot: Deferred,
}

/// Takes `key` for this request in `tx`'s tenant (the caller's membership already proven
/// by opening `tx`), or says why not.
pub async fn claim(
    mut tx: TenantTx,
    key: Key,
    fingerprint: Fingerprint,
    lease: std::time::Duration,
) -> Result<Claim, Problem> {
    let tenant = tx.tenant();
    if store::insert_fresh(&mut tx, key.as_str(), &fingerprint.0, lease).await? {
        tx.commit().await?;
        return Ok(Claim::Run(Held::new(tenant, key)));
    }
    // The upsert locked the existing row, so no other claim changes it under us.
    let stored = store::stored(&mut tx, key.as_str()).await?;
    if stored.fingerprint != fingerprint.0 {
        tx.rollback().await?;
        return Err(Problem::new(
            Kind::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request; use a new key",
        ));
    }
    if let Some(status) = stored.status {
        tx.rollback().await?;
        return Ok(Claim::Replay(replay(stored, status)));
    }
    if stored.held || stored.committed {
        tx.rollback().await?;
        return Err(in_use(stored.held));
    }
    // The holder's lease ended and it committed nothing: it died. This request takes over.
    store::take_over(&mut tx, key.as_str(), lease).await?;
    tx.commit().await?;
    Ok(Claim::Run(Held::new(tenant, key)))
}

/// 409 for a key whose first request is still running (`held`), or finished unrecorded.
fn in_use(held: bool) -> Problem {
    let detail = if held {
        "a request with this Idempotency-Key is in progress; retry after it finishes"
    } else {
        "a request with this Idempotency-Key completed but its response was not recorded; \
         read the resource instead of retrying"
    };
    Problem {
        retry_after_secs: held.then_some(1),
        ..Problem::new(Kind::IdempotencyKeyInUse, detail)
    }
}

impl Held {
    fn new(tenant: Uuid, key: Key) -> Held {
        Held {
            tenant,
            key,
            slot: Deferred::default(),
        }
    }
}

/// The response stored with a key, as the first request got it.
fn replay(stored: StoredKey, status: i16) -> Response<Body> {
    let mut response = Response::new(match stored.body {
        None => Body::Empty,
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Body::Text(text),
            Err(e) => Body::Binary(e.into_bytes()),
        },
    });
    *response.status_mut() =
        StatusCode::from_u16(status as u16).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in stored.headers.map(|h| h.0).unwrap_or_default() {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(name),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(name, value);
        }
    }
    mark_replayed(&mut response);
    response
}

/// Marks `response` as the answer an earlier request with the same key got.
pub fn mark_replayed(response: &mut Response<Body>) {
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
}

/// What a request holding a key carries down to [`crate::App::begin`]: its first write
/// transaction in the key's tenant waits in `slot` for the response (see [`Held::finish`]).
#[derive(Clone)]
pub struct Pending {
    pub tenant: Uuid,
    pub slot: Deferred,
}

impl Held {
    /// What the handler's request carries, so that its write transaction waits for the
    /// response instead of committing.
    pub fn pending(&self) -> Pending {
        Pending {
            tenant: self.tenant,
            slot: self.slot.clone(),
        }
    }

    /// Ends the request. When the handler's transaction waits in the slot, the key is marked
    /// committed and `response` stored in that same transaction, which then commits: a
    /// crash can lose both or neither, never leave the work without its answer. A 5xx or
    /// 429 rolls it back instead and releases the key, so the retry they invite runs afresh.
    /// Without such a transaction, `response` is stored (or the key released) on its own.
    pub async fn finish(
        self,
        db: &Database,
        response: Response<Body>,
    ) -> Result<Response<Body>, Problem> {
        let Some(mut tx) = self.slot.take() else {
            self.record(db, &response).await;
            return Ok(response);
        };
        if releases(response.status()) {
            if let Err(err) = tx.rollback().await {
                tracing::warn!(error = %err, "rolling back a failed keyed request");
            }
            self.release(db).await;
            return Ok(response);
        }
        match store(tx.conn(), &self, &response, true).await {
            Ok(true) => match tx.commit_now().await {
                Ok(()) => Ok(response),
                Err(err) => Err(self.lost(db, err).await),
            },
            // This request outlived its lease and a retry that took the key over answered
            // first: its work stands, this one's is undone.
            Ok(false) => {
                drop(tx);
                Err(Problem {
                    retry_after_secs: Some(1),
                    ..Problem::new(
                        Kind::IdempotencyKeyInUse,
                        "a retry with this Idempotency-Key finished first; retry to get its response",
                    )
                })
            }
            Err(err) => {
                drop(tx);
                Err(self.lost(db, err).await)
            }
        }
    }

    /// The transaction did not commit (as far as this process knows): the key is released
    /// unless the commit went through after all, and the client is told to retry.
    async fn lost(self, db: &Database, err: sqlx::Error) -> Problem {
        tracing::error!(error = %err, "a keyed request's commit failed");
        self.release(db).await;
        Problem::from(err)
    }

    /// Stores `response` for replays; or, for a failure that committed nothing and invites
    /// a retry (5xx, 429), releases the key so that the retry runs. Best effort: a failure
    /// here leaves the key to its lease.
    async fn record(self, db: &Database, response: &Response<Body>) {
        if releases(response.status()) {
            return self.release(db).await;
        }
        let result = async {
            let mut tx = db.begin_service(self.tenant, "idempotency").await?;
            store(tx.conn(), &self, response, false).await?;
            tx.commit().await
        };
        if let Err(err) = result.await {
            tracing::warn!(error = %err, "idempotency key not recorded");
        }
    }

    /// Deletes the key unless work committed under it, so that a retry runs.
    async fn release(self, db: &Database) {
        let result = async {
            let mut tx = db.begin_service(self.tenant, "idempotency").await?;
            sqlx::query(
                "DELETE FROM idempotency_keys \
                 WHERE tenant_id = $1 AND key = $2 AND committed_at IS NULL",
            )
            .bind(self.tenant)
            .bind(&self.key.0)
            .execute(tx.conn())
            .await?;
            tx.commit().await
        };
        if let Err(err) = result.await {
            tracing::warn!(error = %err, "idempotency key not released");
        }
    }
}

/// Failures that commit nothing and invite a retry.
fn releases(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Writes `response` on `held`'s key unless one is stored already; with `committed`, marks
/// the work done under it too. Answers whether it wrote.
async fn store(
    conn: Conn<'_>,
    held: &Held,
    response: &Response<Body>,
    committed: bool,
) -> Result<bool, sqlx::Error> {
    let headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(name, _)| replayable(name.as_str()))
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    let body: &[u8] = response.body().as_ref();
    let written = sqlx::query(
        "UPDATE idempotency_keys SET status = $3, headers = $4, body = $5, \
                committed_at = CASE WHEN $6 THEN now() ELSE committed_at END \
         WHERE tenant_id = $1 AND key = $2 AND status IS NULL",
    )
    .bind(held.tenant)
    .bind(&held.key.0)
    .bind(response.status().as_u16() as i16)
    .bind(sqlx::types::Json(headers))
    .bind(body)
    .bind(committed)
    .execute(conn)
    .await?;
    Ok(written.rows_affected() == 1)
}

/// Headers that describe the result rather than this one delivery of it.
fn replayable(name: &str) -> bool {
    !(name == "x-request-id" || name.starts_with("ratelimit-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(Key::parse("order-42").is_ok());
        assert!(Key::parse(&"k".repeat(255)).is_ok());
        assert!(Key::parse(&"k".repeat(256)).is_err());
        assert!(Key::parse("").is_err());
        assert!(Key::parse("   ").is_err());
        assert!(Key::parse("tab\there").is_err());
        assert!(Key::parse("ünïcode").is_err());
    }
}
