//! Time arithmetic exactly as the reference (numpy + pandas < 2) does it.
//!
//! All times are signed 64-bit nanoseconds; seconds become nanoseconds the way pandas < 2 does.

pub const NS_PER_MS: i64 = 1_000_000;
pub const NS_PER_US: i64 = 1_000;

/// numpy's `np.round(x, decimals)`: scale, round half to even, unscale.
pub fn np_round(x: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    round_ties_even(x * scale) / scale
}

/// `f64::round_ties_even`, bit for bit, without the library call that baseline x86-64 (no
/// SSE4.1 `roundsd`) turns it into: adding and removing 2^52 rounds to an integer in the
/// default rounding mode, which is half to even. Preprocessing rounds every spike time and
/// sample time this way, millions of them.
#[inline]
pub fn round_ties_even(x: f64) -> f64 {
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    if x.abs() < TWO_52 {
        let c = TWO_52.copysign(x);
        ((x + c) - c).copysign(x)
    } else {
        x
    }
}

/// Seconds → nanoseconds as pandas < 2 converts floats to timedeltas (NaN → `None`).
/// The result is the exact value or 1 ns below it, never above.
pub fn seconds_to_ns(t: f64) -> Option<i64> {
    if !t.is_finite() {
        return None;
    }
    let whole = t.trunc();
    let frac = np_round(t - whole, 9);
    Some(whole as i64 * 1_000_000_000 + (frac * 1e9).trunc() as i64)
}

/// The 1 ms grid row a spike time (seconds) falls in: `trunc(round(t·1000, 6))`.
pub fn spike_row(t: f64) -> i64 {
    np_round(t * 1000.0, 6).trunc() as i64
}

/// Milliseconds of a time in seconds rounded to 6 decimals, as the obs-interval mask uses.
pub fn ms_rounded(t: f64) -> f64 {
    np_round(t * 1000.0, 6)
}

/// Integer division rounding toward negative infinity.
pub fn floor_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b)
}

/// Integer division rounding toward positive infinity.
pub fn ceil_div(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

/// The smallest multiple of `step` that is ≥ `x`.
pub fn ceil_to(x: i64, step: i64) -> i64 {
    ceil_div(x, step) * step
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rounding_matches_the_library_bit_for_bit() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut values = vec![
            0.5, 1.5, 2.5, -0.5, -2.5, -0.3, 0.0, -0.0, 4.5e15, -4.5e15, 1e300,
        ];
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let unit = (x >> 11) as f64 / (1u64 << 53) as f64;
            values.push((unit - 0.5) * 1e7);
            values.push(((unit * 1e6).floor() + 0.5) * if x & 1 == 0 { 1.0 } else { -1.0 });
        }
        for v in values {
            assert_eq!(
                round_ties_even(v).to_bits(),
                v.round_ties_even().to_bits(),
                "{v}"
            );
        }
        assert!(round_ties_even(f64::NAN).is_nan());
    }

    #[test]
    fn numpy_rounding_is_half_to_even() {
        assert_eq!(np_round(0.5, 0), 0.0);
        assert_eq!(np_round(1.5, 0), 2.0);
        assert_eq!(np_round(2.5, 0), 2.0);
        assert_eq!(np_round(1.2345678, 6), 1.234568);
    }

    #[test]
    fn pandas_seconds_conversion() {
        assert_eq!(seconds_to_ns(1.5), Some(1_500_000_000));
        assert_eq!(seconds_to_ns(-0.25), Some(-250_000_000));
        assert_eq!(seconds_to_ns(f64::NAN), None);
        // 0.1 s is not representable; pandas lands on the exact value or 1 ns below.
        let ns = seconds_to_ns(12.3456789).unwrap();
        assert!((12_345_678_899..=12_345_678_900).contains(&ns));
    }

    #[test]
    fn spike_rows_snap_up_within_a_nanosecond() {
        assert_eq!(spike_row(0.0019999999999), 2);
        assert_eq!(spike_row(0.0019), 1);
        assert_eq!(spike_row(0.002), 2);
    }

    #[test]
    fn rounding_divisions() {
        assert_eq!(ceil_div(-7, 5), -1);
        assert_eq!(floor_div(-7, 5), -2);
        assert_eq!(ceil_div(10, 5), 2);
        assert_eq!(ceil_to(-260, 20), -260);
        assert_eq!(ceil_to(-259, 20), -240);
    }
}
