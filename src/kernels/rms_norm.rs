//! RMSNorm and residual-add + RMSNorm over the last dimension, and their CPU references.
//!
//! `y = x / sqrt(mean(x²) + eps) · w`; `add_rms_norm` computes `h = x + residual` and
//! `y = rmsnorm(h) · w` in one pass and returns both (the residual stream of a Llama block).
//! One dispatch each, f32 accumulation for f16; for f16, `y` is the norm of `h` as rounded
//! to f16 (what the caller gets back in `h`).

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::context::{Backend, Bindings, Context, Dispatch};
use crate::error::{Error, Result};
use crate::kernels::{groups_u32, native_row_plan, row_groups, slot, wgsl_row_variant, Kind, Op, PipelineKey, Variant};
use crate::tensor::{DType, Tensor};

const OP: &str = "rms_norm";
const OP_ADD: &str = "add_rms_norm";

/// Arguments of [`encode`].
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::rms_norm::Args;
/// let ctx = wgfuse::Context::new()?;
/// let (x, r) = (ctx.tensor(&[1.0f32; 4], &[1, 4])?, ctx.tensor(&[1.0f32; 4], &[1, 4])?);
/// let (y, h) = (ctx.tensor(&[0.0f32; 4], &[1, 4])?, ctx.tensor(&[0.0f32; 4], &[1, 4])?);
/// ctx.rms_norm_with(&Args { x: &x, residual: Some(&r), weight: None, y: &y, h: Some(&h), eps: 0.0, variant: None })?;
/// assert_eq!((y.to_vec::<f32>()?, h.to_vec::<f32>()?), (vec![1.0; 4], vec![2.0; 4]));
/// # Ok(()) }
/// ```
pub struct Args<'a> {
    /// Input `[.., n]`.
    pub x: &'a Tensor,
    /// Residual to add first (`add_rms_norm`), same shape as `x`.
    pub residual: Option<&'a Tensor>,
    /// Weight `[n]`.
    pub weight: Option<&'a Tensor>,
    /// Output `y`, same shape as `x`.
    pub y: &'a Tensor,
    /// Output `h = x + residual` (required with `residual`).
    pub h: Option<&'a Tensor>,
    /// Added to the mean square.
    pub eps: f32,
    /// Variant to run; `None` picks by shape.
    pub variant: Option<Variant>,
}

fn plan(ctx: &Context, a: &Args<'_>) -> Result<(PipelineKey, [u32; 8], u64)> {
    let op = if a.residual.is_some() { OP_ADD } else { OP };
    let n = a.x.last_dim();
    let same = [Some(a.x), a.residual, Some(a.y), a.h];
    for t in same.iter().flatten().chain(a.weight.iter()) {
        ctx.check_same(t, op)?;
        if t.dtype() != a.x.dtype() {
            return Err(Error::DTypeMismatch { op, expected: a.x.dtype(), got: t.dtype() });
        }
    }
    for t in same.iter().flatten() {
        if t.shape() != a.x.shape() {
            return Err(Error::ShapeMismatch { op, expected: format!("{:?}", a.x.shape()), got: t.shape().to_vec() });
        }
    }
    if let Some(w) = a.weight {
        if w.shape() != [n] {
            return Err(Error::ShapeMismatch { op, expected: format!("[{n}] (weight)"), got: w.shape().to_vec() });
        }
    }
    if a.residual.is_some() != a.h.is_some() {
        return Err(Error::InvalidArgument { op, what: "residual and h go together".into() });
    }
    if !(a.eps.is_finite() && a.eps >= 0.0) {
        return Err(Error::InvalidArgument { op, what: format!("eps must be finite and >= 0, got {}", a.eps) });
    }
    crate::kernels::check_rows(ctx, a.x, op)?;
    let kind = if a.residual.is_some() { Op::AddRmsNorm } else { Op::RmsNorm };
    if ctx.backend() == Backend::Native {
        let (mut variant, mut params, groups) = native_row_plan(ctx, a.x.rows(), n, a.variant, op)?;
        variant.mode = u32::from(a.weight.is_some());
        params[2] = a.eps.to_bits();
        params[5] = variant.mode;
        return Ok((PipelineKey::new(kind, variant, a.x.dtype(), Backend::Native), params, groups));
    }
    let max_inv = ctx.info().limits.max_compute_invocations_per_workgroup;
    let mut variant = a.variant.unwrap_or_else(|| wgsl_variant(a.x.rows(), n, a.x.dtype(), max_inv, a.residual.is_some()));
    crate::kernels::check_persist(&variant, a.x.dtype(), n, max_inv, op)?;
    // Exact rows without their slot guards made RMSNorm slower on the H200 (old / new builds
    // alternated in one call: f32 4096 x 4096 38.7-38.9 → 39.4-39.7 µs, 4096 x 8192 70.6-70.9 →
    // 72.0, f16 4096 x 4096 23.9-24.0 → 24.1-24.2) while add + RMSNorm gained (f16 4096 x 4096
    // 40.8-41.0 → 39.8-39.9, 4096 x 8192 74.8 → 73.0, f32 4096 x 4096 72.0-72.1 → 71.3): only add
    // + RMSNorm drops them.
    let add = a.residual.is_some();
    variant.mode = crate::kernels::row_mode(&variant, weight_mode(&variant, a.x.dtype(), a.weight.is_some(), add), n, add);
    log::debug!("wgfuse: {op} {:?} {:?}: {}", a.x.shape(), a.x.dtype(), variant.describe());
    let key = PipelineKey::new(kind, variant, a.x.dtype(), ctx.backend());
    // params[3] stays 0: `zero` in rms_norm.wgsl, which keeps h's f16 rounding in y.
    let params = [a.x.rows() as u32, n as u32, a.eps.to_bits(), 0, 0, 0, 0, 0];
    Ok((key, params, row_groups(a.x.rows(), &variant)))
}

