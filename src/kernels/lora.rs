//! LoRA: `y = base + s·(x·A)·B`, the in-place form `y += s·(x·A)·B`, and the merge
//! `W + s·A·B`, with CPU references.
//!
//! One dispatch: each workgroup computes `t = x·A` for a tile of rows into shared memory and
//! multiplies it by `B` straight away, so `x·A` never goes to device memory. Shapes: x
//! `[.., in]`, A `[in, r]`, B `[r, out]`, base and y `[.., out]`; rank 1..=128.

use ndarray::{Array2, ArrayView2};

use crate::context::{Backend, Bindings, Context, Dispatch};
use crate::error::{Error, Result};
use crate::kernels::{groups_u32, slot, Fixed, Kind, Op, PipelineKey, Variant};
use crate::tensor::{DType, Tensor};

const OP: &str = "lora";

/// `MODE` bit of the WGSL LoRA kernels: `in`, `r` and `out` are multiples of 4.
const MODE_ALIGNED: u32 = 16;
/// Largest rank the kernel takes (its shared-memory tile of `x·A` holds 16 × 128 values).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let r = wgfuse::kernels::lora::MAX_RANK + 1;
/// let (x, a, b) = (ctx.tensor(&[1.0f32; 2], &[1, 2])?, ctx.tensor(&vec![1.0f32; 2 * r], &[2, r])?, ctx.tensor(&vec![1.0f32; r], &[r, 1])?);
/// assert!(matches!(ctx.lora(&x, &a, &b, 1.0, None), Err(wgfuse::Error::InvalidArgument { .. })));
/// # Ok(()) }
/// ```
pub const MAX_RANK: usize = 128;
const WG: u32 = 256;
/// Workgroup memory of the kernel: `t_sh` and `part` in lora.wgsl.
const SHARED_BYTES: u32 = 2048 * 4 + 1024 * 16;
/// Workgroup memory of the tiled form's first dispatch: `a_s` in lora.wgsl.
const TILED_SHARED_BYTES: u32 = 1088 * 16;
/// k lanes a row group of the tiled form's first dispatch (`T` of `xa` in lora.wgsl).
const TILED_LANES: u32 = 32;
/// k lanes of `xa`'s wide form: 8 k a lane (f16: x read 16 bytes at a time, `in` a multiple of 8).
const TILED_LANES_WIDE: u32 = 16;
/// k per staged tile of A in the tiled form (`XKT` in lora.wgsl).
const TILED_KT: usize = 128;
/// Column chunks (4 columns each) a workgroup of the tiled form's second dispatch may take
/// (`T` of `tb`); [`expand_chunks`] picks one.
pub const EXPAND_WIDTHS: [u32; 3] = [64, 128, 256];
/// Workgroup memory of the skinny form: `sk_part` and `sk_t` in lora.wgsl.
const SKINNY_SHARED_BYTES: u32 = (1024 + 128) * 16;
/// Rows up to which LoRA runs the skinny form.
const SKINNY_MAX_ROWS: usize = 512;
/// Workgroup memory of the cooperative-matrix form: `stage` (8192 f32) and `th` (2048 f16).
const COOP_SHARED_BYTES: u32 = 8192 * 4 + 2048 * 2;

/// What a LoRA dispatch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::lora::{self, Args, Mode};
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 1.0], &[1, 2])?;
/// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
/// let b = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
/// let y = ctx.tensor(&[0.0f32; 2], &[1, 2])?;
/// ctx.lora_with(&Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: Mode::Plain, variant: None })?;
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 4.0]);
/// # Ok(()) }
/// ```
pub enum Mode {
    /// `y = s·(x·A)·B`.
    Plain,
    /// `y = base + s·(x·A)·B`.
    Base,
    /// `y += s·(x·A)·B`.
    InPlace,
    /// `y = W + s·A·B` (`x` unused; `base` is W).
    Merge,
}

/// Arguments of [`encode`].
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::lora::{self, Args, Mode};
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 1.0], &[1, 2])?;
/// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
/// let b = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
/// let y = ctx.tensor(&[0.0f32; 2], &[1, 2])?;
/// let args = Args { x: &x, a: &a, b: &b, base: Some(&y), y: &ctx.tensor(&[0.0f32; 2], &[1, 2])?, scale: 0.5, mode: Mode::Base, variant: None };
/// ctx.lora_with(&args)?;
/// assert_eq!(args.y.to_vec::<f32>()?, vec![1.0, 2.0]);
/// # Ok(()) }
/// ```
pub struct Args<'a> {
    /// Input `[.., in]` (ignored for [`Mode::Merge`]).
    pub x: &'a Tensor,
    /// Down projection `[in, r]`.
    pub a: &'a Tensor,
    /// Up projection `[r, out]`.
    pub b: &'a Tensor,
    /// `[.., out]`: added to the product (Base), or W (Merge).
    pub base: Option<&'a Tensor>,
    /// Output `[.., out]` (read too, for InPlace).
    pub y: &'a Tensor,
    /// Scale `s` (alpha / r in PEFT terms).
    pub scale: f32,
    /// What to compute.
    pub mode: Mode,
    /// Variant to run; `None` picks by shape.
    pub variant: Option<Variant>,
}

/// The variant for `rows` rows and `out` columns, from `cargo xtask tune` on an H200: tiles of
/// 16 rows from 2048 rows up (each B load then serves 16 rows; 4096x4096 r16: 296 µs against
/// 320-540 µs for 4- and 8-row tiles), 4 rows below (512 rows: 19.2 µs against 20.4 and 23.8);
/// when row tiles are too few to fill the GPU (decoding), columns are split over workgroups,
/// each recomputing its rows of `x·A`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let v = wgfuse::kernels::lora::variant(4096, 4096);
/// assert_eq!(v.chunks, 16); // 16-row tiles for many rows
/// # Ok(()) }
/// ```
pub fn variant(rows: usize, out: usize) -> Variant {
    let tm: u32 = if rows >= 2048 { 16 } else { 4 };
    let tiles = tiles_of(rows, tm);
    let per_pass = if tiles < 64 { 64 } else { (WG / (tm / 4)) as u64 };
    let passes = (out.div_ceil(4) as u64).div_ceil(per_pass);
    // Aim for two waves of workgroups over ~128 multiprocessors.
    let want_blocks = 256u64.div_ceil(tiles).max(1);
    let t = passes.div_ceil(want_blocks).max(1);
    Variant { kind: Kind::Plain, wg: WG, threads: t as u32, chunks: tm, mode: 0 }
}

