//! The series of a labelled metric, found by label set without a lock.
//!
//! A hash trie that only grows: each node has 16 slots, set once, and a
//! slot whose key differs from the one looked up leads to a child node
//! chosen by the next 4 bits of the hash. Readers only load `OnceLock`s;
//! a new series costs an allocation and the winner of a race to a slot
//! keeps it (losers go one level down, or find their own key there).

use std::sync::OnceLock;

use super::{MetricLabels, labels_hash};

/// Slots per node, and the bits of the hash one level uses.
const FANOUT: usize = 16;
const BITS: u32 = 4;

/// The series of one family, keyed by label set.
pub(crate) struct Family<L, V> {
    root: Node<L, V>,
}

struct Node<L, V> {
    slots: [OnceLock<Box<Slot<L, V>>>; FANOUT],
}

struct Slot<L, V> {
    key: L,
    value: V,
    /// Keys whose hash shares this slot's prefix.
    next: OnceLock<Box<Node<L, V>>>,
}

// === impl Family ===

impl<L: MetricLabels, V> Family<L, V> {
    pub(crate) const fn new() -> Self {
        Self { root: Node::new() }
    }

    /// The value of `key`, made by `make` if there is none yet.
    pub(crate) fn get(&self, key: &L, make: impl FnOnce() -> V) -> &V {
        let hash = labels_hash(key);
        let mut make = Some(make);
        let mut node = &self.root;
        let mut level = 0;
        loop {
            // Past 64 bits, colliding keys share slot 0 of each level: a
            // list.
            let index = if level < u64::BITS / BITS {
                ((hash >> (level * BITS)) as usize) % FANOUT
            } else {
                0
            };
            let slot = node.slots[index].get_or_init(|| {
                let make = make.take().expect("a slot is made at most once per lookup");
                Box::new(Slot {
                    key: key.__copy(),
                    value: make(),
                    next: OnceLock::new(),
                })
            });
            if slot.key.__same(key) {
                return &slot.value;
            }
            node = slot.next.get_or_init(|| Box::new(Node::new()));
            level += 1;
        }
    }
}

// === impl Node ===

impl<L, V> Node<L, V> {
    const fn new() -> Self {
        Self {
            slots: [const { OnceLock::new() }; FANOUT],
        }
    }
}
