use serde::{Deserialize, Serialize};
use strata_digest::Digest;

/// A file-system state: layer diffIDs from bottom to top.
///
/// The same diffID may appear more than once (a merge of two chains that share
/// a base); mounts then keep only the topmost occurrence, which gives the same
/// view (see [`crate::mount_chain`]). Serializes as a JSON array of digests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Chain(pub Vec<Digest>);

impl Chain {
    /// The empty file system (`FROM scratch`).
    pub fn empty() -> Self {
        Chain(Vec::new())
    }

    /// Puts a layer on top.
    pub fn push(&mut self, diff_id: Digest) {
        self.0.push(diff_id);
    }

    /// A copy of this chain with one more layer on top.
    pub fn with(&self, diff_id: Digest) -> Chain {
        let mut chain = self.clone();
        chain.push(diff_id);
        chain
    }

    /// `self` with all of `upper`'s layers on top of it (a merge).
    pub fn concat(&self, upper: &Chain) -> Chain {
        Chain(self.0.iter().chain(&upper.0).copied().collect())
    }

    /// The layers, bottom first.
    pub fn layers(&self) -> &[Digest] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The OCI ChainID: the bottom diffID, then `sha256(parent + " " + diffID)`
    /// for each layer above. `None` for the empty chain.
    pub fn chain_id(&self) -> Option<Digest> {
        let mut layers = self.0.iter();
        let mut id = *layers.next()?;
        for diff_id in layers {
            id = strata_digest::sha256(format!("{id} {diff_id}"));
        }
        Some(id)
    }
}

impl From<Vec<Digest>> for Chain {
    fn from(layers: Vec<Digest>) -> Self {
        Chain(layers)
    }
}

impl FromIterator<Digest> for Chain {
    fn from_iter<I: IntoIterator<Item = Digest>>(iter: I) -> Self {
        Chain(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_digest::sha256;

    #[test]
    fn push_concat_and_serde() {
        let (a, b, c) = (sha256("a"), sha256("b"), sha256("c"));
        let mut base = Chain::empty();
        base.push(a);
        let left = base.with(b);
        let merged = left.concat(&Chain(vec![a, c]));
        assert_eq!(merged.layers(), &[a, b, a, c]);
        assert_eq!(base.len(), 1);
        let json = serde_json::to_string(&left).unwrap();
        assert_eq!(json, format!("[\"{a}\",\"{b}\"]"));
        assert_eq!(serde_json::from_str::<Chain>(&json).unwrap(), left);
    }

    #[test]
    fn chain_id_follows_the_oci_definition() {
        let (a, b) = (sha256("a"), sha256("b"));
        assert_eq!(Chain::empty().chain_id(), None);
        assert_eq!(Chain(vec![a]).chain_id(), Some(a));
        assert_eq!(
            Chain(vec![a, b]).chain_id(),
            Some(sha256(format!("{a} {b}")))
        );
        assert_ne!(Chain(vec![a, b]).chain_id(), Chain(vec![b, a]).chain_id());
    }
}
