//! The vectors of a graph's nodes, in one contiguous arena indexed by node, with the per-node
//! norms distances need.

use ochre_types::Space;

use crate::distance::Kernels;
use crate::memory::Arena;

/// Node vectors and their norms.
#[derive(Clone, Default)]
pub(super) struct Rows {
    dim: usize,
    /// Grown without copying ([`Arena`]).
    data: Arena<f32>,
    /// `1 / (‖v‖ + 1e-32)` per node (cosine only; 1.0 otherwise).
    inv_norms: Vec<f32>,
    /// `‖v‖²` per node (exact), for approximate L2 from an approximate dot product.
    norms2: Vec<f32>,
}

impl Rows {
    pub(super) fn new(dim: usize) -> Self {
        Rows {
            dim,
            ..Rows::default()
        }
    }

    /// Rows already in node order with their norms derived (checkpoint load).
    pub(super) fn from_parts(
        dim: usize,
        data: Arena<f32>,
        inv_norms: Vec<f32>,
        norms2: Vec<f32>,
    ) -> Self {
        Rows {
            dim,
            data,
            inv_norms,
            norms2,
        }
    }

    /// Room for `additional` more rows without reallocating.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.data.reserve_exact(additional.saturating_mul(self.dim));
        self.inv_norms.reserve_exact(additional);
        self.norms2.reserve_exact(additional);
    }

    /// Makes the arena `rows` rows long: new rows are zero, rows past it are dropped.
    pub(super) fn resize(&mut self, rows: usize) {
        // Grown by exactly what is needed, not doubled (the arena is most of an index).
        self.reserve(rows.saturating_sub(self.inv_norms.len()));
        self.data.resize(rows * self.dim, 0.0);
        self.inv_norms.resize(rows, 0.0);
        self.norms2.resize(rows, 0.0);
    }

    /// Overwrites row `n` (vector and norms).
    pub(super) fn set_row(&mut self, n: u32, v: &[f32], inv_norm: f32, norm2: f32) {
        let s = n as usize * self.dim;
        self.data[s..s + self.dim].copy_from_slice(v);
        self.inv_norms[n as usize] = inv_norm;
        self.norms2[n as usize] = norm2;
    }

    /// Appends a row.
    pub(super) fn push(&mut self, v: &[f32], inv_norm: f32, norm2: f32) {
        self.data.extend_from_slice(v);
        self.inv_norms.push(inv_norm);
        self.norms2.push(norm2);
    }

    /// Node `n`'s vector.
    #[inline]
    pub(super) fn row(&self, n: u32) -> &[f32] {
        let s = n as usize * self.dim;
        &self.data[s..s + self.dim]
    }

    #[inline]
    pub(super) fn inv_norm(&self, n: u32) -> f32 {
        self.inv_norms[n as usize]
    }

    #[inline]
    pub(super) fn norm2(&self, n: u32) -> f32 {
        self.norms2[n as usize]
    }

    /// True while the arena is a vector file's pages.
    pub(super) fn file_backed(&self) -> bool {
        self.data.is_file_backed()
    }

    /// Every row, node after node, to change in place (the caller sets the norms after).
    pub(super) fn all_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Every row, node after node (for prefetching).
    pub(super) fn all(&self) -> &[f32] {
        &self.data
    }
}

/// `1 / (‖v‖ + 1e-32)` for cosine, 1.0 for the other spaces (which never divide by a norm).
pub(super) fn inv_norm(kernels: &Kernels, space: Space, v: &[f32]) -> f32 {
    inv_norm_from_norm2(space, kernels.dot(v, v))
}

/// [`inv_norm`] of a vector whose `v·v` is `norm2` (the same bits: the norm is `sqrt(v·v)`).
#[inline]
pub(super) fn inv_norm_from_norm2(space: Space, norm2: f32) -> f32 {
    match space {
        Space::Cosine => 1.0 / (norm2.sqrt() + 1e-32),
        Space::L2 | Space::Ip => 1.0,
    }
}
