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

/// How a router method receives one argument of the component method it
/// routes: by reference (`&T` for an argument of type `T`), or as `&str`
/// for a `String` and `&[T]` for a `Vec<T>`.
#[diagnostic::on_unimplemented(
    message = "router argument `{Self}` does not match the component method's argument `{A}`",
    label = "router methods take each argument of the method by reference: write `&{A}`",
    note = "`&str` is also accepted for a `String` argument, and `&[T]` for a `Vec<T>`"
)]
pub trait RouterArg<'a, A: ?Sized>: Sized {
    /// Borrows the argument.
    fn from_arg(arg: &'a A) -> Self;
}

/// Borrows one argument for a router method as type `T`.
pub fn router_arg<'a, T: RouterArg<'a, A>, A: ?Sized>(arg: &'a A) -> T {
    T::from_arg(arg)
}

/// The type of argument `I` of a method's argument tuple, so the macro can
/// name the type a router argument must borrow.
pub trait ArgAt<const I: usize> {
    /// The argument's type.
    type Arg;
}

macro_rules! arg_at {
    ($all:tt ; $($i:tt $t:ident),+) => {
        $(arg_at!(@one $all $i $t);)+
    };
    (@one ($($all:ident),+) $i:tt $t:ident) => {
        impl<$($all),+> ArgAt<$i> for ($($all,)+) {
            type Arg = $t;
        }
    };
}

arg_at!((A0); 0 A0);
arg_at!((A0, A1); 0 A0, 1 A1);
arg_at!((A0, A1, A2); 0 A0, 1 A1, 2 A2);
arg_at!((A0, A1, A2, A3); 0 A0, 1 A1, 2 A2, 3 A3);
arg_at!((A0, A1, A2, A3, A4); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4);
arg_at!((A0, A1, A2, A3, A4, A5); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4, 5 A5);
arg_at!((A0, A1, A2, A3, A4, A5, A6); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4, 5 A5, 6 A6);
arg_at!((A0, A1, A2, A3, A4, A5, A6, A7); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4, 5 A5, 6 A6, 7 A7);
arg_at!((A0, A1, A2, A3, A4, A5, A6, A7, A8); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4, 5 A5, 6 A6, 7 A7, 8 A8);
arg_at!((A0, A1, A2, A3, A4, A5, A6, A7, A8, A9); 0 A0, 1 A1, 2 A2, 3 A3, 4 A4, 5 A5, 6 A6, 7 A7, 8 A8, 9 A9);

impl<'a, A: ?Sized> RouterArg<'a, A> for &'a A {
    fn from_arg(arg: &'a A) -> Self {
        arg
    }
}

impl<'a> RouterArg<'a, String> for &'a str {
    fn from_arg(arg: &'a String) -> Self {
        arg
    }
}

impl<'a, T> RouterArg<'a, Vec<T>> for &'a [T] {
    fn from_arg(arg: &'a Vec<T>) -> Self {
        arg
    }
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