/// The skinny form ([`skinny_variant`]) up to 512 rows (H200, f32 / f16 base add: decoding
/// 15.3 / 15.1 µs against 24.1 / 29.0 for the split-k form; 512x512 r8 13.5 / 13.8 against
/// 20.5 / 24.0; 256x4096 r16 24.3 / 22.5 against 30.2 / 29.3 tiled; 512x4096 28.3 / 26.3
/// against 34.4 / 31.6 tiled), the tiled form ([`tiled_variant`]) above. From `cargo xtask
/// tune` on an H200, rows x 4096 r16 -> 4096 with base, f16 / f32, in one run: 640 rows,
/// the best tiled variant 36.1 / 39.8 µs, the best skinny 37.1 / 46.7, the best one-dispatch
/// or split-k 73.8 / 48.8 ([`variant`], the earlier rule's pick: 144.7 / 75.6); 1024 rows
/// 38.1 / 44.5, 43.9 / 49.5, 90.5 / 51.8; 1536 rows 53.2 / 61.1, 62.2 / 71.9, 127.4 / 84.3;
/// 4096 rows f16 114.1 tiled against 350 one-dispatch (an earlier run). The one-dispatch and
/// split-k forms ([`variant`], [`Kind::Down`]) can be forced.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{lora, Kind};
/// use wgfuse::DType;
/// assert_eq!(lora::variant_for(1, 4096, 4096, DType::F32).kind, Kind::Skinny); // decoding
/// assert_eq!(lora::variant_for(512, 512, 512, DType::F32).kind, Kind::Skinny);
/// assert_eq!(lora::variant_for(640, 4096, 4096, DType::F32).kind, Kind::Project);
/// assert_eq!(lora::variant_for(4096, 4096, 4096, DType::F16).kind, Kind::Project); // many rows: tiled
/// # Ok(()) }
/// ```
///
/// The dtype picks the tiled form's x·A lanes ([`tiled_variant`]).
pub fn variant_for(rows: usize, k_in: usize, out: usize, dtype: DType) -> Variant {
    if rows <= SKINNY_MAX_ROWS {
        skinny_variant(rows, k_in, out, dtype)
    } else {
        tiled_variant(rows, k_in, dtype)
    }
}

/// The tiled form's variant: x·A in row groups of 2 rows ([`MODE_XA_ROWS2`]), and k tiles of
/// 128 per slice (`chunks`) so that the first dispatch has about two workgroups per
/// multiprocessor of a large GPU (~256). The wide x·A (16 k lanes of 8 k; a row tile is then 32
/// rows) runs where it can: f32, and f16 with `in` a multiple of 8 (its x is read 16 bytes at a
/// time).
///
/// From `cargo xtask tune` on an H200, 4096 x 4096 r16 → 4096 with base, one call: the
/// two-row form was faster in all 14 pairs of lanes and k tiles per dtype. It holds 123 / 111
/// registers a thread (f32 / f16) against 191 / 162 for 4 rows (`cargo xtask shader-stats`),
/// so two 256-thread workgroups fit a multiprocessor's 64K registers instead of one.
/// 16 lanes x 16 k tiles (2 slices, 256 workgroups): 84.7 µs f32 / 66.7 µs f16, against 89.8 /
/// 71.5 with 4 rows, 93.5 / 75.9 for 32 k tiles (1 slice) and 87.1 / 69.0 for 8.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::DType;
/// use wgfuse::kernels::lora::{tiled_variant, MODE_XA_ROWS2};
/// let v = tiled_variant(4096, 4096, DType::F16);
/// assert_eq!((v.threads, v.chunks, v.mode), (16, 16, MODE_XA_ROWS2)); // 128 row tiles x 2 slices of 16 k tiles
/// let v = tiled_variant(4096, 4100, DType::F16);
/// assert_eq!((v.threads, v.chunks), (32, 33)); // 256 row tiles x 1 slice
/// # Ok(()) }
/// ```
pub fn tiled_variant(rows: usize, k_in: usize, dtype: DType) -> Variant {
    let lanes = if wide_fits(k_in, dtype) { TILED_LANES_WIDE } else { TILED_LANES };
    let v = Variant { kind: Kind::Project, wg: WG, threads: lanes, chunks: 1, mode: MODE_XA_ROWS2 };
    let row_tiles = tiles_of(rows, xa_rows(&v) * (WG / lanes));
    let k_tiles = k_in.div_ceil(TILED_KT).max(1) as u64;
    let slices = 256u64.div_ceil(row_tiles).clamp(1, k_tiles.min(64));
    Variant { chunks: k_tiles.div_ceil(slices) as u32, ..v }
}

/// Whether the tiled form's wide x·A can run: f32, or f16 with `in` a multiple of 8 (its
/// 16-byte loads of x are whole).
fn wide_fits(k_in: usize, dtype: DType) -> bool {
    dtype == DType::F32 || k_in % 8 == 0
}

/// The skinny form's variant, from `cargo xtask tune` on an H200 (µs, base add, same call):
/// one row a tile up to 128 rows, two above (512x512 r8: 13.5 against 14.9 for one row and
/// 17.2 for four; 256x4096 r16 f16: 22.5 against 24.9; 16 rows: 15.5 against 17.5); 1024
/// threads from 2048 k on (f16 decoding 15.1 against 18.2), 256 below; column blocks for about
/// 32 workgroups, at least 16 column chunks each (decoding: 32 blocks 15.3 µs, 4 blocks 16.3,
/// 256 blocks 25.1). A split over k slices (partial `x·A` into scratch, a second dispatch
/// summing them) was slower at every shape measured (decoding 16.5 against 15.3; 16 rows 22.2
/// against 15.5) and is not kept.
///
/// f32 with up to 16 row tiles and 2048 k or more runs 256 threads and at least 4 column
/// blocks: decoding 1 x 4096 r16 -> 4096 took 15.38 µs at 256 threads and 32 blocks against
/// 16.35 at 1024 (two calls, 300 ms warm-up: 15.25-15.49 at 16 blocks against 16.35-16.58),
/// 16 rows 15.31 at 4 blocks against 15.46; f16 stays at 1024 (decoding 14.24 against 15+ at
/// 256). The native kernels take the dtype-free rule ([`native_variant`]).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::DType;
/// let v = wgfuse::kernels::lora::skinny_variant(1, 4096, 4096, DType::F16);
/// assert_eq!((v.wg, v.chunks, v.threads), (1024, 1, 32)); // decoding: one row, 32 column blocks
/// let v = wgfuse::kernels::lora::skinny_variant(1, 4096, 4096, DType::F32);
/// assert_eq!((v.wg, v.chunks, v.threads), (256, 1, 32));
/// let v = wgfuse::kernels::lora::skinny_variant(16, 4096, 4096, DType::F32);
/// assert_eq!((v.wg, v.chunks, v.threads), (256, 1, 4));
/// let v = wgfuse::kernels::lora::skinny_variant(512, 512, 512, DType::F32);
/// assert_eq!((v.wg, v.chunks, v.threads), (256, 2, 1));
/// # Ok(()) }
/// ```
pub fn skinny_variant(rows: usize, k_in: usize, out: usize, dtype: DType) -> Variant {
    let v = skinny_base(rows, k_in, out);
    let tiles = tiles_of(rows, v.chunks);
    if dtype == DType::F32 && v.wg == 1024 && tiles <= 16 {
        let most = (out.div_ceil(4) as u32 / 16).max(1);
        return Variant { wg: 256, threads: v.threads.max(4).min(most), ..v };
    }
    v
}

