//! Distance kernels.
//!
//! Each kernel has a portable version (plain loops over fixed-width chunks, which the compiler
//! turns into SSE2 code on x86-64) and SIMD versions chosen at run time: AVX-512 (F + BW + VL) and
//! AVX2+FMA on x86-64, NEON on aarch64. Property tests check every variant the CPU supports
//! against exact scalar results.

use ochre_types::Space;

/// Kernels for one space, resolved once per search.
#[derive(Clone, Copy)]
pub struct Kernels {
    dot: fn(&[f32], &[f32]) -> f32,
    l2: fn(&[f32], &[f32]) -> f32,
    dot_i8: fn(&[i8], &[i8]) -> i32,
    name: &'static str,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({})", self.name)
    }
}

impl Kernels {
    /// The best kernels for this CPU.
    pub fn detect() -> Self {
        Self::available()[0]
    }

    /// Every variant this CPU can run, best first (the portable one last).
    pub fn available() -> Vec<Self> {
        let mut out = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vl")
            {
                out.push(Kernels {
                    dot: avx512::dot,
                    l2: avx512::l2_squared,
                    dot_i8: avx512::dot_i8,
                    name: "avx512",
                });
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                out.push(Kernels {
                    dot: avx2::dot,
                    l2: avx2::l2_squared,
                    dot_i8: avx2::dot_i8,
                    name: "avx2+fma",
                });
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                out.push(Kernels {
                    dot: neon::dot,
                    l2: neon::l2_squared,
                    dot_i8: neon::dot_i8,
                    name: "neon",
                });
            }
        }
        out.push(Self::portable());
        out
    }

    /// The portable kernels.
    pub fn portable() -> Self {
        Kernels {
            dot: dot_portable,
            l2: l2_squared_portable,
            dot_i8: dot_i8_portable,
            name: "portable",
        }
    }

    /// True when SIMD kernels were selected at run time.
    pub fn is_accelerated(&self) -> bool {
        self.name != "portable"
    }

    /// The variant's name (`avx512`, `avx2+fma` or `portable`).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Inner product.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.dot)(a, b)
    }

    /// Squared Euclidean distance.
    #[inline]
    pub fn l2_squared(&self, a: &[f32], b: &[f32]) -> f32 {
        (self.l2)(a, b)
    }

    /// Inner product of int8 codes.
    #[inline]
    pub fn dot_i8(&self, a: &[i8], b: &[i8]) -> i32 {
        (self.dot_i8)(a, b)
    }

    /// Euclidean norm.
    #[inline]
    pub fn norm(&self, a: &[f32]) -> f32 {
        self.dot(a, a).sqrt()
    }

    /// Chroma's distance between a query and a stored vector. `norms` are the vectors' Euclidean
    /// norms (used only by cosine).
    #[inline]
    pub fn distance(&self, space: Space, q: &[f32], q_norm: f32, v: &[f32], v_norm: f32) -> f32 {
        match space {
            Space::L2 => self.l2_squared(q, v),
            Space::Ip => 1.0 - self.dot(q, v),
            Space::Cosine => cosine_from_dot(self.dot(q, v), q_norm, v_norm),
        }
    }
}

/// `1 - q̂·v̂` with `x̂ = x / (‖x‖ + 1e-32)`, as Chroma normalizes.
#[inline]
pub fn cosine_from_dot(dot: f32, q_norm: f32, v_norm: f32) -> f32 {
    1.0 - dot / ((q_norm + 1e-32) * (v_norm + 1e-32))
}

const LANES: usize = 8;

