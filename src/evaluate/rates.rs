//! Predicted rates as the metrics read them: held-in and held-out neurons as two arrays, in the
//! precision they were produced or stored.
//!
//! A submission file keeps the two neuron groups apart and in float32; a model produces them side
//! by side. Borrowing either layout as it is, instead of joining and widening to one float64
//! array, is what keeps a full-size evaluation from copying half a gigabyte before it starts.
//! Every value is widened to f64 as it is used, so the arithmetic is the reference's float64.

use ndarray::{s, Array3, ArrayView1, ArrayView3};

/// An element type rates may come in: widening to f64 is exact for both.
pub trait Rate: Copy + PartialEq + Send + Sync + Into<f64> + 'static {}

impl Rate for f32 {}
impl Rate for f64 {}

/// Predicted rates of one set of trials: `[trials, T, held-in]` and `[trials, T, held-out]`.
///
/// The neuron order the metrics see is held-in then held-out, as nlb_tools concatenates them.
#[derive(Debug)]
pub struct RatePair<'a, R = f64> {
    pub heldin: ArrayView3<'a, R>,
    pub heldout: ArrayView3<'a, R>,
}

impl<R> Clone for RatePair<'_, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R> Copy for RatePair<'_, R> {}

impl<'a, R: Rate> RatePair<'a, R> {
    /// Borrows held-in and held-out arrays that were read or computed apart.
    pub fn of(heldin: &'a Array3<R>, heldout: &'a Array3<R>) -> Self {
        Self {
            heldin: heldin.view(),
            heldout: heldout.view(),
        }
    }

    /// Views of side-by-side rates `[trials, T, held-in + held-out]`, as a model outputs them.
    ///
    /// Panics if `n_heldin` exceeds the neuron axis.
    pub fn split(joined: ArrayView3<'a, R>, n_heldin: usize) -> Self {
        let (heldin, heldout) = joined.split_at(ndarray::Axis(2), n_heldin);
        Self { heldin, heldout }
    }

    /// The same views for a shorter lifetime. A pair of generic element type cannot be shortened
    /// implicitly (ndarray views of a generic type are invariant), so callers that tie it to
    /// shorter-lived data, such as a target's behaviour, reborrow it.
    pub fn reborrow(&self) -> RatePair<'_, R> {
        RatePair {
            heldin: self.heldin.view(),
            heldout: self.heldout.view(),
        }
    }

    pub fn n_heldin(&self) -> usize {
        self.heldin.len_of(ndarray::Axis(2))
    }

    pub fn n_heldout(&self) -> usize {
        self.heldout.len_of(ndarray::Axis(2))
    }

    /// `(trials, T, all neurons)` of the joined layout the metrics see.
    pub fn dim(&self) -> (usize, usize, usize) {
        let (n, t, a) = self.heldin.dim();
        (n, t, a + self.n_heldout())
    }

    /// Whether both halves cover the same trials and bins.
    pub fn is_aligned(&self) -> bool {
        self.heldin.shape()[..2] == self.heldout.shape()[..2]
    }

    /// The neuron vector of trial `i` at bin `t`, as its held-in and held-out parts.
    pub fn row(&self, i: usize, t: usize) -> (ArrayView1<'a, R>, ArrayView1<'a, R>) {
        (
            self.heldin.slice_move(s![i, t, ..]),
            self.heldout.slice_move(s![i, t, ..]),
        )
    }

    /// Widens row `(i, t)` into `dst` (held-in then held-out), subtracting `shift`.
    pub(crate) fn fill_row(&self, i: usize, t: usize, shift: &[f64], dst: &mut [f64]) {
        let (a, b) = self.row(i, t);
        let (da, db) = dst.split_at_mut(a.len());
        let (sa, sb) = shift.split_at(a.len());
        widen_into(a, sa, da);
        widen_into(b, sb, db);
    }

    /// Adds row `(i, t)` (held-in then held-out), widened, to `dst`.
    pub(crate) fn add_row_to(&self, i: usize, t: usize, dst: &mut [f64]) {
        let (a, b) = self.row(i, t);
        let (da, db) = dst.split_at_mut(a.len());
        add_into(a, da);
        add_into(b, db);
    }

    /// An owned float64 copy, both halves joined: `[trials, T, held-in + held-out]`.
    pub fn to_joined_f64(&self) -> Array3<f64> {
        let (n, t, k) = self.dim();
        let nh = self.n_heldin();
        Array3::from_shape_fn((n, t, k), |(i, b, j)| {
            if j < nh {
                self.heldin[[i, b, j]].into()
            } else {
                self.heldout[[i, b, j - nh]].into()
            }
        })
    }
}

fn add_into<R: Rate>(src: ArrayView1<'_, R>, dst: &mut [f64]) {
    match src.as_slice() {
        Some(src) => {
            for (d, &v) in dst.iter_mut().zip(src) {
                *d += v.into();
            }
        }
        None => {
            for (d, &v) in dst.iter_mut().zip(src.iter()) {
                *d += v.into();
            }
        }
    }
}

fn widen_into<R: Rate>(src: ArrayView1<'_, R>, shift: &[f64], dst: &mut [f64]) {
    match src.as_slice() {
        Some(src) => {
            for ((d, &v), m) in dst.iter_mut().zip(src).zip(shift) {
                *d = v.into() - m;
            }
        }
        None => {
            for ((d, &v), m) in dst.iter_mut().zip(src.iter()).zip(shift) {
                *d = v.into() - m;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_rows_and_joined_copy_agree_with_the_side_by_side_array() {
        let a = Array3::from_shape_fn((2, 3, 5), |(i, t, j)| (i * 100 + t * 10 + j) as f32);
        let pair = RatePair::split(a.view(), 2);
        assert_eq!(
            (pair.n_heldin(), pair.n_heldout(), pair.dim()),
            (2, 3, (2, 3, 5))
        );
        assert!(pair.is_aligned());
        let mut row = [0.0; 5];
        pair.fill_row(1, 2, &[1.0; 5], &mut row);
        assert_eq!(row, [119.0, 120.0, 121.0, 122.0, 123.0]);
        pair.add_row_to(0, 0, &mut row);
        assert_eq!(row, [119.0, 121.0, 123.0, 125.0, 127.0]);
        assert_eq!(pair.to_joined_f64(), a.mapv(f64::from));
    }
}