/// The skinny rule without the dtype (the native kernels' and f16's).
fn skinny_base(rows: usize, k_in: usize, out: usize) -> Variant {
    let tm = if rows <= 128 { 1 } else { 2 };
    let tiles = tiles_of(rows, tm);
    let wg = if k_in >= 2048 { 1024 } else { 256 };
    let blocks = 32u64.div_ceil(tiles).clamp(1, (out.div_ceil(4) as u64 / 16).max(1));
    Variant { kind: Kind::Skinny, wg, threads: blocks as u32, chunks: tm, mode: 0 }
}

/// `MODE` bit of lora.wgsl's tiled x·A: row groups of 2 rows instead of 4 (half the
/// accumulators and x in flight a thread, so fewer registers and more workgroups a
/// multiprocessor). Set it in a [`Kind::Project`] variant's `mode` to pick that form.
pub const MODE_XA_ROWS2: u32 = 64;

/// Rows of a tiled x·A row group: 2 with [`MODE_XA_ROWS2`], else 4.
fn xa_rows(v: &Variant) -> u32 {
    if v.mode & MODE_XA_ROWS2 != 0 {
        2
    } else {
        4
    }
}

fn tiles_of(rows: usize, tm: u32) -> u64 {
    rows.div_ceil(tm as usize) as u64
}

fn dims(t: &Tensor) -> (usize, usize) {
    (t.rows(), t.last_dim())
}

fn plan(ctx: &Context, a: &Args<'_>, pooled: bool) -> Result<Plan> {
    let dtype = a.y.dtype();
    for t in [Some(a.x), Some(a.a), Some(a.b), a.base, Some(a.y)].into_iter().flatten() {
        ctx.check_same(t, OP)?;
        if t.dtype() != dtype {
            return Err(Error::DTypeMismatch { op: OP, expected: dtype, got: t.dtype() });
        }
    }
    if a.a.shape().len() != 2 || a.b.shape().len() != 2 {
        return Err(Error::ShapeMismatch { op: OP, expected: "A [in, r] and B [r, out]".into(), got: [a.a.shape(), a.b.shape()].concat() });
    }
    let (k_in, rank) = (a.a.shape()[0], a.a.shape()[1]);
    let (rank_b, out) = (a.b.shape()[0], a.b.shape()[1]);
    if rank_b != rank {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("B [{rank}, out]"), got: a.b.shape().to_vec() });
    }
    // t (16 x 128 f32) and the k-slice partials (256 x 4 vec4) live in workgroup memory.
    check_shared(ctx, SHARED_BYTES, "workgroup memory the kernel needs")?;
    if rank > MAX_RANK {
        return Err(Error::InvalidArgument { op: OP, what: format!("rank {rank} is over {MAX_RANK}") });
    }
    if !a.scale.is_finite() {
        return Err(Error::InvalidArgument { op: OP, what: format!("scale must be finite, got {}", a.scale) });
    }
    let rows = if a.mode == Mode::Merge {
        k_in
    } else {
        let (rows, xin) = dims(a.x);
        if xin != k_in {
            return Err(Error::ShapeMismatch { op: OP, expected: format!("x [.., {k_in}]"), got: a.x.shape().to_vec() });
        }
        rows
    };
    let (yrows, yout) = dims(a.y);
    if yrows != rows || yout != out || (a.mode == Mode::Merge && a.y.shape().len() != 2) {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("[{rows} rows, {out}]"), got: a.y.shape().to_vec() });
    }
    match (a.mode, a.base) {
        (Mode::Base | Mode::Merge, Some(b)) if b.shape() != a.y.shape() => {
            return Err(Error::ShapeMismatch { op: OP, expected: format!("{:?}", a.y.shape()), got: b.shape().to_vec() });
        }
        (Mode::Base | Mode::Merge, None) => return Err(Error::InvalidArgument { op: OP, what: "this mode needs a base".into() }),
        _ => {}
    }
    for t in [a.x, a.a, a.b, a.y] {
        if t.len() as u64 >= (u32::MAX / 2) as u64 {
            return Err(Error::TooLarge { op: OP, what: "element count", got: t.len() as u64, limit: (u32::MAX / 2) as u64 });
        }
    }
    let mode = match a.mode {
        Mode::Plain => 0,
        Mode::Base => 1,
        Mode::InPlace => 2,
        Mode::Merge => 3,
    };
    if ctx.backend() == Backend::Native {
        return native_plan(ctx, a, [rows, k_in, rank, out], mode, dtype);
    }
    let mut v = a.variant.unwrap_or_else(|| fit_workgroup(ctx, variant_for(rows, k_in, out, dtype)));
    // ALIGNED (lora.wgsl): every chunk x·A loads is whole, so its partial-chunk code is left out.
    // The tiled x·A keeps its two-row bit.
    let rows_bit = if v.kind == Kind::Project { v.mode & MODE_XA_ROWS2 } else { 0 };
    v.mode = mode | rows_bit | if k_in % 4 == 0 && rank % 4 == 0 && out % 4 == 0 { MODE_ALIGNED } else { 0 };
    if v.kind == Kind::Coop {
        return coop_plan(ctx, a, v, [rows, k_in, rank, out], dtype);
    }
    if matches!(v.kind, Kind::Project | Kind::Expand) {
        return tiled_plan(ctx, a, v, [rows, k_in, rank, out], dtype, pooled);
    }
    if v.kind == Kind::Skinny {
        return skinny_plan(ctx, a, v, [rows, k_in, rank, out], dtype);
    }
    if !matches!(v.chunks, 4 | 8 | 16) || v.wg != WG || v.threads == 0 {
        return Err(Error::InvalidArgument { op: OP, what: format!("variant {v:?}: rows per tile must be 4, 8 or 16, {WG} threads") });
    }
    log::debug!("wgfuse: lora rows {rows} in {k_in} r {rank} out {out} {:?}: {}", dtype, v.describe());
    let chunks = out.div_ceil(4) as u64;
    let tiles = tiles_of(rows, v.chunks);
    // Few row tiles (decoding): narrower column blocks, so more workgroups share the columns.
    let per_pass = if tiles < 64 { 64 } else { (WG / (v.chunks / 4)) as u64 };
    let col_blocks = chunks.div_ceil(v.threads as u64 * per_pass);
    // Few row tiles and a long k axis: split x·A over k (see `down` in lora.wgsl).
    let slices = if v.kind == Kind::Plain || a.mode == Mode::Merge { 1 } else { split_slices(k_in) };
    let params = [rows as u32, k_in as u32, rank as u32, out as u32, a.scale.to_bits(), col_blocks as u32, per_pass as u32, slices as u32];
    let key = |kind| PipelineKey::new(Op::Lora, Variant { kind, ..v }, dtype, ctx.backend());
    let steps = if slices == 1 {
        vec![(key(Kind::Plain), tiles * col_blocks)]
    } else {
        vec![(key(Kind::Down), tiles * slices), (key(Kind::Up), tiles * col_blocks)]
    };
    let scratch_shape = [(tiles * slices) as usize * v.chunks as usize * rank];
    let scratch = match (slices, pooled) {
        (1, _) => None,
        (_, true) => Some(ctx.output(&scratch_shape, DType::F32, OP)?),
        (_, false) => Some(ctx.scratch(&scratch_shape, DType::F32, OP)?),
    };
    Ok(Plan { steps, params, scratch })
}

