//! int8 codes of the vectors, walked by searches; exact f32 distances re-rank what a walk found.
//!
//! A vector's code is `round(v_i / scale)` with `scale = max |v_i| / 127`, so `v ≈ scale · code`
//! and `q·v ≈ q_scale · v_scale · (q_code · v_code)`, an integer dot product four times denser
//! than f32 in memory.

/// The codes of every node, `dim` per node, and each node's scale.
#[derive(Clone, Default)]
pub(super) struct Codes {
    /// Grown without copying ([`crate::memory::Arena`]).
    codes: crate::memory::Arena<i8>,
    scales: Vec<f32>,
}

impl Codes {
    /// Codes and scales already derived (checkpoint load).
    pub(super) fn from_parts(codes: crate::memory::Arena<i8>, scales: Vec<f32>) -> Self {
        Codes { codes, scales }
    }

    /// Room for `additional` more codes of `dim` entries without reallocating.
    pub(super) fn reserve(&mut self, additional: usize, dim: usize) {
        self.codes.reserve_exact(additional.saturating_mul(dim));
        self.scales.reserve_exact(additional);
    }

    /// Makes room for exactly `rows` codes of `dim` entries: new ones are zero.
    pub(super) fn resize(&mut self, rows: usize, dim: usize) {
        self.reserve(rows.saturating_sub(self.scales.len()), dim);
        self.codes.resize(rows * dim, 0);
        self.scales.resize(rows, 0.0);
    }

    /// Overwrites code `n` with the code of `v`.
    pub(super) fn set_row(&mut self, n: u32, v: &[f32]) {
        let s = n as usize * v.len();
        self.scales[n as usize] = quantize_to(v, &mut self.codes[s..s + v.len()]);
    }

    /// Appends the code of `v`.
    pub(super) fn push(&mut self, v: &[f32]) {
        let scale = quantize_into(v, &mut self.codes);
        self.scales.push(scale);
    }

    /// Node `n`'s code (of `dim` entries).
    #[inline]
    pub(super) fn row(&self, n: u32, dim: usize) -> &[i8] {
        let s = n as usize * dim;
        &self.codes[s..s + dim]
    }

    /// Node `n`'s scale.
    #[inline]
    pub(super) fn scale(&self, n: u32) -> f32 {
        self.scales[n as usize]
    }

    /// True while the codes are a vector file's pages.
    pub(super) fn file_backed(&self) -> bool {
        self.codes.is_file_backed()
    }

    /// All codes, node after node (for prefetching).
    pub(super) fn all(&self) -> &[i8] {
        &self.codes
    }
}

/// Appends the int8 codes of `v` to `out` and returns their scale (`max |v_i| / 127`).
pub(super) fn quantize_into(v: &[f32], out: &mut crate::memory::Arena<i8>) -> f32 {
    let start = out.len();
    out.resize(start + v.len(), 0);
    quantize_to(v, &mut out[start..])
}

/// As [`quantize_into`], writing the codes into `out` (of `v`'s length). Codes are `v_i / scale`
/// rounded half away from zero (done by hand: `f32::round` is a libm call on baseline x86-64,
/// and this loop is most of the work of loading a checkpoint).
pub(super) fn quantize_to(v: &[f32], out: &mut [i8]) -> f32 {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let inv = 1.0 / scale;
    for (o, x) in out.iter_mut().zip(v) {
        let y = (x * inv).clamp(-127.0, 127.0);
        // `as` truncates toward zero, so adding ±0.5 first rounds half away from zero.
        *o = (y + 0.5f32.copysign(y)) as i8;
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_half_away_from_zero_and_scale_to_the_largest_entry() {
        let mut out = crate::memory::Arena::default();
        let scale = quantize_into(&[254.0, -127.0, 1.0, 0.0], &mut out);
        assert_eq!(scale, 2.0);
        assert_eq!(out[..], [127, -64, 1, 0]);
        let zero = quantize_into(&[0.0, 0.0], &mut out);
        assert_eq!((zero, &out[4..]), (1.0, &[0i8, 0][..]));
    }
}
