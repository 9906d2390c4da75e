//! Large buffers: backed by transparent huge pages, and grown without copying.
//!
//! A 100k × 384 arena is 150 MB: with 4 KiB pages, filling it takes ~37,000 page faults; with
//! 2 MiB pages ~75. Linux backs a region with 2 MiB pages when asked (`madvise(MADV_HUGEPAGE)`;
//! on many systems the policy is "only when asked"). Measured with and without (docs/benchmarks.md,
//! "Huge pages", 100k × 384): queries ~8 % faster (fewer TLB misses), a typical reopen 10 %
//! faster, ~7 % more peak memory (the arena rounded to 2 MiB pages).

/// Values an [`Arena`] may hold: plain numbers, for which all-zero bytes are the value zero.
pub trait Plain: Copy + Default + Send + Sync + 'static + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Plain for $t {}
    )*};
}
plain!(f32, i8, u8, u32);

/// From this many bytes of capacity on, an arena lives in its own memory mapping (Linux).
#[cfg(not(test))]
const MAP_FROM_BYTES: usize = 4 << 20;
/// Small in tests, so they cross it.
#[cfg(test)]
const MAP_FROM_BYTES: usize = 8 << 10;

/// Mappings are sized in whole huge pages (only the pages written are ever backed).
const MAP_UNIT: usize = 2 << 20;

/// A growable array of plain numbers for an index's largest parts (vectors, codes), which grows
/// **without copying**: from [`MAP_FROM_BYTES`] on (on Linux), it is an anonymous memory
/// mapping that grows by `mremap`, which moves page tables instead of bytes. A `Vec` that
/// outgrows its allocation copies into a new one, so for a moment it needs both: for a 150 MB
/// arena of vectors, 150 MB more than the data (mimalloc, like most allocators, never remaps).
/// Capacity beyond the length costs address space only, so the mapping doubles. A mapped arena
/// is advised to use huge pages (`MADV_HUGEPAGE`); its memory returns to the system when dropped.
pub struct Arena<T: Plain> {
    ptr: std::ptr::NonNull<T>,
    len: usize,
    cap: usize,
    /// The memory is a mapping of `cap * size_of::<T>()` bytes; otherwise a `Vec`'s allocation
    /// of `cap` elements (or nothing, with `cap` 0).
    mapped: bool,
    /// The mapping starts with a private (copy-on-write) map of a file ([`Arena::map_file`]):
    /// growing it copies into a fresh mapping instead of remapping.
    file: bool,
}

// SAFETY: an arena owns its memory exclusively, like a `Vec<T>`, and `T` is `Send + Sync`.
unsafe impl<T: Plain> Send for Arena<T> {}
// SAFETY: as above; shared access only reads.
unsafe impl<T: Plain> Sync for Arena<T> {}

impl<T: Plain> Default for Arena<T> {
    fn default() -> Self {
        Arena {
            ptr: std::ptr::NonNull::dangling(),
            len: 0,
            cap: 0,
            mapped: false,
            file: false,
        }
    }
}

impl<T: Plain> From<Vec<T>> for Arena<T> {
    /// Takes over the vector's allocation (no copy).
    fn from(v: Vec<T>) -> Self {
        let mut v = std::mem::ManuallyDrop::new(v);
        Arena {
            // SAFETY: a Vec's pointer is never null (dangling when it has no allocation).
            ptr: unsafe { std::ptr::NonNull::new_unchecked(v.as_mut_ptr()) },
            len: v.len(),
            cap: v.capacity(),
            mapped: false,
            file: false,
        }
    }
}