/// The WGSL variant of RMSNorm (`add` false) or add + RMSNorm: the rule the row ops share
/// ([`wgsl_row_variant`]), except that add + RMSNorm in f32 widens a row of one workgroup to as
/// many threads as the device allows (up to 1024) where they still cover it exactly. It reads two
/// rows and writes two, so its rows are twice the bytes of the others'. `cargo xtask tune` on an
/// H200 (two rounds in one call, 4096 rows): 4096 columns 71.6-71.7 µs at 256 threads against
/// 70.5 at 1024, 8192 columns 136.6-136.8 at 512 against 135.3-135.6 at 1024; 16384 x 4096
/// 265.8-265.9 against 264.7-265.2. In f16 1024 threads were slower (4096 x 4096: 44.6 µs
/// against 40.4), as they were for RMSNorm alone (f32 4096 x 4096: 48.8 against 39.2).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::rms_norm::wgsl_variant;
/// use wgfuse::DType;
/// let add = wgsl_variant(4096, 4096, DType::F32, 1024, true);
/// assert_eq!((add.threads, add.chunks), (1024, 1));
/// let plain = wgsl_variant(4096, 4096, DType::F32, 1024, false);
/// assert_eq!((plain.threads, plain.chunks), (256, 4));
/// assert_eq!(wgsl_variant(4096, 4096, DType::F16, 1024, true).threads, 256);
/// # Ok(()) }
/// ```
pub fn wgsl_variant(rows: usize, n: usize, dtype: DType, max_invocations: u32, add: bool) -> Variant {
    let v = wgsl_row_variant(rows, n, dtype, max_invocations);
    if !add || dtype != DType::F32 || v.kind != Kind::Reg || v.threads < 256 || v.wg != v.threads || n % 4 != 0 {
        return v;
    }
    let chunks = (n / 4) as u64;
    let mut t = v.threads;
    while t < max_invocations.min(1024) && 2 * t as u64 <= chunks && chunks % (2 * t as u64) == 0 {
        t *= 2;
    }
    Variant { wg: t, threads: t, chunks: chunks.div_ceil(t as u64) as u32, ..v }
}

/// The variant [`Context::rms_norm`] (`add` false) or [`Context::add_rms_norm`] picks for `x`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[0.0f32; 3 * 1000], &[3, 1000])?;
/// println!("{}", wgfuse::kernels::rms_norm::variant_for(&ctx, &x, true).describe());
/// # Ok(()) }
/// ```
pub fn variant_for(ctx: &Context, x: &Tensor, add: bool) -> Variant {
    let max_inv = ctx.info().limits.max_compute_invocations_per_workgroup;
    if ctx.backend() == Backend::Native {
        return crate::kernels::native_row_variant(x.rows(), x.last_dim(), ctx.info().subgroup_sizes().0, max_inv);
    }
    wgsl_variant(x.rows(), x.last_dim(), x.dtype(), max_inv, add)
}

