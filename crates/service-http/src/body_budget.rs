//! A memory budget for request bodies in flight. A large body is held several times over
//! while it is read, parsed, stored and answered; without a bound, a burst of them at once
//! takes the process's memory with it. An authorized request whose body is over
//! `LARGE_BODY_BYTES` waits for its share of the budget before its body is read; small ones
//! never wait.

use std::sync::Arc;

use actix_web::dev::ServiceRequest;
use actix_web::http::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bodies up to this size pass without taking from the budget.
pub const LARGE_BODY_BYTES: usize = 64 * 1024;
/// Bytes of large bodies in flight at once, by default.
pub const DEFAULT_BODY_BUDGET_BYTES: usize = 32 * 1024 * 1024;
/// The budget is counted in units of this many bytes.
const UNIT_BYTES: usize = 1024;

/// The budget, shared by a process's HTTP workers.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    units: Arc<Semaphore>,
    total_units: u32,
    /// The size assumed for a body of unknown length (chunked): the body limit.
    max_body_bytes: usize,
}

impl BodyBudget {
    pub fn new(budget_bytes: usize, max_body_bytes: usize) -> Self {
        let total_units = u32::try_from((budget_bytes / UNIT_BYTES).max(1)).unwrap_or(u32::MAX);
        Self {
            units: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            max_body_bytes,
        }
    }

    /// Units a body of `length` bytes (or of unknown length) takes: none when small, never
    /// more than the whole budget (so that every body can pass, alone).
    fn units_for(&self, length: Option<usize>) -> u32 {
        let bytes = length.unwrap_or(self.max_body_bytes).min(self.max_body_bytes);
        if bytes <= LARGE_BODY_BYTES {
            return 0;
        }
        u32::try_from(bytes.div_ceil(UNIT_BYTES))
            .unwrap_or(u32::MAX)
            .min(self.total_units)
    }
}

impl BodyBudget {
    /// Units a request with `headers` takes. An encoded body is counted at the body limit,
    /// which it may reach once decoded whatever its length on the wire.
    fn units_of(&self, headers: &HeaderMap) -> u32 {
        let encoded = headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let length = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok());
        match length {
            Some(0) => 0,
            Some(_) if encoded => self.units_for(None),
            Some(length) => self.units_for(Some(length)),
            None if encoded || headers.contains_key(TRANSFER_ENCODING) => self.units_for(None),
            None => 0,
        }
    }

    /// Waits for `req`'s share of the budget, to be held until its answer is ready; `None`
    /// for a small body. Called once a request is known to be authorized, so that nobody
    /// can hold the budget without credentials.
    pub async fn admit(&self, req: &ServiceRequest) -> Option<OwnedSemaphorePermit> {
        let units = self.units_of(req.headers());
        if units == 0 {
            return None;
        }
        // The semaphore is never closed.
        Arc::clone(&self.units).acquire_many_owned(units).await.ok()
    }
}

/// Waits for `req`'s share of the budget the app holds (`web::Data<BodyBudget>`), if it holds
/// one: what an authorization middleware calls once the caller may go on.
pub async fn admit(req: &ServiceRequest) -> Option<OwnedSemaphorePermit> {
    let budget = req.app_data::<actix_web::web::Data<BodyBudget>>()?.clone();
    budget.admit(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_large_bodies_take_from_the_budget_and_never_more_than_all_of_it() {
        let budget = BodyBudget::new(4 * 1024 * 1024, 1024 * 1024);
        assert_eq!(budget.units_for(Some(0)), 0);
        assert_eq!(budget.units_for(Some(LARGE_BODY_BYTES)), 0);
        assert_eq!(budget.units_for(Some(LARGE_BODY_BYTES + 1)), 65);
        assert_eq!(budget.units_for(Some(1024 * 1024)), 1024);
        assert_eq!(budget.units_for(None), 1024, "unknown length: the body limit");
        assert_eq!(
            budget.units_for(Some(usize::MAX)),
            1024,
            "never more than the limit"
        );
        let small = BodyBudget::new(100 * 1024, 1024 * 1024);
        assert_eq!(
            small.units_for(Some(1024 * 1024)),
            100,
            "never more than the whole budget"
        );
    }

    #[test]
    fn an_encoded_or_chunked_body_counts_at_the_limit_and_a_plain_one_at_its_length() {
        use actix_web::http::header::HeaderValue;
        let budget = BodyBudget::new(4 * 1024 * 1024, 1024 * 1024);
        let headers = |pairs: &[(actix_web::http::header::HeaderName, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), HeaderValue::from_static(value));
            }
            map
        };
        assert_eq!(budget.units_of(&headers(&[])), 0);
        assert_eq!(budget.units_of(&headers(&[(CONTENT_LENGTH, "1000")])), 0);
        assert_eq!(budget.units_of(&headers(&[(CONTENT_LENGTH, "204800")])), 200);
        assert_eq!(
            budget.units_of(&headers(&[(CONTENT_LENGTH, "1000"), (CONTENT_ENCODING, "gzip")])),
            1024
        );
        assert_eq!(
            budget.units_of(&headers(&[
                (CONTENT_LENGTH, "1000"),
                (CONTENT_ENCODING, "identity")
            ])),
            0
        );
        assert_eq!(budget.units_of(&headers(&[(TRANSFER_ENCODING, "chunked")])), 1024);
        assert_eq!(
            budget.units_of(&headers(&[(CONTENT_LENGTH, "0"), (CONTENT_ENCODING, "gzip")])),
            0,
            "no body at all"
        );
    }
}