impl Arena<f32> {
    /// Appends the little-endian IEEE-754 binary32 values in `bytes` (a trailing part shorter than
    /// four bytes is ignored): on a little-endian machine, one copy of the bytes.
    pub fn extend_from_le_bytes(&mut self, bytes: &[u8]) {
        let n = bytes.len() / 4;
        self.reserve(n);
        #[cfg(target_endian = "little")]
        // SAFETY: the reserve made room for `n` more values, `n * 4` bytes past `len`; every bit
        // pattern is an f32; a byte copy needs no alignment; `bytes` is borrowed, so it cannot
        // overlap memory past `len`, which no reference reaches.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.as_ptr().add(self.len).cast::<u8>(),
                n * 4,
            );
        }
        #[cfg(not(target_endian = "little"))]
        for (i, c) in bytes.chunks_exact(4).enumerate() {
            // SAFETY: `i < n`, inside the room the reserve made.
            unsafe {
                self.ptr
                    .as_ptr()
                    .add(self.len + i)
                    .write(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        self.len += n;
    }
}

impl<T: Plain> Extend<T> for Arena<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, items: I) {
        let items = items.into_iter();
        self.reserve(items.size_hint().0);
        for x in items {
            self.push(x);
        }
    }
}

impl<T: Plain> Clone for Arena<T> {
    fn clone(&self) -> Self {
        let mut a = Arena::with_capacity(self.len);
        a.extend_from_slice(self);
        a
    }
}

