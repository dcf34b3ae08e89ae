//! The two tiers of cache keys, both through the versioned encoder of
//! [`strata_digest::key`] with domains of their own.
//!
//! - the **definition key** of a vertex is its id and the effective keys of its inputs:
//!   known before anything runs, so a fully cached graph runs nothing;
//! - the **content key** is its id and a digest its op computes once the inputs exist
//!   (the files a COPY reads), so a vertex whose inputs changed in ways it does not read
//!   still hits.
//!
//! A vertex's *effective key* — what its dependents compose — is its content key if its
//! op gave one, else its definition key; the cache records it next to the value, so a
//! definition hit hands dependents the same key the original run did.

use strata_digest::{key::encode, Digest};

pub const DEFINITION_DOMAIN: &str = "scheduler/definition";
pub const CONTENT_DOMAIN: &str = "scheduler/content";

/// `id` plus its inputs' effective keys, in input order.
pub fn definition(id: &Digest, input_keys: &[Digest]) -> Digest {
    encode(DEFINITION_DOMAIN, &(id, input_keys))
}

/// `id` plus the digest its op computed from what it reads.
pub fn content(id: &Digest, content: &Digest) -> Digest {
    encode(CONTENT_DOMAIN, &(id, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_digest::sha256;

    /// Pins both keys: a change here invalidates every cache; make it on purpose.
    #[test]
    fn golden_keys() {
        let id = sha256(b"vertex");
        let a = sha256(b"a");
        assert_eq!(
            definition(&id, &[a]).to_string(),
            "sha256:aedf111286b38f2cc1b958237dc1703a92bbcb1333c95490cce1b04dde770b11",
        );
        assert_eq!(
            content(&id, &a).to_string(),
            "sha256:e29480ab87b0c0c2912a7364f5ab8831f5b7f21819628ee091cd0ed4688449ef"
        );
    }

    #[test]
    fn tiers_and_inputs_are_distinct() {
        let id = sha256(b"vertex");
        let a = sha256(b"a");
        let b = sha256(b"b");
        assert_ne!(definition(&id, &[a]), content(&id, &a));
        assert_ne!(definition(&id, &[a, b]), definition(&id, &[b, a]));
        assert_ne!(definition(&id, &[]), definition(&id, &[a]));
        assert_ne!(definition(&id, &[a]), definition(&a, &[a]));
    }
}