/// Portable inner product (eight independent accumulators so the compiler can vectorize).
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let (x, y) = (
            &a[c * LANES..c * LANES + LANES],
            &b[c * LANES..c * LANES + LANES],
        );
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// Portable int8 inner product (exact in i32 for any dimension below 2^17).
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    const W: usize = 16;
    let mut acc = [0i32; W];
    let (ca, cb) = (a.chunks_exact(W), b.chunks_exact(W));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..W {
            acc[l] += i32::from(x[l]) * i32::from(y[l]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

/// Portable squared Euclidean distance.
pub fn l2_squared_portable(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let chunks = a.len() / LANES;
    for c in 0..chunks {
        let (x, y) = (
            &a[c * LANES..c * LANES + LANES],
            &b[c * LANES..c * LANES + LANES],
        );
        for l in 0..LANES {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for i in chunks * LANES..a.len() {
        let d = a[i] - b[i];
        sum += d * d;
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// # Safety
    /// The caller must have checked that the CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps(v, 1);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s)
    }

    /// # Safety
    /// As [`hsum`]; `a` and `b` have equal lengths (checked by the safe wrappers).
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads 8 floats at i or i + 8, and the loop bounds keep i + 16 <= n.
        unsafe {
            while i + 16 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                    acc1,
                );
                i += 16;
            }
            if i + 8 <= n {
                acc0 =
                    _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
        }
        // SAFETY: same target features as this function.
        let mut sum = unsafe { hsum(_mm256_add_ps(acc0, acc1)) };
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// As [`dot_avx2`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn l2_avx2(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: as in dot_avx2.
        unsafe {
            while i + 16 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(
                    _mm256_loadu_ps(pa.add(i + 8)),
                    _mm256_loadu_ps(pb.add(i + 8)),
                );
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                i += 16;
            }
            if i + 8 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                i += 8;
            }
        }
        // SAFETY: same target features as this function.
        let mut sum = unsafe { hsum(_mm256_add_ps(acc0, acc1)) };
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }

    /// # Safety
    /// As [`dot_avx2`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY: each step reads 16 bytes at i, and the loop keeps i + 16 <= n.
        unsafe {
            while i + 16 <= n {
                let x = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
                let y = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i) as *const __m128i));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(x, y));
                i += 16;
            }
        }
        let lo = _mm256_castsi256_si128(acc);
        let hi = _mm256_extracti128_si256(acc, 1);
        let s = _mm_add_epi32(lo, hi);
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s) + super::dot_i8_portable(&a[i..], &b[i..])
    }

    pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        assert_eq!(a.len(), b.len(), "codes of one index share a dimension");
        // SAFETY: only selected by Kernels::detect after checking avx2 and fma.
        unsafe { dot_i8_avx2(a, b) }
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: only selected by Kernels::detect after checking avx2 and fma.
        unsafe { dot_avx2(a, b) }
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: only selected by Kernels::detect after checking avx2 and fma.
        unsafe { l2_avx2(a, b) }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// Lanes `0..n` set (n ≤ 16).
    fn mask16(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }

    /// # Safety
    /// The CPU supports AVX-512 F, BW and VL (checked by `Kernels::available`); `a` and `b` have
    /// equal lengths (checked by the safe wrappers).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: full loads stay below n by the loop bounds; the tail load is masked to the
        // remaining n - i < 16 lanes, and masked-off lanes are not read.
        unsafe {
            while i + 32 <= n {
                acc0 =
                    _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                    acc1,
                );
                i += 32;
            }
            while i < n {
                let m = mask16((n - i).min(16));
                acc0 = _mm512_fmadd_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                    acc0,
                );
                i += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// # Safety
    /// As [`dot_avx512`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn l2_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: as in dot_avx512.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(
                    _mm512_loadu_ps(pa.add(i + 16)),
                    _mm512_loadu_ps(pb.add(i + 16)),
                );
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                i += 32;
            }
            while i < n {
                let m = mask16((n - i).min(16));
                let d = _mm512_sub_ps(
                    _mm512_maskz_loadu_ps(m, pa.add(i)),
                    _mm512_maskz_loadu_ps(m, pb.add(i)),
                );
                acc0 = _mm512_fmadd_ps(d, d, acc0);
                i += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// # Safety
    /// As [`dot_avx512`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    unsafe fn dot_i8_avx512(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY: full loads read 32 bytes at i with i + 32 <= n; the tail load is masked to the
        // remaining n - i < 32 bytes.
        unsafe {
            while i + 32 <= n {
                let x = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pa.add(i) as *const __m256i));
                let y = _mm512_cvtepi8_epi16(_mm256_loadu_si256(pb.add(i) as *const __m256i));
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
                i += 32;
            }
            if i < n {
                let m = ((1u64 << (n - i)) - 1) as __mmask32;
                let x = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, pa.add(i)));
                let y = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(m, pb.add(i)));
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(x, y));
            }
        }
        _mm512_reduce_add_epi32(acc)
    }

    pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        assert_eq!(a.len(), b.len(), "codes of one index share a dimension");
        // SAFETY: only selected by Kernels::available after checking avx512f, bw and vl.
        unsafe { dot_i8_avx512(a, b) }
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: as in dot_i8.
        unsafe { dot_avx512(a, b) }
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: as in dot_i8.
        unsafe { l2_avx512(a, b) }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    /// # Safety
    /// The CPU supports NEON (checked by `Kernels::available`; part of every aarch64 CPU Linux
    /// runs on); `a` and `b` have equal lengths (checked by the safe wrappers).
    #[target_feature(enable = "neon")]
    unsafe fn dot_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let mut i = 0;
        // SAFETY: every load reads 4 floats at i or i + 4, and the loop bounds keep i + 8 <= n.
        unsafe {
            while i + 8 <= n {
                acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                acc1 = vfmaq_f32(acc1, vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
                i += 8;
            }
        }
        let mut sum = vaddvq_f32(vaddq_f32(acc0, acc1));
        while i < n {
            sum += a[i] * b[i];
            i += 1;
        }
        sum
    }

    /// # Safety
    /// As [`dot_neon`].
    #[target_feature(enable = "neon")]
    unsafe fn l2_neon(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = vdupq_n_f32(0.0);
        let mut acc1 = vdupq_n_f32(0.0);
        let mut i = 0;
        // SAFETY: as in dot_neon.
        unsafe {
            while i + 8 <= n {
                let d0 = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
                let d1 = vsubq_f32(vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
                acc0 = vfmaq_f32(acc0, d0, d0);
                acc1 = vfmaq_f32(acc1, d1, d1);
                i += 8;
            }
        }
        let mut sum = vaddvq_f32(vaddq_f32(acc0, acc1));
        while i < n {
            let d = a[i] - b[i];
            sum += d * d;
            i += 1;
        }
        sum
    }

    /// # Safety
    /// As [`dot_neon`].
    #[target_feature(enable = "neon")]
    unsafe fn dot_i8_neon(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = vdupq_n_s32(0);
        let mut i = 0;
        // SAFETY: each step reads 16 bytes at i, and the loop keeps i + 16 <= n. Products of two
        // i8 fit an i16, and pairwise-adding two of them into an i32 lane cannot overflow.
        unsafe {
            while i + 16 <= n {
                let x = vld1q_s8(pa.add(i));
                let y = vld1q_s8(pb.add(i));
                acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(x), vget_low_s8(y)));
                acc = vpadalq_s16(acc, vmull_high_s8(x, y));
                i += 16;
            }
        }
        vaddvq_s32(acc) + super::dot_i8_portable(&a[i..], &b[i..])
    }

    pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
        assert_eq!(a.len(), b.len(), "codes of one index share a dimension");
        // SAFETY: only selected by Kernels::available after checking neon.
        unsafe { dot_i8_neon(a, b) }
    }

    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: as in dot_i8.
        unsafe { dot_neon(a, b) }
    }

    pub fn l2_squared(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len(), "vectors of one index share a dimension");
        // SAFETY: as in dot_i8.
        unsafe { l2_neon(a, b) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scalar_dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum()
    }

    #[test]
    fn chroma_reference_values() {
        let k = Kernels::detect();
        assert!((k.l2_squared(&[0.1, 0.2], &[1.0, 0.0]) - 0.85).abs() < 1e-6);
        let q = [1.0f32, 0.0];
        let v = [1.0f32, 1.0];
        let d = k.distance(Space::Cosine, &q, k.norm(&q), &v, k.norm(&v));
        assert!((d - 0.29289323).abs() < 1e-6);
        let z = [0.0f32, 0.0];
        assert_eq!(k.distance(Space::Cosine, &z, 0.0, &v, k.norm(&v)), 1.0);
        assert_eq!(
            k.distance(Space::Ip, &[0.0, 1.0], 1.0, &[0.0, 2.0], 2.0),
            -1.0
        );
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn neon_is_chosen_on_aarch64() {
        assert_eq!(Kernels::detect().name(), "neon");
        assert_eq!(Kernels::available().len(), 2, "neon and portable");
    }

    proptest! {
        #[test]
        fn int8_kernels_are_exact(pairs in proptest::collection::vec((any::<i8>(), any::<i8>()), 0..300)) {
            let a: Vec<i8> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<i8> = pairs.iter().map(|p| p.1).collect();
            let exact: i32 = a.iter().zip(&b).map(|(x, y)| i32::from(*x) * i32::from(*y)).sum();
            for k in Kernels::available() {
                prop_assert_eq!(k.dot_i8(&a, &b), exact, "{:?}", k);
            }
        }

        #[test]
        fn kernels_agree_with_scalar(pairs in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..700)) {
            let a: Vec<f32> = pairs.iter().map(|p| p.0).collect();
            let b: Vec<f32> = pairs.iter().map(|p| p.1).collect();
            let exact_dot = scalar_dot(&a, &b);
            let exact_l2: f64 = a.iter().zip(&b).map(|(x, y)| { let d = *x as f64 - *y as f64; d * d }).sum();
            let scale = 1e-4 * (1.0 + a.len() as f64 * 100.0);
            for k in Kernels::available() {
                prop_assert!((k.dot(&a, &b) as f64 - exact_dot).abs() <= scale, "{:?}", k);
                prop_assert!((k.l2_squared(&a, &b) as f64 - exact_l2).abs() <= scale, "{:?}", k);
            }
        }
    }
}
