//! Fused softmax over the last dimension, and its CPU reference.
//!
//! One dispatch, numerically stable (the row max is subtracted), f32 accumulation for f16.
//! Special values behave as in `torch.softmax`: a row holding NaN or +inf gives NaN everywhere
//! in that row; a row of only -inf gives NaN; -inf elements of other rows give 0; huge finite
//! magnitudes are safe (the max is subtracted before `exp`).

use ndarray::{ArrayD, ArrayViewD, Axis};

use crate::context::{Backend, Bindings, Context, Dispatch};
use crate::error::{Error, Result};
use crate::kernels::{native_softmax_plan, row_groups, row_mode, slot, Op, PipelineKey, Variant};
use crate::tensor::{DType, Tensor};

const OP: &str = "softmax";

/// Arguments of [`encode`]: `y = softmax(x)` over the last dimension.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::softmax::Args;
/// let ctx = wgfuse::Context::new()?;
/// let (x, y) = (ctx.tensor(&[0.0f32; 2], &[1, 2])?, ctx.tensor(&[0.0f32; 2], &[1, 2])?);
/// let args = Args { x: &x, y: &y, variant: None };
/// let mut enc = ctx.device().create_command_encoder(&Default::default());
/// wgfuse::kernels::softmax::encode(&ctx, &mut enc.begin_compute_pass(&Default::default()), &args)?;
/// ctx.queue().submit([enc.finish()]);
/// assert_eq!(y.to_vec::<f32>()?, vec![0.5, 0.5]);
/// # Ok(()) }
/// ```
pub struct Args<'a> {
    /// Input.
    pub x: &'a Tensor,
    /// Output, same shape and dtype as `x`.
    pub y: &'a Tensor,
    /// Variant to run; `None` picks by shape.
    pub variant: Option<Variant>,
}

/// Checks the arguments and builds the dispatch of the fused kernel.
fn plan(ctx: &Context, a: &Args<'_>) -> Result<(PipelineKey, [u32; 8], u64)> {
    for t in [a.x, a.y] {
        ctx.check_same(t, OP)?;
    }
    if a.y.shape() != a.x.shape() {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("{:?}", a.x.shape()), got: a.y.shape().to_vec() });
    }
    if a.y.dtype() != a.x.dtype() {
        return Err(Error::DTypeMismatch { op: OP, expected: a.x.dtype(), got: a.y.dtype() });
    }
    crate::kernels::check_rows(ctx, a.x, OP)?;
    let n = a.x.last_dim();
    if ctx.backend() == Backend::Native {
        let (variant, params, groups) = native_softmax_plan(ctx, a.x.rows(), n, a.x.dtype(), a.variant, OP)?;
        return Ok((PipelineKey::new(Op::Softmax, variant, a.x.dtype(), Backend::Native), params, groups));
    }
    let max_inv = ctx.info().limits.max_compute_invocations_per_workgroup;
    let mut variant = a.variant.unwrap_or_else(|| wgsl_variant(a.x.rows(), n, a.x.dtype(), max_inv));
    crate::kernels::check_persist(&variant, a.x.dtype(), n, max_inv, OP)?;
    variant.mode = row_mode(&variant, variant.mode, n, true);
    log::debug!("wgfuse: softmax {:?} {:?}: {}", a.x.shape(), a.x.dtype(), variant.describe());
    let key = PipelineKey::new(Op::Softmax, variant, a.x.dtype(), ctx.backend());
    let params = [a.x.rows() as u32, n as u32, 0, 0, 0, 0, 0, 0];
    Ok((key, params, row_groups(a.x.rows(), &variant)))
}

fn bindings<'a>(a: &Args<'a>, backend: Backend) -> Bindings<'a> {
    if backend == Backend::Native {
        return smallvec::smallvec![a.x.binding(0, false), a.y.binding(1, true)];
    }
    let d = a.x.dtype();
    let mut b: Bindings<'a> = smallvec::smallvec![a.x.binding(slot(d, 0), false), a.y.binding(slot(d, 1), true)];
    if d == DType::F16 {
        b.push(a.y.binding(slot(d, 2), true));
    }
    b
}