impl<T: Plain> std::ops::Deref for Arena<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the first `len` elements are initialised and owned by the arena.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Plain> std::ops::DerefMut for Arena<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as for `deref`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Plain> std::fmt::Debug for Arena<T>
where
    T: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Plain> Drop for Arena<T> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<T: Plain> Arena<T> {
    /// An empty arena with room for `capacity` elements.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut a = Arena::default();
        a.reserve_exact(capacity);
        a
    }

    /// `len` zeros (fresh memory is zero already: nothing is written, so no page is touched).
    pub fn zeroed(len: usize) -> Self {
        let bytes = len.saturating_mul(std::mem::size_of::<T>());
        if cfg!(target_os = "linux") && bytes >= MAP_FROM_BYTES {
            let mut a = Arena::with_capacity(len);
            a.len = len;
            a
        } else {
            Arena::from(vec![T::default(); len])
        }
    }

    /// What [`Prefault::run`] needs to fault in this arena's memory from another thread while
    /// this one fills it: `None` unless the arena is its own mapping (Linux, large).
    pub fn prefault(&self) -> Option<Prefault> {
        (self.mapped && !self.file).then(|| Prefault {
            addr: self.ptr.as_ptr() as usize,
            bytes: self.cap * std::mem::size_of::<T>(),
        })
    }

    /// `len` elements read from `file` at byte `offset` (a multiple of the page size), with room
    /// for `capacity` in all, as a private copy-on-write mapping: the file's pages in the page
    /// cache are used as they are (nothing is copied, and no fresh memory is zeroed, until an
    /// element is written), and the room past them is fresh memory. Growing past `capacity`
    /// copies into a fresh mapping. Not Linux: the elements are read into memory.
    ///
    /// # Errors
    /// The file is shorter than `offset` plus the elements, `offset` is not page-aligned, or the
    /// mapping (or the read) fails.
    ///
    /// # Safety
    /// While the arena lives, no one may truncate the file (a page mapped past its end faults
    /// with SIGBUS) or write to it in place (unwritten elements would change). Replacing the
    /// file by a rename is fine: the mapping keeps the old one.
    pub unsafe fn map_file(
        file: &std::fs::File,
        offset: u64,
        len: usize,
        capacity: usize,
    ) -> std::io::Result<Arena<T>> {
        let size = std::mem::size_of::<T>();
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
        let bytes = len
            .checked_mul(size)
            .ok_or_else(|| invalid("arena too large"))?;
        let end = offset
            .checked_add(bytes as u64)
            .ok_or_else(|| invalid("arena too large"))?;
        if file.metadata()?.len() < end {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "file shorter than the arena",
            ));
        }
        if !cfg!(target_os = "linux") || bytes < MAP_FROM_BYTES {
            let mut a = Arena::with_capacity(capacity.max(len));
            a.resize(len, T::default());
            // SAFETY: any bytes are a valid `T` (plain numbers); the slice is the arena's own.
            let dst = unsafe { std::slice::from_raw_parts_mut(a.ptr.as_ptr().cast::<u8>(), bytes) };
            read_exact_at(file, dst, offset)?;
            return Ok(a);
        }
        let page = map::page_size();
        if !offset.is_multiple_of(page as u64) {
            return Err(invalid("offset is not page-aligned"));
        }
        let cap_bytes = capacity
            .max(len)
            .checked_mul(size)
            .and_then(|b| b.checked_next_multiple_of(MAP_UNIT))
            .ok_or_else(|| invalid("arena too large"))?;
        let file_bytes = bytes
            .checked_next_multiple_of(page)
            .ok_or_else(|| invalid("arena too large"))?;
        let ptr = map::map_file(file, offset, file_bytes, cap_bytes)?;
        Ok(Arena {
            // SAFETY: a mapping's address is never null (`map_file` fails otherwise).
            ptr: unsafe { std::ptr::NonNull::new_unchecked(ptr.cast()) },
            len,
            cap: cap_bytes / size,
            mapped: true,
            file: true,
        })
    }

    /// True when some of the elements are still the pages of a file ([`Arena::map_file`]).
    pub fn is_file_backed(&self) -> bool {
        self.file
    }

    /// Elements it can hold without growing.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Room for at least `additional` more elements; grows to exactly what is needed (a mapped
    /// arena: rounded up to whole 2 MiB pages).
    pub fn reserve_exact(&mut self, additional: usize) {
        let need = self.needed(additional);
        if need > self.cap {
            self.grow_to(need);
        }
    }

    /// Room for at least `additional` more elements, at least doubling when it grows.
    pub fn reserve(&mut self, additional: usize) {
        let need = self.needed(additional);
        if need > self.cap {
            self.grow_to(need.max(self.cap.saturating_mul(2)));
        }
    }

    /// The length with `additional` more elements.
    fn needed(&self, additional: usize) -> usize {
        self.len
            .checked_add(additional)
            .unwrap_or_else(|| capacity_overflow())
    }

    /// Appends one element.
    #[inline]
    pub fn push(&mut self, x: T) {
        if self.len == self.cap {
            self.reserve(1);
        }
        // SAFETY: `len < cap`, so the slot is inside the allocation.
        unsafe { self.ptr.as_ptr().add(self.len).write(x) };
        self.len += 1;
    }

    /// Appends the elements of `xs`.
    pub fn extend_from_slice(&mut self, xs: &[T]) {
        self.reserve(xs.len());
        // SAFETY: the reserve made room for `xs.len()` more; `xs` cannot overlap memory past
        // `len`, which no reference reaches.
        unsafe {
            std::ptr::copy_nonoverlapping(xs.as_ptr(), self.ptr.as_ptr().add(self.len), xs.len());
        }
        self.len += xs.len();
    }

    /// Makes the arena `len` long: new elements are `value`, elements past it are dropped.
    pub fn resize(&mut self, len: usize, value: T) {
        if len <= self.len {
            self.len = len;
            return;
        }
        self.reserve(len - self.len);
        let old = self.len;
        self.len = len;
        self[old..].fill(value);
    }

    /// Drops the elements from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Drops every element (the memory stays).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Grows the capacity to `cap` (> the current one).
    fn grow_to(&mut self, cap: usize) {
        let size = std::mem::size_of::<T>();
        let bytes = cap.checked_mul(size).unwrap_or_else(|| capacity_overflow());
        if cfg!(target_os = "linux") && bytes >= MAP_FROM_BYTES {
            let bytes = bytes
                .checked_next_multiple_of(MAP_UNIT)
                .unwrap_or_else(|| capacity_overflow());
            let len = self.len;
            let ptr = if self.mapped && !self.file {
                map::remap(self.ptr.as_ptr().cast(), self.cap * size, bytes)
            } else {
                let fresh = map::map(bytes);
                // SAFETY: the new mapping is `bytes >= len * size` long and disjoint from the
                // old allocation; the old one is released just after.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), fresh.cast::<T>(), self.len);
                }
                self.release();
                fresh
            };
            // SAFETY: a mapping's address is never null (`map` and `remap` fail otherwise).
            self.ptr = unsafe { std::ptr::NonNull::new_unchecked(ptr.cast()) };
            self.len = len;
            self.cap = bytes / size;
            self.mapped = true;
            self.file = false;
            map::advise(ptr, bytes);
        } else {
            let mut v = self.take_vec();
            v.reserve_exact(cap - v.len());
            *self = Arena::from(v);
        }
    }

    /// The elements as a `Vec` (the allocation taken over) when the arena is not mapped; `self`
    /// is left empty.
    fn take_vec(&mut self) -> Vec<T> {
        debug_assert!(!self.mapped);
        let (ptr, len, cap) = (self.ptr, self.len, self.cap);
        self.disown();
        if cap == 0 {
            return Vec::new();
        }
        // SAFETY: an unmapped arena with capacity holds exactly a Vec's allocation.
        unsafe { Vec::from_raw_parts(ptr.as_ptr(), len, cap) }
    }

    /// Frees the memory; the arena is then empty.
    fn release(&mut self) {
        if self.mapped {
            map::unmap(
                self.ptr.as_ptr().cast(),
                self.cap * std::mem::size_of::<T>(),
            );
            self.disown();
        } else {
            drop(self.take_vec());
        }
    }

    /// Makes the arena empty without freeing its memory (the caller has taken or freed it).
    fn disown(&mut self) {
        // Not `*self = ...`: that would drop (free) the old value.
        std::mem::forget(std::mem::take(self));
    }
}

