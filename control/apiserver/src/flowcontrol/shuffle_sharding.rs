//! Shuffle sharding (`k8s.io/apiserver/pkg/util/shufflesharding`): a flow's hash deals it a
//! hand of `handSize` queues out of a deck of `queues`, always the same hand for the same flow,
//! so a heavy flow can crowd only its own few queues and two flows rarely share a whole hand.
//! The hash is upstream's `hashFlowID`: SHA-256 of the flow schema's name, a zero byte and the
//! distinguisher, its first eight bytes read little-endian.

use sha2::{Digest, Sha256};

/// The most bits of hash a deal may use (upstream's `MaxHashBits`).
pub const MAX_HASH_BITS: u32 = 60;

/// How many bits of hash dealing `hand` cards from `deck` takes (upstream's
/// `RequiredEntropyBits`).
pub fn required_entropy_bits(deck: usize, hand: usize) -> u32 {
    ((deck as f64).log2() * hand as f64).ceil() as u32
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dealer {
    deck: usize,
    hand: usize,
}

impl Dealer {
    /// `None` for the shapes upstream refuses (validation refuses them first).
    pub fn new(deck: usize, hand: usize) -> Option<Dealer> {
        let usable = deck > 0
            && hand > 0
            && hand <= deck
            && hand <= 15
            && deck <= 1 << 26
            && required_entropy_bits(deck, hand) <= MAX_HASH_BITS;
        usable.then_some(Dealer { deck, hand })
    }

    /// The hand of queue indices for `hash`, in upstream's order: each card is the remainder of
    /// the hash by the shrinking deck, shifted past the cards already dealt.
    pub fn deal(&self, mut hash: u64) -> Vec<usize> {
        let mut remainders = Vec::with_capacity(self.hand);
        for i in 0..self.hand {
            let size = (self.deck - i) as u64;
            remainders.push((hash % size) as usize);
            hash /= size;
        }
        (0..self.hand)
            .map(|i| {
                let mut card = remainders[i];
                for j in (1..=i).rev() {
                    if card >= remainders[j - 1] {
                        card += 1;
                    }
                }
                card
            })
            .collect()
    }
}

/// Upstream's `hashFlowID(fsName, distinguisher)`.
pub fn hash_flow_id(schema: &str, distinguisher: &str) -> u64 {
    let mut hash = Sha256::new();
    hash.update(schema.as_bytes());
    hash.update([0u8]);
    hash.update(distinguisher.as_bytes());
    let sum = hash.finalize();
    u64::from_le_bytes(sum[..8].try_into().expect("SHA-256 has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Vectors computed with upstream's algorithm (SHA-256 of "workload-low\0alice").
    #[test]
    fn same_flow_same_hand_as_upstream() {
        let hash = hash_flow_id("workload-low", "alice");
        assert_eq!(hash, 11997377664473122677);
        let dealer = Dealer::new(64, 8).unwrap();
        assert_eq!(dealer.deal(hash), [53, 10, 14, 48, 28, 31, 60, 7]);
        assert_eq!(dealer.deal(hash), dealer.deal(hash));
        assert_eq!(
            Dealer::new(128, 6).unwrap().deal(hash),
            [117, 41, 123, 57, 113, 96]
        );
        // Worked by hand: 7 = 3 + 4·1, then 1 = 1 + 3·0; card 1 lies below 3, so it is not shifted.
        assert_eq!(Dealer::new(4, 2).unwrap().deal(7), [3, 1]);
        assert_ne!(hash_flow_id("workload-low", "bob"), hash);
    }

    #[test]
    fn refuses_what_upstream_refuses() {
        assert!(Dealer::new(0, 1).is_none());
        assert!(Dealer::new(4, 5).is_none());
        assert!(Dealer::new(1 << 20, 15).is_none(), "needs 300 bits");
        assert!(Dealer::new(64, 8).is_some());
    }

    proptest! {
        /// A hand holds distinct cards from the deck.
        #[test]
        fn hands_are_distinct_cards(hash in any::<u64>(), deck in 1usize..200, hand in 1usize..8) {
            prop_assume!(hand <= deck);
            if let Some(dealer) = Dealer::new(deck, hand) {
                let cards = dealer.deal(hash);
                prop_assert_eq!(cards.len(), hand);
                let mut sorted = cards.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), hand);
                prop_assert!(cards.iter().all(|&c| c < deck));
            }
        }
    }
}