/// The tiled form (`Kind::Project`): `x·A` per k slice into scratch, then `base + s·t·B`; the
/// merge needs only the second dispatch (its `t` is A). `v.threads` k lanes a row group (32 or
/// 16; a workgroup takes `R·256 / lanes` rows, R = 2 with [`MODE_XA_ROWS2`] in `v.mode`, else
/// 4), `v.chunks` k tiles of 128 a slice (1 to 256; the k slices follow:
/// `ceil(in / 128 / chunks)`, at most 64).
fn tiled_plan(ctx: &Context, a: &Args<'_>, v: Variant, [rows, k_in, rank, out]: [usize; 4], dtype: DType, pooled: bool) -> Result<Plan> {
    let merge = a.mode == Mode::Merge;
    let fit = expand_fit(rank);
    let blocks = match v.kind {
        Kind::Expand if !merge => {
            return Err(Error::InvalidArgument { op: OP, what: "the t·B dispatch alone (Kind::Expand) runs only the merge".into() });
        }
        Kind::Expand if !EXPAND_WIDTHS.contains(&v.threads) || v.wg != WG || !(1..=fit).contains(&v.chunks) => {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!("t·B variant {v:?}: column chunks (threads) must be one of {EXPAND_WIDTHS:?}, 16-row blocks (chunks) 1 to {fit} at rank {rank}, {WG} threads"),
            });
        }
        Kind::Expand => v.chunks,
        _ if !(v.threads == TILED_LANES || (v.threads == TILED_LANES_WIDE && wide_fits(k_in, dtype)))
            || !(1..=256).contains(&v.chunks)
            || v.wg != WG =>
        {
            return Err(Error::InvalidArgument {
                op: OP,
                what: format!(
                    "tiled variant {v:?}: k lanes (threads) must be {TILED_LANES} (or {TILED_LANES_WIDE}; f16 needs in a multiple of 8 for it), k tiles a slice (chunks) 1 to 256, {WG} threads"
                ),
            });
        }
        _ => expand_blocks(rows, rank, out),
    };
    let width = if v.kind == Kind::Expand { v.threads } else { expand_chunks(out) };
    check_shared(ctx, TILED_SHARED_BYTES, "workgroup memory the tiled form needs")?;
    let r4 = rank.div_ceil(4) * 4;
    let tiles = tiles_of(rows, xa_rows(&v) * (WG / v.threads));
    let max_elems = (ctx.info().limits.max_storage_buffer_binding_size / 4).min(u32::MAX as u64 / 2);
    let k_tiles = k_in.div_ceil(TILED_KT).max(1) as u64;
    let mut per_slice = v.chunks as u64;
    let mut slices = if merge { 1 } else { k_tiles.div_ceil(per_slice) };
    while !merge && (slices > 64 || (slices > 1 && slices * (rows * r4) as u64 > max_elems)) {
        per_slice *= 2;
        slices = k_tiles.div_ceil(per_slice);
    }
    let col_blocks = (out.div_ceil(4) as u64).div_ceil(width as u64);
    let params = [rows as u32, k_in as u32, rank as u32, out as u32, a.scale.to_bits(), col_blocks as u32, 0, slices as u32];
    let key = |variant| PipelineKey::new(Op::Lora, variant, dtype, ctx.backend());
    let project = key(Variant { kind: Kind::Project, wg: WG, threads: v.threads, chunks: per_slice as u32, mode: v.mode });
    // t·B is compiled for its rank and `out` (see `Fixed`).
    let fixed = Fixed { rank: rank as u32, out: out as u32 };
    let expand =
        key(Variant { kind: Kind::Expand, wg: WG, threads: width, chunks: blocks, mode: v.mode & !MODE_XA_ROWS2 }).with_fixed(fixed);
    let expand_groups = (rows as u64).div_ceil(16 * blocks as u64) * col_blocks;
    let steps = if merge { vec![(expand, expand_groups)] } else { vec![(project, tiles * slices), (expand, expand_groups)] };
    // The merge's second dispatch reads A, not scratch, but its entry point still binds one.
    let scratch_shape = [if merge { 4 } else { slices as usize * rows * r4 }];
    log::debug!(
        "wgfuse: lora tiled rows {rows} in {k_in} r {rank} out {out} {dtype:?}: {}, {slices} k slices, t·B {blocks} blocks",
        v.describe()
    );
    let scratch = if pooled { ctx.output(&scratch_shape, DType::F32, OP)? } else { ctx.scratch(&scratch_shape, DType::F32, OP)? };
    Ok(Plan { steps, params, scratch: Some(scratch) })
}