/// An arena's mapping as it was when [`Arena::prefault`] was called: the address range only, no
/// access to the elements.
#[derive(Debug, Clone, Copy)]
pub struct Prefault {
    addr: usize,
    bytes: usize,
}

impl Prefault {
    /// Chunks faulted in per call, so a writer following behind finds its pages ready soon.
    const CHUNK: usize = 4 << 20;
    /// How far ahead of the writer it runs: no more than this is resident before it is needed,
    /// so capacity the writer never reaches (a checkpoint's tombstones size the buffer too) is
    /// mostly never touched.
    const AHEAD: usize = 64 << 20;

    /// Faults the range's pages in (`MADV_POPULATE_WRITE`), front to back, at most
    /// [`Prefault::AHEAD`] bytes past `written` (the bytes the writer has filled), until done,
    /// refused (a kernel before 5.14), or `stop` is set. Filling fresh memory makes the kernel
    /// zero each page on first touch, on the writing thread; done here, on another core, the
    /// zeroing overlaps the writer's own work (the opening of a collection reads the store
    /// meanwhile). The contents never change, whatever the arena has done since: the advice
    /// only faults pages in; a range since unmapped makes it fail, one since reused by other
    /// memory is prefaulted unchanged.
    pub fn run(
        self,
        written: &std::sync::atomic::AtomicUsize,
        stop: &std::sync::atomic::AtomicBool,
    ) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut at = 0;
        while at < self.bytes && !stop.load(Relaxed) {
            if at >= written.load(Relaxed).saturating_add(Self::AHEAD) {
                std::thread::sleep(std::time::Duration::from_micros(200));
                continue;
            }
            let len = Self::CHUNK.min(self.bytes - at);
            if !map::populate(self.addr + at, len) {
                return;
            }
            at += len;
        }
    }
}

/// Fills `buf` from `file` at `offset`.
pub(crate) fn read_exact_at(
    file: &std::fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
    }
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(offset))?;
        f.read_exact(buf)
    }
}

