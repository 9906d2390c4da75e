//! Large buffers backed by transparent huge pages.
//!
//! A 100k × 384 arena is 150 MB: with 4 KiB pages, filling it takes ~37,000 page faults; with
//! 2 MiB pages ~75. Linux backs a region with 2 MiB pages when asked (`madvise(MADV_HUGEPAGE)`;
//! on many systems the policy is "only when asked"). Measured with and without (docs/benchmarks.md,
//! "Huge pages", 100k × 384): queries ~8 % faster (fewer TLB misses), a typical reopen 10 %
//! faster, ~7 % more peak memory (the arena rounded to 2 MiB pages).

/// An empty vector with room for `capacity` elements, advised to use huge pages (Linux; an ordinary
/// `Vec::with_capacity` elsewhere or below 4 MiB).
pub fn huge_vec<T>(capacity: usize) -> Vec<T> {
    let mut v = Vec::with_capacity(capacity);
    advise_huge(&mut v);
    v
}

/// Advises the kernel to back the (2 MiB-aligned interior of the) allocation of `v` with huge
/// pages. Changes nothing observable; a refusal is ignored.
#[cfg(target_os = "linux")]
pub fn advise_huge<T>(v: &mut Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity().saturating_mul(std::mem::size_of::<T>());
    if bytes < 2 * HUGE {
        return;
    }
    let start = v.as_mut_ptr() as usize;
    let first = start.div_ceil(HUGE) * HUGE;
    let end = (start + bytes) / HUGE * HUGE;
    if end > first {
        // SAFETY: [first, end) lies inside the vector's own allocation, and MADV_HUGEPAGE only
        // changes how the kernel backs those pages, never their contents or validity.
        unsafe {
            libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE);
        }
    }
}

/// Not Linux: nothing to advise.
#[cfg(not(target_os = "linux"))]
pub fn advise_huge<T>(_v: &mut Vec<T>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_vectors_behave_like_vectors() {
        let mut v: Vec<f32> = huge_vec(3 << 20);
        assert!(v.capacity() >= 3 << 20);
        v.extend((0..3 << 20).map(|i| i as f32));
        assert_eq!(v[12345], 12345.0);
        let mut small: Vec<u8> = huge_vec(10);
        small.push(1);
        assert_eq!(small, [1]);
    }
}