/// The skinny form (`Kind::Skinny`): one dispatch of `ceil(rows / chunks)` row tiles times
/// `threads` column blocks (at most one per column chunk), `wg` 256 or 1024 threads.
fn skinny_plan(ctx: &Context, a: &Args<'_>, v: Variant, [rows, k_in, rank, out]: [usize; 4], dtype: DType) -> Result<Plan> {
    let v = skinny_check(ctx, v)?;
    let (per_block, col_blocks) = column_split(out, v.threads);
    let params = [rows as u32, k_in as u32, rank as u32, out as u32, a.scale.to_bits(), col_blocks as u32, per_block as u32, 0];
    // One pipeline for any number of column blocks (a run-time parameter).
    let key = PipelineKey::new(Op::Lora, Variant { threads: 1, ..v }, dtype, ctx.backend());
    log::debug!("wgfuse: lora skinny rows {rows} in {k_in} r {rank} out {out} {dtype:?}: {}", v.describe());
    Ok(Plan { steps: vec![(key, tiles_of(rows, v.chunks) * col_blocks)], params, scratch: None })
}

/// A skinny variant's checks (both backends): 1, 2 or 4 rows a tile, 256 or 1024 threads that
/// the device has, at least one column block, and the workgroup memory.
fn skinny_check(ctx: &Context, v: Variant) -> Result<Variant> {
    let limits = &ctx.info().limits;
    if !matches!(v.chunks, 1 | 2 | 4) || !matches!(v.wg, 256 | 1024) || v.threads == 0 {
        return Err(Error::InvalidArgument {
            op: OP,
            what: format!(
                "skinny variant {v:?}: rows per tile (chunks) must be 1, 2 or 4, threads (column blocks) at least 1, wg 256 or 1024"
            ),
        });
    }
    if v.wg > limits.max_compute_invocations_per_workgroup {
        return Err(Error::TooLarge {
            op: OP,
            what: "threads per workgroup",
            got: v.wg as u64,
            limit: limits.max_compute_invocations_per_workgroup as u64,
        });
    }
    check_shared(ctx, SKINNY_SHARED_BYTES, "workgroup memory the skinny form needs")?;
    Ok(v)
}

/// A rule's skinny pick at 256 threads where the device has fewer than its 1024 a workgroup.
fn fit_workgroup(ctx: &Context, v: Variant) -> Variant {
    if v.kind == Kind::Skinny && v.wg > ctx.info().limits.max_compute_invocations_per_workgroup {
        Variant { wg: 256, ..v }
    } else {
        v
    }
}

/// Column chunks (4 columns each) a workgroup of the tiled form's second dispatch takes: 256
/// (1024 columns) when `out` has that many, 64 below, so that small outputs keep their threads
/// busy. A wider slab reads longer runs of each row: on an H200 (t·B alone, 4096 x 4096 r16,
/// about 256 workgroups each, one call) f32 / f16 took 52.9 / 38.5 µs at 256 chunks and 4
/// blocks, 54.9 / 40.2 at 128 and 8, and 59.6 / 44.3 at 64 and 16.
///
/// ```
/// use wgfuse::kernels::lora::expand_chunks;
/// assert_eq!((expand_chunks(4096), expand_chunks(1024), expand_chunks(512)), (256, 256, 64));
/// ```
pub fn expand_chunks(out: usize) -> u32 {
    if out.div_ceil(4) >= 256 {
        256
    } else {
        64
    }
}

/// 16-row blocks a workgroup of the tiled form's second dispatch (`t·B`, `K` of `tb` in
/// lora.wgsl) takes: a power of two that keeps about 256 workgroups (each loads its B columns
/// once into registers and walks its rows), at most 16 and at most what t's tile in shared
/// memory holds at this rank. The workgroups are [`expand_chunks`] column chunks wide.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::lora::expand_blocks;
/// assert_eq!(expand_blocks(4096, 16, 4096), 4); // 64 tiles of 64 rows x 4 column blocks
/// assert_eq!(expand_blocks(4096, 128, 4096), 2); // t's tile: 32 rows x 128 ranks
/// assert_eq!(expand_blocks(512, 8, 512), 1);
/// # Ok(()) }
/// ```
pub fn expand_blocks(rows: usize, rank: usize, out: usize) -> u32 {
    let groups = tiles_of(rows, 16) * (out.div_ceil(4) as u64).div_ceil(expand_chunks(out) as u64);
    let k = (groups / 256).clamp(1, expand_fit(rank) as u64);
    1 << (63 - k.leading_zeros())
}

/// Most 16-row blocks of t that fit `t4` (1024 vec4) at this rank, at most 16: the largest
/// `chunks` a [`Kind::Expand`] variant may take.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::lora::expand_fit;
/// assert_eq!((expand_fit(16), expand_fit(64), expand_fit(128)), (16, 4, 2));
/// # Ok(()) }
/// ```
pub fn expand_fit(rank: usize) -> u32 {
    (64 / rank.div_ceil(4).max(1)).clamp(1, 16) as u32
}

fn col_blocks_for(tiles: u64, chunks: u64) -> u64 {
    256u64.div_ceil(tiles).clamp(1, chunks.div_ceil(64).max(1))
}

