//! Record metadata as held in memory: one allocation per record, keys shared across a
//! collection.
//!
//! A `BTreeMap<String, MetadataValue>` costs a 600-byte node and one allocation per key even for
//! four small entries; at 100k records that was ~80 MB, most of a collection's heap beside its
//! vectors. Packed, the same metadata is the sorted entries in one boxed slice (48 bytes each),
//! with each key an `Arc<str>` taken from the collection's [`KeyInterner`].

use std::collections::HashSet;
use std::sync::Arc;

use ochre_types::{Metadata, MetadataLookup, MetadataValue};

/// One record's metadata: entries sorted by key, no key twice.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PackedMetadata(Box<[(Arc<str>, MetadataValue)]>);

impl PackedMetadata {
    /// Packs `m`, sharing its keys through `keys`.
    pub(crate) fn pack(m: Metadata, keys: &mut KeyInterner) -> Self {
        // A BTreeMap iterates in key order, so the entries come out sorted.
        PackedMetadata(m.into_iter().map(|(k, v)| (keys.intern(&k), v)).collect())
    }

    /// Entries already sorted by key with no key twice (a decoded metadata column), keys from
    /// the collection's interner.
    pub(crate) fn from_sorted(entries: Vec<(Arc<str>, MetadataValue)>) -> Self {
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 < w[1].0),
            "entries out of order"
        );
        PackedMetadata(entries.into_boxed_slice())
    }

    /// The entries, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0.iter().map(|(k, v)| (&**k, v))
    }

    /// The metadata as a map (for results and for merging updates).
    pub(crate) fn unpack(&self) -> Metadata {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }
}

impl MetadataLookup for PackedMetadata {
    fn value(&self, key: &str) -> Option<&MetadataValue> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

/// The metadata keys in use in one collection, each stored once.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyInterner {
    keys: HashSet<Arc<str>>,
    /// Size at which keys no record uses any more are dropped.
    sweep_at: usize,
    /// The keys interned last (at most [`RECENT`]), looked through before the set: records of a
    /// collection mostly share their keys, so most lookups end here without hashing the key.
    /// These also survive a sweep while they are here.
    recent: Vec<Arc<str>>,
}

/// Keys kept in [`KeyInterner::recent`].
const RECENT: usize = 16;

/// Fewest keys worth a sweep.
const FIRST_SWEEP: usize = 1024;

impl KeyInterner {
    /// The shared copy of `key`.
    pub(crate) fn intern(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.recent.iter().find(|k| ***k == *key) {
            return Arc::clone(k);
        }
        let k = self.intern_in_set(key);
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push(Arc::clone(&k));
        k
    }

    fn intern_in_set(&mut self, key: &str) -> Arc<str> {
        if let Some(k) = self.keys.get(key) {
            return Arc::clone(k);
        }
        if self.keys.len() >= self.sweep_at.max(FIRST_SWEEP) {
            // Keys whose records are all gone are held by this set alone. Sweeping only when the
            // set has doubled keeps the cost per new key constant.
            self.keys.retain(|k| Arc::strong_count(k) > 1);
            self.sweep_at = 2 * self.keys.len();
        }
        let k: Arc<str> = Arc::from(key);
        self.keys.insert(Arc::clone(&k));
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn metadata() -> impl Strategy<Value = Metadata> {
        prop::collection::btree_map(
            "[a-e]{0,3}",
            prop_oneof![
                any::<i64>().prop_map(MetadataValue::Int),
                "[a-z]{0,4}".prop_map(MetadataValue::Str),
                any::<bool>().prop_map(MetadataValue::Bool),
            ],
            0..6,
        )
    }

    proptest! {
        /// Packing loses nothing, and every key — present or not — looks up as in the map.
        #[test]
        fn packing_round_trips_and_looks_up_like_the_map(m in metadata(), probe in "[a-f]{0,3}") {
            let mut keys = KeyInterner::default();
            let packed = PackedMetadata::pack(m.clone(), &mut keys);
            prop_assert_eq!(packed.unpack(), m.clone());
            prop_assert_eq!(packed.value(&probe), m.get(&probe));
            for k in m.keys() {
                prop_assert_eq!(packed.value(k), m.get(k));
            }
        }
    }

    #[test]
    fn keys_are_shared_and_unused_ones_swept() {
        let mut keys = KeyInterner::default();
        let a = keys.intern("year");
        let b = keys.intern("year");
        assert!(Arc::ptr_eq(&a, &b));
        // Unique keys whose records are gone are dropped once the set doubles.
        for i in 0..10 * FIRST_SWEEP {
            drop(keys.intern(&format!("k{i}")));
        }
        assert!(keys.keys.len() <= 2 * FIRST_SWEEP, "{}", keys.keys.len());
        assert!(keys.keys.contains("year"), "a key still in use survives");
        assert!(Arc::ptr_eq(&a, &keys.intern("year")));
    }
}
