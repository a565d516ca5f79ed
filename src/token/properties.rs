//! Properties of the token codec and its validation, checked on generated
//! input: whatever the grant, an issued token verifies to exactly its claims
//! inside its lifetime and to nothing outside it, and no single-byte change
//! (substitution, deletion or insertion) of a valid token is accepted.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::sample::Index;

use super::{Grant, KeySet, TokenError, TokenIssuer, TokenVerifier};
use crate::config::Secret;

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "api";
/// 2030-01-01; times are generated around it.
const EPOCH: i64 = 1_893_456_000;

fn pair(ttl: u64, leeway: u64) -> (TokenIssuer, TokenVerifier) {
    let keys = Arc::new(KeySet::hs256(&Secret::new(
        "property-secret-0123456789abcdef-0123456789",
    )));
    (
        TokenIssuer::new(keys.clone(), ISSUER, AUDIENCE, Duration::from_secs(ttl)),
        TokenVerifier::new(keys, ISSUER, AUDIENCE, Duration::from_secs(leeway)),
    )
}

/// Any non-empty text: usernames, scopes and client ids are whatever the
/// store allowed, and the codec must carry them unchanged.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..24).prop_map(String::from_iter)
}

/// A token issued at a generated time for a generated grant.
#[derive(Debug, Clone)]
struct Case {
    subject: String,
    scope: String,
    client_id: String,
    version: i64,
    issued_at: i64,
    ttl: u64,
}

fn case() -> impl Strategy<Value = Case> {
    (
        text(),
        text(),
        text(),
        any::<i64>(),
        0..10_000_000i64,
        1..100_000u64,
    )
        .prop_map(|(subject, scope, client_id, version, offset, ttl)| Case {
            subject,
            scope,
            client_id,
            version,
            issued_at: EPOCH + offset,
            ttl,
        })
}

fn issue(case: &Case, issuer: &TokenIssuer) -> super::IssuedToken {
    let grant = Grant {
        subject: &case.subject,
        scope: &case.scope,
        client_id: &case.client_id,
        version: case.version,
    };
    issuer.issue(&grant, case.issued_at).unwrap()
}

proptest! {
    #[test]
    fn an_issued_token_verifies_to_exactly_its_claims(case in case()) {
        let (issuer, verifier) = pair(case.ttl, 0);
        let issued = issue(&case, &issuer);
        let claims = verifier.verify(&issued.token, case.issued_at).unwrap();
        prop_assert_eq!(&claims, &issued.claims);
        prop_assert_eq!(&claims.sub, &case.subject);
        prop_assert_eq!(&claims.scope, &case.scope);
        prop_assert_eq!(&claims.client_id, &case.client_id);
        prop_assert_eq!(claims.ver, Some(case.version));
        prop_assert_eq!(claims.exp, case.issued_at + i64::try_from(case.ttl).unwrap());
    }

    #[test]
    fn a_token_is_valid_exactly_within_its_lifetime_and_the_leeway(
        case in case(),
        leeway in 0..120u64,
        offset in -200_000..200_000i64,
    ) {
        let (issuer, verifier) = pair(case.ttl, leeway);
        let issued = issue(&case, &issuer);
        let leeway = i64::try_from(leeway).unwrap();
        let at = case.issued_at + offset;
        let expected = if at + leeway < issued.claims.iat {
            Err(TokenError::NotYetValid)
        } else if at >= issued.claims.exp + leeway {
            Err(TokenError::Expired)
        } else {
            Ok(issued.claims.clone())
        };
        prop_assert_eq!(verifier.verify(&issued.token, at), expected);
    }

    #[test]
    fn no_single_byte_change_is_accepted(
        case in case(),
        at in any::<Index>(),
        byte in 0u8..0x80,
        kind in 0u8..3,
    ) {
        let (issuer, verifier) = pair(case.ttl, 0);
        let token = issue(&case, &issuer).token;
        let mut bytes = token.clone().into_bytes();
        match kind {
            0 => {
                let i = at.index(bytes.len());
                prop_assume!(bytes[i] != byte);
                bytes[i] = byte;
            }
            1 => {
                bytes.remove(at.index(bytes.len()));
            }
            _ => bytes.insert(at.index(bytes.len() + 1), byte),
        }
        // ASCII in, ASCII out: the change always leaves a `&str` to present.
        let changed = String::from_utf8(bytes).unwrap();
        prop_assert_ne!(&changed, &token);
        prop_assert!(
            verifier.verify(&changed, case.issued_at).is_err(),
            "accepted {changed:?}, changed from {token:?}"
        );
    }
}