/// The native kernels' variant for `rows` rows, `in` and `out` columns: the skinny form up to
/// 512 rows, as WGSL's rule for f16 ([`skinny_variant`]; on the H200 the native f32 decoding
/// kernel took 14.0 µs at 1024 threads; `lora_<dtype>_skinny<wg>_tm<chunks>`), else the
/// native tiled kernel (`lora_<dtype>`), whose `chunks` is the tile height and `threads` the
/// column blocks (see `native_plan`).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{lora, Kind};
/// let v = lora::native_variant(1, 4096, 4096);
/// assert_eq!((v.kind, v.wg, v.chunks, v.threads), (Kind::Skinny, 1024, 1, 32)); // decoding
/// let v = lora::native_variant(4096, 4096, 4096);
/// assert_eq!((v.kind, v.chunks, v.threads), (Kind::Plain, 16, 1)); // 256 tiles of 16 rows
/// # Ok(()) }
/// ```
pub fn native_variant(rows: usize, k_in: usize, out: usize) -> Variant {
    if rows <= SKINNY_MAX_ROWS {
        return skinny_base(rows, k_in, out);
    }
    let tm = match rows {
        2048.. => 16,
        64.. => 4,
        _ => rows.next_power_of_two().clamp(1, 4),
    };
    let chunks = out.div_ceil(4) as u64;
    let blocks = col_blocks_for(tiles_of(rows, tm as u32), chunks);
    let blocks = chunks.div_ceil(chunks.div_ceil(blocks.max(1)));
    Variant { kind: Kind::Plain, wg: WG, threads: blocks as u32, chunks: tm as u32, mode: 0 }
}

/// The variant `ctx` runs for these sizes: [`variant_for`] for WGSL, [`native_variant`] for
/// the native kernels.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// println!("{}", wgfuse::kernels::lora::variant_on(&ctx, 4096, 4096, 4096, wgfuse::DType::F16).describe());
/// # Ok(()) }
/// ```
pub fn variant_on(ctx: &Context, rows: usize, k_in: usize, out: usize, dtype: DType) -> Variant {
    match ctx.backend() {
        Backend::Native => fit_workgroup(ctx, native_variant(rows, k_in, out)),
        Backend::Wgsl => fit_workgroup(ctx, variant_for(rows, k_in, out, dtype)),
    }
}

/// Whether [`Kind::Coop`] runs these sizes on `ctx`: WGSL kernels, a device with 16 x 16 x 16
/// f16 → f32 cooperative matrices ([`Info::coop_f16`](crate::Info::coop_f16)), f16, rows,
/// `in`, `out` and the rank multiples of 16 (every tile whole), rank at most [`MAX_RANK`].
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let fits = wgfuse::kernels::lora::coop_fits(&ctx, 4096, 4096, 16, 4096, wgfuse::DType::F16);
/// assert_eq!(fits, ctx.info().coop_f16());
/// assert!(!wgfuse::kernels::lora::coop_fits(&ctx, 4096, 4096, 8, 4096, wgfuse::DType::F16)); // rank 8
/// # Ok(()) }
/// ```
pub fn coop_fits(ctx: &Context, rows: usize, k_in: usize, rank: usize, out: usize, dtype: DType) -> bool {
    ctx.backend() == Backend::Wgsl
        && ctx.info().coop_f16()
        && dtype == DType::F16
        && rank <= MAX_RANK
        && [rows, k_in, rank, out].iter().all(|&d| d > 0 && d % 16 == 0)
}

/// The [`Kind::Coop`] variant on `ctx`: 8 subgroups of the device's smallest size a
/// workgroup (its only constant). No default rule picks it: on the H200 (NVIDIA's Vulkan
/// driver 580), 4096 x 4096 r16 → 4096 f16 took 99.7 µs with it against 81.2 for the tiled
/// form, its `x·A` alone 38.8 µs and its `t·B` alone 71.4 (the tiled form's: 38.5 and 42.0):
/// its tile loads from device memory, not its products, are what is slow.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let v = wgfuse::kernels::lora::coop_variant(&ctx);
/// assert_eq!(v.wg, 8 * ctx.info().subgroup_sizes().0);
/// # Ok(()) }
/// ```
pub fn coop_variant(ctx: &Context) -> Variant {
    Variant { kind: Kind::Coop, wg: coop_wg(ctx), threads: 0, chunks: 0, mode: 0 }
}

fn coop_wg(ctx: &Context) -> u32 {
    (8 * ctx.info().subgroup_sizes().0).clamp(8, 1024)
}

/// `TooLarge` when the device's workgroup memory is under `bytes`.
fn check_shared(ctx: &Context, bytes: u32, what: &'static str) -> Result<()> {
    let limit = ctx.info().limits.max_compute_workgroup_storage_size;
    if limit < bytes {
        return Err(Error::TooLarge { op: OP, what, got: bytes as u64, limit: limit as u64 });
    }
    Ok(())
}

/// LoRA on cooperative matrices, one dispatch: a workgroup per 16 rows computes `s·x·A` into
/// shared memory (f16), then `start + t·B` tile by tile (lora_coop.wgsl).
fn coop_plan(ctx: &Context, a: &Args<'_>, v: Variant, [rows, k_in, rank, out]: [usize; 4], dtype: DType) -> Result<Plan> {
    if a.mode == Mode::Merge {
        return Err(Error::InvalidArgument { op: OP, what: "the merge has no x·A: Kind::Coop does not apply".into() });
    }
    if ctx.backend() != Backend::Wgsl || !ctx.info().coop_f16() {
        return Err(Error::MissingFeature {
            what: "LoRA's cooperative-matrix form (Kind::Coop)",
            feature: "EXPERIMENTAL_COOPERATIVE_MATRIX with 16x16x16 f16 -> f32 (WGSL kernels)",
            adapter: ctx.info().adapter.name.clone(),
        });
    }
    if !coop_fits(ctx, rows, k_in, rank, out, dtype) || v.wg != coop_wg(ctx) {
        return Err(Error::InvalidArgument {
            op: OP,
            what: format!(
                "coop variant {v:?} for rows {rows} in {k_in} r {rank} out {out} {dtype:?}: f16; rows, in, r and out multiples of 16; wg {} (8 subgroups)",
                coop_wg(ctx)
            ),
        });
    }
    check_shared(ctx, COOP_SHARED_BYTES, "workgroup memory the cooperative-matrix form needs")?;
    let params = [rows as u32, k_in as u32, rank as u32, out as u32, a.scale.to_bits(), 0, 0, 0];
    let key = PipelineKey::new(Op::Lora, Variant { kind: Kind::Coop, wg: v.wg, threads: 0, chunks: 0, mode: v.mode }, dtype, ctx.backend());
    log::debug!("wgfuse: lora coop rows {rows} in {k_in} r {rank} out {out} {dtype:?}: {}", v.describe());
    Ok(Plan { steps: vec![(key, rows as u64 / 16)], params, scratch: None })
}