/// Records the fused softmax into the caller's compute pass (never submits or waits).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::softmax;
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[0.0f32; 6], &[2, 3])?;
/// let y = ctx.tensor(&[f32::NAN; 6], &[2, 3])?;
/// let mut enc = ctx.device().create_command_encoder(&Default::default());
/// {
///     let mut pass = enc.begin_compute_pass(&Default::default());
///     softmax::encode(&ctx, &mut pass, &softmax::Args { x: &x, y: &y, variant: None })?;
///     // ... the engine's own dispatches in the same pass ...
/// }
/// ctx.queue().submit([enc.finish()]);
/// assert!(y.to_vec::<f32>()?.iter().all(|&v| (v - 1.0 / 3.0).abs() < 1e-6));
/// # Ok(()) }
/// ```
pub fn encode(ctx: &Context, pass: &mut wgpu::ComputePass<'_>, a: &Args<'_>) -> Result<()> {
    let (key, params, groups) = plan(ctx, a)?;
    ctx.encode(pass, &Dispatch { key, bindings: &bindings(a, ctx.backend()), params, workgroups: crate::kernels::groups_u32(groups, OP)? })
}

/// The variant [`Context::softmax`] picks for `x`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[0.0f32; 3 * 1000], &[3, 1000])?;
/// println!("{}", wgfuse::kernels::softmax::variant_for(&ctx, &x).describe());
/// # Ok(()) }
/// ```
pub fn variant_for(ctx: &Context, x: &Tensor) -> Variant {
    if ctx.backend() == Backend::Native {
        let info = ctx.info();
        let sg = info.subgroup_sizes().0;
        return crate::kernels::native_softmax_variant(
            x.rows(),
            x.last_dim(),
            x.dtype(),
            sg,
            info.limits.max_compute_invocations_per_workgroup,
        );
    }
    wgsl_variant(x.rows(), x.last_dim(), x.dtype(), ctx.info().limits.max_compute_invocations_per_workgroup)
}

/// The WGSL variant: [`wgsl_row_variant`](crate::kernels::wgsl_row_variant), the rule every
/// row op shares (persistent for wide aligned f16 rows).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{softmax::wgsl_variant, Kind};
/// assert_eq!(wgsl_variant(4096, 32000, wgfuse::DType::F16, 1024).kind, Kind::Persist);
/// assert_eq!(wgsl_variant(4096, 32000, wgfuse::DType::F32, 1024).kind, Kind::Reg);
/// assert_eq!(wgsl_variant(4096, 4096, wgfuse::DType::F16, 1024).kind, Kind::Reg);
/// # Ok(()) }
/// ```
pub fn wgsl_variant(rows: usize, n: usize, dtype: DType, max_invocations: u32) -> Variant {
    crate::kernels::wgsl_row_variant(rows, n, dtype, max_invocations)
}

impl Context {
    /// Softmax over the last dimension, fused into one dispatch.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
    /// let y = ctx.softmax(&x)?.to_vec::<f32>()?;
    /// assert!((y[0] + y[1] - 1.0).abs() < 1e-6);
    /// # Ok(()) }
    /// ```
    pub fn softmax(&self, x: &Tensor) -> Result<Tensor> {
        self.check_same(x, OP)?;
        let y = self.output(x.shape(), x.dtype(), OP)?;
        self.softmax_into(x, &y, None)?;
        Ok(y)
    }

    /// Softmax into an existing output (optionally forcing a variant).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[0.0f32; 4], &[1, 4])?;
    /// let y = ctx.tensor(&[f32::NAN; 4], &[1, 4])?;
    /// ctx.softmax_into(&x, &y, None)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.25; 4]);
    /// # Ok(()) }
    /// ```
    pub fn softmax_into(&self, x: &Tensor, y: &Tensor, variant: Option<Variant>) -> Result<()> {
        let a = Args { x, y, variant };
        let (key, params, groups) = plan(self, &a)?;
        self.record(&Dispatch { key, bindings: &bindings(&a, self.backend()), params, workgroups: crate::kernels::groups_u32(groups, OP)? })
    }
}

/// CPU reference: softmax over the last axis with f64 accumulation, max subtracted first.
/// Special values follow `torch.softmax` (see the module docs).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let x = ndarray::arr2(&[[0.0, 0.0], [f64::NEG_INFINITY, 1.0]]).into_dyn();
/// let y = wgfuse::reference::softmax(x.view());
/// assert_eq!((y[[0, 0]], y[[1, 0]], y[[1, 1]]), (0.5, 0.0, 1.0));
/// # Ok(()) }
/// ```
pub fn reference(x: ArrayViewD<'_, f64>) -> ArrayD<f64> {
    let mut y = x.to_owned();
    let last = Axis(x.ndim().saturating_sub(1));
    for mut row in y.lanes_mut(last) {
        let m = row.iter().fold(f64::NEG_INFINITY, |m, &v| if v.is_nan() || m.is_nan() { f64::NAN } else { m.max(v) });
        row.mapv_inplace(|v| (v - m).exp());
        let s: f64 = row.sum();
        row.mapv_inplace(|v| v / s);
    }
    y
}