/// `MODE` bit of rms_norm.wgsl: add + RMSNorm forms `h·w` before the row's reduction.
const MODE_WFOLD: u32 = 2;

/// The weight bits of the WGSL kernels' `MODE` (rows.wgsl's `ALIGNED` is added by the caller;
/// the kernels use these bits only on rows of a multiple of 4), from probes of the library's
/// kernels on the H200 (`benchmarks/h200-2026-11-25-s21/`, each alternated twice in one call):
/// - RMSNorm f32 with 512 threads a row or more loads `min(K, 5)` of a thread's weight chunks
///   before the row's reduction, the rest after it. 4096 x 32000 (1024 threads, 8 chunks):
///   277 µs with all 8 after, 275 / 274 / 271 / 270 with 2 / 3 / 4 / 5 before, 301 with all 8
///   (the 64 registers a thread of a 1024-thread workgroup may hold overflow), 258 without a
///   weight; 4096 x 8192: 73.0 → 72.2 µs. f32 at 256 threads: no change (40.3, 136.3); f16
///   slower at every shape (4096 x 8192: 41.5 → 50.3 µs), so none there.
/// - add + RMSNorm with 1024-thread rows forms `h·w` before the reduction, its weight loads
///   going out right after the stores of h: f32 4096 x 32000 592 → 541 µs (514 without a
///   weight). At 256 and 512 threads it was 0.3–0.8 µs slower in f32 and level in f16: not
///   there.
fn weight_mode(v: &Variant, dtype: DType, weighted: bool, add: bool) -> u32 {
    if !weighted || v.kind != Kind::Reg {
        return u32::from(weighted);
    }
    if add {
        return if v.threads >= 1024 { 1 | MODE_WFOLD } else { 1 };
    }
    let pre = if dtype == DType::F32 && v.threads >= 512 { v.chunks.min(5) } else { 0 };
    1 | pre << 8
}

fn bindings<'a>(a: &Args<'a>, backend: Backend) -> Bindings<'a> {
    let w = a.weight.unwrap_or(a.x);
    let r = a.residual.unwrap_or(a.x);
    let h = a.h.unwrap_or(a.y);
    if backend == Backend::Native {
        return match a.residual {
            Some(_) => smallvec::smallvec![
                a.x.binding(0, false),
                w.binding(1, false),
                r.binding(2, false),
                a.y.binding(3, true),
                h.binding(4, true)
            ],
            None => smallvec::smallvec![a.x.binding(0, false), w.binding(1, false), a.y.binding(2, true)],
        };
    }
    let mut b = Bindings::new();
    // Both dtypes' slots: the helpers of every entry point refer to both sets.
    for d in [crate::DType::F32, crate::DType::F16] {
        b.push(a.x.binding(slot(d, 0), false));
        b.push(w.binding(slot(d, 1), false));
        b.push(r.binding(slot(d, 2), false));
        b.push(a.y.binding(slot(d, 3), true));
        b.push(h.binding(slot(d, 4), true));
    }
    b.push(a.y.binding(13, true));
    b.push(h.binding(14, true));
    b
}

/// Records RMSNorm (or add + RMSNorm when `residual` is given) into the caller's pass.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::rms_norm;
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[2.0f32; 8], &[2, 4])?;
/// let y = ctx.tensor(&[f32::NAN; 8], &[2, 4])?;
/// let mut enc = ctx.device().create_command_encoder(&Default::default());
/// {
///     let mut pass = enc.begin_compute_pass(&Default::default());
///     let args = rms_norm::Args { x: &x, residual: None, weight: None, y: &y, h: None, eps: 0.0, variant: None };
///     rms_norm::encode(&ctx, &mut pass, &args)?;
/// }
/// ctx.queue().submit([enc.finish()]);
/// assert_eq!(y.to_vec::<f32>()?, vec![1.0; 8]);
/// # Ok(()) }
/// ```
pub fn encode(ctx: &Context, pass: &mut wgpu::ComputePass<'_>, a: &Args<'_>) -> Result<()> {
    let (key, params, groups) = plan(ctx, a)?;
    ctx.encode(pass, &Dispatch { key, bindings: &bindings(a, ctx.backend()), params, workgroups: groups_u32(groups, OP)? })
}