#[cold]
fn capacity_overflow() -> ! {
    panic!("arena capacity overflow")
}

/// The system calls behind a mapped arena: any failure is an out-of-memory condition, reported
/// as the global allocator's would be.
#[cfg(target_os = "linux")]
mod map {
    fn out_of_memory(bytes: usize) -> ! {
        std::alloc::handle_alloc_error(
            std::alloc::Layout::from_size_align(bytes.max(1), 1)
                .unwrap_or(std::alloc::Layout::new::<u8>()),
        )
    }

    /// A fresh zeroed private mapping of `bytes`.
    pub(super) fn map(bytes: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED || p.is_null() {
            out_of_memory(bytes);
        }
        p.cast()
    }

    /// The mapping at `p` of `old` bytes made `new` bytes long (perhaps moved; its contents
    /// kept, the rest zero).
    pub(super) fn remap(p: *mut u8, old: usize, new: usize) -> *mut u8 {
        // SAFETY: `p` and `old` describe exactly one mapping this arena owns; MREMAP_MAYMOVE lets
        // the kernel move it, which the caller accounts for by using the returned address.
        let q = unsafe { libc::mremap(p.cast(), old, new, libc::MREMAP_MAYMOVE) };
        if q == libc::MAP_FAILED || q.is_null() {
            out_of_memory(new);
        }
        q.cast()
    }

    /// The system's page size.
    pub(super) fn page_size() -> usize {
        // SAFETY: sysconf reads a constant of the system.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    }

    /// A region of `cap_bytes` whose first `file_bytes` (page-rounded, at most `cap_bytes`) are a
    /// private map of `file` from `offset`, the rest fresh zeroed memory.
    pub(super) fn map_file(
        file: &std::fs::File,
        offset: u64,
        file_bytes: usize,
        cap_bytes: usize,
    ) -> std::io::Result<*mut u8> {
        use std::os::fd::AsRawFd;
        let offset = libc::off_t::try_from(offset).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "offset too large")
        })?;
        // SAFETY: an anonymous reservation at an address of the kernel's choosing touches no
        // existing memory.
        let region = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap_bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if region == libc::MAP_FAILED || region.is_null() {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: MAP_FIXED replaces the start of the reservation just made, which nothing
        // else uses; `file_bytes <= cap_bytes`.
        let p = unsafe {
            libc::mmap(
                region,
                file_bytes.min(cap_bytes),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            unmap(region.cast(), cap_bytes);
            return Err(e);
        }
        Ok(region.cast())
    }

    /// Unmaps the mapping at `p` of `bytes`.
    pub(super) fn unmap(p: *mut u8, bytes: usize) {
        // SAFETY: `p` and `bytes` describe exactly the region the arena owns (one mapping, or
        // a file's map followed by fresh memory) and no longer uses. A failure (impossible for a valid mapping) would leave it mapped: a leak.
        unsafe {
            libc::munmap(p.cast(), bytes);
        }
    }

    /// Faults in the pages of `[addr, addr + bytes)` as if written, without changing them;
    /// `false` if the kernel refused.
    pub(super) fn populate(addr: usize, bytes: usize) -> bool {
        // SAFETY: MADV_POPULATE_WRITE only faults pages in (zero-filled if never touched, as any
        // first write would find them) and never changes what memory holds; on a range that is
        // not (or no longer) a writable mapping it fails with an error and does nothing.
        unsafe { libc::madvise(addr as *mut libc::c_void, bytes, libc::MADV_POPULATE_WRITE) == 0 }
    }

    /// Advises huge pages for the mapping (ignored if refused).
    pub(super) fn advise(p: *mut u8, bytes: usize) {
        // SAFETY: the range is one mapping the arena owns; the advice changes no contents.
        unsafe {
            libc::madvise(p.cast(), bytes, libc::MADV_HUGEPAGE);
        }
    }
}

