//! Routing keys: stable 64-bit hashes of router method results.

use serde::Serialize;

/// Hashes a routing key to 64 bits, stable across processes and builds.
///
/// The key's serde encoding is hashed with FNV-1a and mixed; 0 (no key) and
/// `u64::MAX` are reserved, so they map to their neighbours.
pub fn route_key<K: Serialize>(key: Option<K>) -> Option<u64> {
    let bytes = postcard::to_allocvec(&key?).ok()?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finalizer: spreads FNV's weak high bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    Some(match h {
        0 => 1,
        u64::MAX => u64::MAX - 1,
        h => h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hash_stably_and_spread() {
        assert_eq!(route_key(Some("a")), route_key(Some("a".to_string())));
        assert_ne!(route_key(Some("a")), route_key(Some("b")));
        assert_eq!(route_key::<u64>(None), None);
        // Keys land in both halves of the space.
        let high = (0..1000u32)
            .filter(|i| route_key(Some(*i)).unwrap() > u64::MAX / 2)
            .count();
        assert!((400..600).contains(&high), "{high}");
    }
}