/// The native kernels' plan: the skinny form for a forced [`Kind::Skinny`] variant or, unforced,
/// up to 512 rows ([`native_variant`]); else the native tiled kernel: tiles of `tm` rows (16
/// from 2048 rows, 4 from 64, else the rows rounded up to a power of two), column blocks so
/// that about 256 workgroups run when row tiles are few (each block recomputes its rows'
/// `x·A`, a few µs at most), one dispatch. A forced variant of another kind sets `tm` through
/// `chunks` (1..=16) and the column blocks through `threads`.
fn native_plan(ctx: &Context, a: &Args<'_>, [rows, k_in, rank, out]: [usize; 4], mode: u32, dtype: DType) -> Result<Plan> {
    let auto = fit_workgroup(ctx, native_variant(rows, k_in, out));
    let chosen = a.variant.unwrap_or(auto);
    if chosen.kind == Kind::Skinny {
        let v = skinny_check(ctx, chosen)?;
        log::debug!("wgfuse: native lora rows {rows} in {k_in} r {rank} out {out} {dtype:?}: {}", v.describe());
        let (params, groups) = native_launch([rows, k_in, rank, out], a.scale, &Variant { mode, ..v });
        // One pipeline a kernel: the column blocks and the mode are run-time sizes.
        let key = PipelineKey::new(Op::Lora, Variant { threads: 1, mode: 0, ..v }, dtype, Backend::Native);
        return Ok(Plan { steps: vec![(key, groups)], params, scratch: None });
    }
    let tm = a.variant.map_or(auto.chunks, |v| v.chunks) as usize;
    if !(1..=16).contains(&tm) {
        return Err(Error::InvalidArgument { op: OP, what: format!("native variant: rows per tile (chunks) must be 1..=16, got {tm}") });
    }
    let tiles = tiles_of(rows, tm as u32);
    let chunks = out.div_ceil(4) as u64;
    let col_blocks = match a.variant {
        Some(v) if v.threads > 0 => (v.threads as u64).min(chunks),
        _ => col_blocks_for(tiles, chunks),
    };
    let v = Variant { kind: Kind::Plain, wg: WG, threads: col_blocks as u32, chunks: tm as u32, mode };
    log::debug!("wgfuse: native lora rows {rows} in {k_in} r {rank} out {out} {dtype:?}: tm {tm}, {col_blocks} column blocks");
    let (params, groups) = native_launch([rows, k_in, rank, out], a.scale, &v);
    let key = PipelineKey::new(Op::Lora, v, dtype, Backend::Native);
    Ok(Plan { steps: vec![(key, groups)], params, scratch: None })
}

/// The native kernels' sizes (`rows, in, r, out, scale`, then for the tiled kernel rows per
/// tile, for the skinny form ([`Kind::Skinny`]) column blocks, then column chunks per
/// workgroup and the [`Mode`] number) and workgroup count for variant `v` (`chunks`: tile
/// height, `threads`: column blocks, `mode`: the mode) over `[rows, in, r, out]`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{lora, Kind, Variant};
/// let v = Variant { kind: Kind::Plain, wg: 256, threads: 16, chunks: 1, mode: 1 };
/// let (params, groups) = lora::native_launch([1, 4096, 16, 4096], 0.5, &v);
/// assert_eq!((params[5], params[6], groups), (1, 64, 16));
/// let (params, groups) = lora::native_launch([1, 4096, 16, 4096], 0.5, &Variant { kind: Kind::Skinny, ..v });
/// assert_eq!((params[5], params[6], groups), (16, 64, 16));
/// # Ok(()) }
/// ```
pub fn native_launch([rows, k_in, rank, out]: [usize; 4], scale: f32, v: &Variant) -> ([u32; 8], u64) {
    let (per_block, col_blocks) = column_split(out, v.threads);
    let fifth = if v.kind == Kind::Skinny { col_blocks as u32 } else { v.chunks };
    let params = [rows as u32, k_in as u32, rank as u32, out as u32, scale.to_bits(), fifth, per_block as u32, v.mode];
    (params, tiles_of(rows, v.chunks) * col_blocks)
}

/// `out`'s column chunks split into at most `blocks` blocks (at least one, at most one a
/// chunk): the chunks a block and the number of blocks.
fn column_split(out: usize, blocks: u32) -> (u64, u64) {
    let chunks = out.div_ceil(4) as u64;
    let per_block = chunks.div_ceil((blocks as u64).clamp(1, chunks.max(1)));
    (per_block, chunks.div_ceil(per_block))
}

/// What a LoRA call records: one dispatch, or the two of the split form with their scratch.
struct Plan {
    steps: Vec<(PipelineKey, u64)>,
    params: [u32; 8],
    scratch: Option<Tensor>,
}

/// k slices of the split form: about 256 k each, 2 to 64 of them.
fn split_slices(k_in: usize) -> u64 {
    (k_in as u64 / 256).clamp(2, 64)
}

fn bindings<'a>(a: &Args<'a>, scratch: Option<&'a Tensor>, backend: Backend) -> Bindings<'a> {
    // Inputs a mode does not use alias x (read-only, so no conflict with the output).
    let x = if a.mode == Mode::Merge { a.a } else { a.x };
    let base = a.base.unwrap_or(x);
    if backend == Backend::Native {
        return smallvec::smallvec![
            x.binding(0, false),
            a.a.binding(1, false),
            a.b.binding(2, false),
            base.binding(3, false),
            a.y.binding(4, true)
        ];
    }
    let mut b = Bindings::new();
    for d in [DType::F32, DType::F16] {
        b.push(x.binding(slot(d, 0), false));
        b.push(a.a.binding(slot(d, 1), false));
        b.push(a.b.binding(slot(d, 2), false));
        b.push(base.binding(slot(d, 3), false));
        b.push(a.y.binding(slot(d, 4), true));
    }
    b.push(a.y.binding(13, true));
    // x as 16-byte chunks, for the tiled form's wide f16 x·A.
    b.push(x.binding(14, false));
    if let Some(s) = scratch {
        b.push(s.binding(5, true));
    }
    b
}

/// `pooled`: whether the split form's scratch may come from (and go back to) the pool: only for
/// the Context's own pending pass, which is ordered with every other pooled use.
fn run(ctx: &Context, a: &Args<'_>, pooled: bool, mut go: impl FnMut(&Dispatch<'_>) -> Result<()>) -> Result<()> {
    let plan = plan(ctx, a, pooled)?;
    let bindings = bindings(a, plan.scratch.as_ref(), ctx.backend());
    for (key, groups) in &plan.steps {
        go(&Dispatch { key: *key, bindings: &bindings, params: plan.params, workgroups: groups_u32(*groups, OP)? })?;
    }
    Ok(())
}