/// Not Linux: arenas are never mapped (`grow_to` checks the target first).
#[cfg(not(target_os = "linux"))]
mod map {
    pub(super) fn map(_bytes: usize) -> *mut u8 {
        unreachable!("arenas are mapped only on Linux")
    }
    pub(super) fn remap(_p: *mut u8, _old: usize, _new: usize) -> *mut u8 {
        unreachable!("arenas are mapped only on Linux")
    }
    pub(super) fn unmap(_p: *mut u8, _bytes: usize) {}
    pub(super) fn page_size() -> usize {
        4096
    }
    pub(super) fn map_file(
        _file: &std::fs::File,
        _offset: u64,
        _file_bytes: usize,
        _cap_bytes: usize,
    ) -> std::io::Result<*mut u8> {
        unreachable!("arenas are mapped only on Linux")
    }
    pub(super) fn populate(_addr: usize, _bytes: usize) -> bool {
        false
    }
    pub(super) fn advise(_p: *mut u8, _bytes: usize) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Faulting an arena in from another thread while this one fills it and then grows it past
    /// the prefaulted range (which may move it) changes no element.
    #[test]
    fn prefault_alongside_a_writer_changes_nothing() {
        let rows = 300_000usize;
        let mut a: Arena<f32> = Arena::with_capacity(rows / 2);
        let p = a.prefault();
        assert_eq!(p.is_some(), cfg!(target_os = "linux"));
        let stop = &std::sync::atomic::AtomicBool::new(false);
        let written = &std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            if let Some(p) = p {
                s.spawn(move || p.run(written, stop));
            }
            for i in 0..rows {
                a.push(i as f32);
                written.store(a.len() * 4, std::sync::atomic::Ordering::Relaxed);
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(a.len(), rows);
        assert!(a.iter().enumerate().all(|(i, x)| *x == i as f32));
        // A stale range (the arena has grown since) is still harmless to fault in.
        if let Some(p) = p {
            p.run(
                &std::sync::atomic::AtomicUsize::new(usize::MAX),
                &std::sync::atomic::AtomicBool::new(false),
            );
        }
        assert!(a.iter().enumerate().all(|(i, x)| *x == i as f32));
        // An arena small enough to live in a `Vec` has nothing to prefault.
        assert!(Arena::<f32>::with_capacity(4).prefault().is_none());
    }

    /// A file-backed arena reads the file's values, writes to its own copy (never the file),
    /// appends into the room after them, and keeps every value when it grows past that room.
    #[test]
    fn a_file_backed_arena_is_copy_on_write_and_grows_by_copying() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.bin");
        let page = map::page_size();
        let n = 20_000usize;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut bytes = vec![7u8; page];
        bytes.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        std::fs::write(&path, &bytes).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        // SAFETY: the test's own file, untouched while the arena lives.
        let mut a: Arena<f32> =
            unsafe { Arena::map_file(&file, page as u64, n, n + 10) }.expect("map");
        assert_eq!(a.is_file_backed(), cfg!(target_os = "linux"));
        assert_eq!(a[..], values[..]);
        a[3] = -1.0;
        a.push(0.5);
        let cap = a.capacity();
        while a.len() <= cap {
            a.push(1.5);
        }
        assert!(!a.is_file_backed());
        assert_eq!((a[3], a[4], a[n]), (-1.0, 4.0, 0.5));
        assert_eq!(a[5..n], values[5..]);
        drop(a);
        assert_eq!(
            std::fs::read(&path).expect("read"),
            bytes,
            "the file is never written"
        );
        // Past the file's end, or off a page boundary on Linux, is refused.
        // SAFETY: as above.
        assert!(unsafe { Arena::<f32>::map_file(&file, page as u64, n + 1, 0) }.is_err());
        if cfg!(target_os = "linux") {
            // SAFETY: as above.
            assert!(unsafe { Arena::<f32>::map_file(&file, 4, n, 0) }.is_err());
        }
    }