fn record(ctx: &Context, a: &Args<'_>) -> Result<()> {
    let (key, params, groups) = plan(ctx, a)?;
    ctx.record(&Dispatch { key, bindings: &bindings(a, ctx.backend()), params, workgroups: groups_u32(groups, OP)? })
}

impl Context {
    /// RMSNorm over the last dimension: `x / sqrt(mean(x²) + eps) · weight`.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[3.0f32, 4.0], &[1, 2])?;
    /// let y = ctx.rms_norm(&x, None, 0.0)?.to_vec::<f32>()?;
    /// assert!((y[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-5);
    /// # Ok(()) }
    /// ```
    pub fn rms_norm(&self, x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
        self.check_same(x, OP)?;
        let y = self.output(x.shape(), x.dtype(), OP)?;
        record(self, &Args { x, residual: None, weight, y: &y, h: None, eps, variant: None })?;
        Ok(y)
    }

    /// `h = x + residual; y = rms_norm(h) · weight` in one pass; returns `(y, h)`.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
    /// let r = ctx.tensor(&[2.0f32, 2.0], &[1, 2])?;
    /// let (y, h) = ctx.add_rms_norm(&x, &r, None, 0.0)?;
    /// assert_eq!(h.to_vec::<f32>()?, vec![3.0, 4.0]);
    /// let y = y.to_vec::<f32>()?;
    /// assert!((y[0] - 3.0 / 12.5f32.sqrt()).abs() < 1e-5);
    /// # Ok(()) }
    /// ```
    pub fn add_rms_norm(&self, x: &Tensor, residual: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<(Tensor, Tensor)> {
        self.check_same(x, OP_ADD)?;
        let y = self.output(x.shape(), x.dtype(), OP_ADD)?;
        let h = self.output(x.shape(), x.dtype(), OP_ADD)?;
        record(self, &Args { x, residual: Some(residual), weight, y: &y, h: Some(&h), eps, variant: None })?;
        Ok((y, h))
    }

    /// The fully general form: explicit outputs and variant.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{rms_norm::Args, row_variant};
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[3.0f32; 4], &[1, 4])?;
    /// let y = ctx.tensor(&[0.0f32; 4], &[1, 4])?;
    /// let v = row_variant(1, 4, 1024);
    /// ctx.rms_norm_with(&Args { x: &x, residual: None, weight: None, y: &y, h: None, eps: 0.0, variant: Some(v) })?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![1.0; 4]);
    /// # Ok(()) }
    /// ```
    pub fn rms_norm_with(&self, args: &Args<'_>) -> Result<()> {
        record(self, args)
    }
}

/// CPU reference of RMSNorm: f64 accumulation, `weight` of the last axis' length.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let x = ndarray::arr2(&[[3.0, 4.0]]).into_dyn();
/// let y = wgfuse::reference::rms_norm(x.view(), None, 0.0);
/// assert!((y[[0, 0]] - 3.0 / 12.5f64.sqrt()).abs() < 1e-12);
/// # Ok(()) }
/// ```
pub fn reference(x: ArrayViewD<'_, f64>, weight: Option<&[f64]>, eps: f64) -> ArrayD<f64> {
    let mut y = x.to_owned();
    let last = Axis(x.ndim().saturating_sub(1));
    for mut row in y.lanes_mut(last) {
        let n = row.len() as f64;
        let ms = row.iter().map(|v| v * v).sum::<f64>() / n;
        let inv = 1.0 / (ms + eps).sqrt();
        for (j, v) in row.iter_mut().enumerate() {
            *v *= inv * weight.map_or(1.0, |w| w[j]);
        }
    }
    y
}

/// CPU reference of add + RMSNorm: returns `(y, h)`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let x = ndarray::arr2(&[[1.0, 1.0]]).into_dyn();
/// let (y, h) = wgfuse::reference::add_rms_norm(x.view(), x.view(), None, 0.0);
/// assert_eq!((h[[0, 0]], y[[0, 1]]), (2.0, 1.0));
/// # Ok(()) }
/// ```
pub fn reference_add(
    x: ArrayViewD<'_, f64>,
    residual: ArrayViewD<'_, f64>,
    weight: Option<&[f64]>,
    eps: f64,
) -> (ArrayD<f64>, ArrayD<f64>) {
    let h = &x + &residual;
    (reference(h.view(), weight, eps), h)
}