/// Records a LoRA call (one dispatch, two for the split form) into the caller's pass.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::lora::{self, Args, Mode};
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 1.0], &[1, 2])?;
/// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
/// let b = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
/// let y = ctx.tensor(&[0.0f32; 2], &[1, 2])?;
/// let mut enc = ctx.device().create_command_encoder(&Default::default());
/// {
///     let mut pass = enc.begin_compute_pass(&Default::default());
///     lora::encode(&ctx, &mut pass, &Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: Mode::Plain, variant: None })?;
/// }
/// ctx.queue().submit([enc.finish()]);
/// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 4.0]);
/// # Ok(()) }
/// ```
pub fn encode(ctx: &Context, pass: &mut wgpu::ComputePass<'_>, a: &Args<'_>) -> Result<()> {
    run(ctx, a, false, |d| ctx.encode(pass, d))
}

fn record(ctx: &Context, a: &Args<'_>) -> Result<()> {
    run(ctx, a, true, |d| ctx.record(d))
}

fn out_shape(x: &Tensor, out: usize) -> Vec<usize> {
    let mut s = x.shape().to_vec();
    if let Some(last) = s.last_mut() {
        *last = out;
    }
    s
}

fn b_cols(b: &Tensor) -> Result<usize> {
    match b.shape() {
        [_, out] => Ok(*out),
        other => Err(Error::ShapeMismatch { op: OP, expected: "B [r, out]".into(), got: other.to_vec() }),
    }
}

impl Context {
    /// `y = base + scale·(x·A)·B` (no base: `scale·(x·A)·B`) in one dispatch.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;      // [rows, in]
    /// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;      // [in, r]
    /// let b = ctx.tensor(&[2.0f32, 3.0], &[1, 2])?;      // [r, out]
    /// let y = ctx.lora(&x, &a, &b, 0.5, None)?.to_vec::<f32>()?;
    /// assert_eq!(y, vec![3.0, 4.5]);
    /// # Ok(()) }
    /// ```
    pub fn lora(&self, x: &Tensor, a: &Tensor, b: &Tensor, scale: f32, base: Option<&Tensor>) -> Result<Tensor> {
        self.check_same(x, OP)?;
        self.check_same(b, OP)?;
        let y = self.output(&out_shape(x, b_cols(b)?), x.dtype(), OP)?;
        let mode = if base.is_some() { Mode::Base } else { Mode::Plain };
        record(self, &Args { x, a, b, base, y: &y, scale, mode, variant: None })?;
        Ok(y)
    }

    /// `y += scale·(x·A)·B`, in place: what an engine does after its base matmul.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 1.0], &[1, 2])?;
    /// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
    /// let b = ctx.tensor(&[1.0f32, -1.0], &[1, 2])?;
    /// let mut y = ctx.tensor(&[10.0f32, 10.0], &[1, 2])?; // the base matmul's output
    /// ctx.lora_add_(&mut y, &x, &a, &b, 0.5)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![11.0, 9.0]);
    /// # Ok(()) }
    /// ```
    pub fn lora_add_(&self, y: &mut Tensor, x: &Tensor, a: &Tensor, b: &Tensor, scale: f32) -> Result<()> {
        record(self, &Args { x, a, b, base: None, y, scale, mode: Mode::InPlace, variant: None })
    }

    /// `W + scale·A·B`: an adapter merged into its weight `W [in, out]`.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let w = ctx.tensor(&[1.0f32; 4], &[2, 2])?;
    /// let a = ctx.tensor(&[1.0f32, 2.0], &[2, 1])?;
    /// let b = ctx.tensor(&[1.0f32, 0.0], &[1, 2])?;
    /// assert_eq!(ctx.lora_merge(&w, &a, &b, 2.0)?.to_vec::<f32>()?, vec![3.0, 1.0, 5.0, 1.0]);
    /// # Ok(()) }
    /// ```
    pub fn lora_merge(&self, w: &Tensor, a: &Tensor, b: &Tensor, scale: f32) -> Result<Tensor> {
        self.check_same(w, OP)?;
        let y = self.output(w.shape(), w.dtype(), OP)?;
        record(self, &Args { x: a, a, b, base: Some(w), y: &y, scale, mode: Mode::Merge, variant: None })?;
        Ok(y)
    }

    /// The fully general form: explicit output, mode and variant.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::lora::{self, Args, Mode};
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 1.0], &[1, 2])?;
    /// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
    /// let b = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
    /// let y = ctx.tensor(&[0.0f32; 2], &[1, 2])?;
    /// let v = lora::variant_for(1, 2, 2, wgfuse::DType::F32);
    /// ctx.lora_with(&Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: Mode::Plain, variant: Some(v) })?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![2.0, 4.0]);
    /// # Ok(()) }
    /// ```
    pub fn lora_with(&self, args: &Args<'_>) -> Result<()> {
        record(self, args)
    }
}

/// CPU reference: `base + scale·(x·A)·B` in f64 (x as `[rows, in]`).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use ndarray::array;
/// let y = wgfuse::reference::lora(array![[1.0, 1.0]].view(), array![[1.0], [1.0]].view(), array![[1.0, 2.0]].view(), 0.5, None);
/// assert_eq!(y, array![[1.0, 2.0]]);
/// # Ok(()) }
/// ```
pub fn reference(
    x: ArrayView2<'_, f64>,
    a: ArrayView2<'_, f64>,
    b: ArrayView2<'_, f64>,
    scale: f64,
    base: Option<ArrayView2<'_, f64>>,
) -> Array2<f64> {
    let t = x.dot(&a);
    let mut y = t.dot(&b) * scale;
    if let Some(base) = base {
        y += &base;
    }
    y
}

/// CPU reference of the merge: `W + scale·A·B`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use ndarray::array;
/// let w = wgfuse::reference::lora_merge(array![[1.0, 1.0]].view(), array![[2.0]].view(), array![[1.0, 0.0]].view(), 1.0);
/// assert_eq!(w, array![[3.0, 1.0]]);
/// # Ok(()) }
/// ```
pub fn reference_merge(w: ArrayView2<'_, f64>, a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>, scale: f64) -> Array2<f64> {
    &w + &(a.dot(&b) * scale)
}