    /// One step of the arena model test.
    #[derive(Debug, Clone)]
    enum Op {
        Push(u32),
        Extend(Vec<u32>),
        Resize(usize, u32),
        Truncate(usize),
        Reserve(usize),
        ReserveExact(usize),
        Set(usize, u32),
        Clone,
        Clear,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u32>().prop_map(Op::Push),
            proptest::collection::vec(any::<u32>(), 0..3000).prop_map(Op::Extend),
            (0usize..12000, any::<u32>()).prop_map(|(n, v)| Op::Resize(n, v)),
            (0usize..12000).prop_map(Op::Truncate),
            (0usize..6000).prop_map(Op::Reserve),
            (0usize..6000).prop_map(Op::ReserveExact),
            (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Set(i, v)),
            Just(Op::Clone),
            Just(Op::Clear),
        ]
    }

    proptest::proptest! {
        /// An arena behaves as a `Vec` under any sequence of operations, across the size at
        /// which it moves into a mapping (8 KiB in tests) and through remaps.
        #[test]
        fn arenas_behave_like_vectors(ops in proptest::collection::vec(op(), 1..60)) {
            let mut a: Arena<u32> = Arena::default();
            let mut v: Vec<u32> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(x) => { a.push(x); v.push(x); }
                    Op::Extend(xs) => { a.extend_from_slice(&xs); v.extend_from_slice(&xs); }
                    Op::Resize(n, x) => { a.resize(n, x); v.resize(n, x); }
                    Op::Truncate(n) => { a.truncate(n); v.truncate(n); }
                    Op::Reserve(n) => { a.reserve(n); proptest::prop_assert!(a.capacity() >= a.len() + n); }
                    Op::ReserveExact(n) => { a.reserve_exact(n); proptest::prop_assert!(a.capacity() >= a.len() + n); }
                    Op::Set(i, x) => if !v.is_empty() { let i = i % v.len(); a[i] = x; v[i] = x; },
                    Op::Clone => { a = a.clone(); }
                    Op::Clear => { a.clear(); v.clear(); }
                }
                proptest::prop_assert_eq!(&a[..], &v[..]);
                proptest::prop_assert!(a.capacity() >= a.len());
            }
        }
    }

    proptest::proptest! {
        /// Appending stored bytes gives the values decoded one by one, across the move into a
        /// mapping; a torn last value is ignored.
        #[test]
        fn le_bytes_append_as_decoded_values(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4000), 1..8)
        ) {
            let mut a: Arena<f32> = Arena::default();
            let mut v: Vec<u32> = Vec::new();
            for bytes in &chunks {
                a.extend_from_le_bytes(bytes);
                v.extend(bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])));
            }
            // Compared as bits: NaN payloads must survive too.
            let bits: Vec<u32> = a.iter().map(|x| x.to_bits()).collect();
            proptest::prop_assert_eq!(bits, v);
        }
    }

    #[test]
    fn zeroed_arenas_are_zero_at_every_size() {
        for n in [0usize, 1, 100, 4096, 1 << 20] {
            let a: Arena<f32> = Arena::zeroed(n);
            assert_eq!(a.len(), n);
            assert!(a.iter().all(|x| *x == 0.0));
            let b: Arena<i8> = Arena::zeroed(n);
            assert!(b.iter().all(|x| *x == 0));
        }
    }

    #[test]
    fn arenas_take_vectors_over_and_grow_past_them() {
        let mut a = Arena::from((0..1000u32).collect::<Vec<_>>());
        assert_eq!(a[999], 999);
        a.extend_from_slice(&(1000..100_000u32).collect::<Vec<_>>());
        assert!(a.iter().enumerate().all(|(i, x)| *x == i as u32));
        assert!(a.capacity() >= 100_000);
    }
}
