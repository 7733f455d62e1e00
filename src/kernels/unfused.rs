//! The unfused baselines: softmax, RMSNorm, add + RMSNorm and LoRA built from elementary
//! kernels, one dispatch per step (max, subtract, exp, sum, divide; ...), every intermediate
//! going through device memory. This is what fusion is measured against. f32 only.

use crate::context::{Context, Dispatch};
use crate::error::{Error, Result};
use crate::kernels::{groups_u32, Kind, Op, PipelineKey, Variant};
use crate::tensor::{DType, Tensor};

/// One elementary kernel (an entry point of `unfused.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::unfused::Elementary;
/// assert_eq!(Elementary::Reduce.name(), "unfused_reduce");
/// # Ok(()) }
/// ```
pub enum Elementary {
    /// Row reduction (max, sum or mean of squares).
    Reduce,
    /// Elementwise `exp` or `rsqrt(x + eps)`.
    Unary,
    /// `x op v[row]`.
    RowWise,
    /// `x * w[col]`.
    ColWise,
    /// `x + z` or `x + s·z`.
    Binary,
    /// Tiled matrix product.
    Matmul,
}

impl Elementary {
    /// The entry point's op name.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::kernels::unfused::Elementary::Matmul.name(), "unfused_matmul");
    /// # Ok(()) }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Elementary::Reduce => "unfused_reduce",
            Elementary::Unary => "unfused_unary",
            Elementary::RowWise => "unfused_rowwise",
            Elementary::ColWise => "unfused_colwise",
            Elementary::Binary => "unfused_binary",
            Elementary::Matmul => "unfused_matmul",
        }
    }
}

const OP: &str = "unfused";

/// One elementary dispatch of a baseline.
#[derive(Clone)]
struct Step {
    kernel: Elementary,
    mode: u32,
    x: Tensor,
    z: Tensor,
    y: Tensor,
    rows: usize,
    n: usize,
    f: f32,
    k: usize,
}

impl Step {
    fn dispatch<R>(&self, go: impl FnOnce(&Dispatch<'_>) -> Result<R>) -> Result<R> {
        let variant = Variant { kind: Kind::Plain, wg: 256, threads: 1, chunks: 1, mode: self.mode };
        let key = PipelineKey::new(Op::Unfused(self.kernel), variant, DType::F32, crate::Backend::Wgsl);
        let groups = match self.kernel {
            Elementary::Reduce => self.rows as u64,
            Elementary::Matmul => (self.rows.div_ceil(16) * self.n.div_ceil(16)) as u64,
            _ => ((self.rows * self.n) as u64).div_ceil(256),
        };
        let params = [self.rows as u32, self.n as u32, self.f.to_bits(), self.k as u32, 0, 0, 0, 0];
        let bindings = [self.x.binding(0, false), self.z.binding(1, false), self.y.binding(2, true)];
        go(&Dispatch { key, bindings: &bindings, params, workgroups: groups_u32(groups, OP)? })
    }
}

/// A baseline ready to run: its elementary steps, their intermediates, and its outputs.
#[derive(Clone)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let plan = wgfuse::kernels::unfused::softmax(&ctx, &ctx.tensor(&[0.0f32; 4], &[1, 4])?)?;
/// plan.record(&ctx)?;
/// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![0.25; 4]);
/// # Ok(()) }
/// ```
pub struct Unfused {
    steps: Vec<Step>,
    outputs: Vec<Tensor>,
}

impl Unfused {
    /// Records every step into the caller's pass.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let plan = wgfuse::kernels::unfused::softmax(&ctx, &ctx.tensor(&[0.0f32; 4], &[1, 4])?)?;
    /// let mut enc = ctx.device().create_command_encoder(&Default::default());
    /// plan.encode(&ctx, &mut enc.begin_compute_pass(&Default::default()))?;
    /// ctx.queue().submit([enc.finish()]);
    /// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![0.25; 4]);
    /// # Ok(()) }
    /// ```
    pub fn encode(&self, ctx: &Context, pass: &mut wgpu::ComputePass<'_>) -> Result<()> {
        self.steps.iter().try_for_each(|s| s.dispatch(|d| ctx.encode(pass, d)))
    }
    /// Records every step into the Context's pending work.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let plan = wgfuse::kernels::unfused::softmax(&ctx, &ctx.tensor(&[0.0f32; 4], &[1, 4])?)?;
    /// plan.record(&ctx)?;
    /// ctx.sync()?;
    /// # Ok(()) }
    /// ```
    pub fn record(&self, ctx: &Context) -> Result<()> {
        self.steps.iter().try_for_each(|s| s.dispatch(|d| ctx.record(d)))
    }
    /// The outputs (`[y]`, or `[y, h]` for add + RMSNorm).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let plan = wgfuse::kernels::unfused::softmax(&ctx, &ctx.tensor(&[0.0f32; 4], &[1, 4])?)?;
    /// assert_eq!(plan.outputs().len(), 1);
    /// # Ok(()) }
    /// ```
    pub fn outputs(&self) -> &[Tensor] {
        &self.outputs
    }
    /// Number of dispatches.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let plan = wgfuse::kernels::unfused::softmax(&ctx, &ctx.tensor(&[0.0f32; 4], &[1, 4])?)?;
    /// assert_eq!(plan.dispatches(), 5);
    /// # Ok(()) }
    /// ```
    pub fn dispatches(&self) -> usize {
        self.steps.len()
    }
}

struct Builder<'c> {
    ctx: &'c Context,
    steps: Vec<Step>,
}

impl Builder<'_> {
    fn tmp(&self, shape: &[usize]) -> Result<Tensor> {
        self.ctx.output(shape, DType::F32, OP)
    }
    #[allow(clippy::too_many_arguments)]
    fn step(&mut self, kernel: Elementary, mode: u32, x: &Tensor, z: &Tensor, y: &Tensor, rows: usize, n: usize, f: f32, k: usize) {
        self.steps.push(Step { kernel, mode, x: x.clone(), z: z.clone(), y: y.clone(), rows, n, f, k });
    }
    fn done(self, outputs: Vec<Tensor>) -> Unfused {
        Unfused { steps: self.steps, outputs }
    }
}

fn check_f32(ctx: &Context, ts: &[&Tensor]) -> Result<()> {
    for t in ts {
        ctx.check_same(t, OP)?;
        if t.dtype() != DType::F32 {
            return Err(Error::DTypeMismatch { op: OP, expected: DType::F32, got: t.dtype() });
        }
    }
    Ok(())
}

/// Softmax as five dispatches: row max, subtract, exp, row sum, divide.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[0.0f32; 4], &[2, 2])?;
/// let plan = wgfuse::kernels::unfused::softmax(&ctx, &x)?;
/// plan.record(&ctx)?;
/// assert_eq!(plan.dispatches(), 5);
/// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![0.5; 4]);
/// # Ok(()) }
/// ```
pub fn softmax(ctx: &Context, x: &Tensor) -> Result<Unfused> {
    check_f32(ctx, &[x])?;
    let (rows, n) = (x.rows(), x.last_dim());
    let mut b = Builder { ctx, steps: Vec::new() };
    let (m, d, e, s, y) = (b.tmp(&[rows])?, b.tmp(x.shape())?, b.tmp(x.shape())?, b.tmp(&[rows])?, b.tmp(x.shape())?);
    b.step(Elementary::Reduce, 0, x, x, &m, rows, n, 0.0, 0);
    b.step(Elementary::RowWise, 0, x, &m, &d, rows, n, 0.0, 0);
    b.step(Elementary::Unary, 0, &d, &d, &e, rows, n, 0.0, 0);
    b.step(Elementary::Reduce, 1, &e, &e, &s, rows, n, 0.0, 0);
    b.step(Elementary::RowWise, 1, &e, &s, &y, rows, n, 0.0, 0);
    Ok(b.done(vec![y]))
}

fn rms_steps(b: &mut Builder<'_>, x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Tensor> {
    let (rows, n) = (x.rows(), x.last_dim());
    let (ms, inv, u) = (b.tmp(&[rows])?, b.tmp(&[rows])?, b.tmp(x.shape())?);
    b.step(Elementary::Reduce, 2, x, x, &ms, rows, n, 0.0, 0);
    b.step(Elementary::Unary, 1, &ms, &ms, &inv, 1, rows, eps, 0);
    b.step(Elementary::RowWise, 2, x, &inv, &u, rows, n, 0.0, 0);
    let Some(w) = weight else { return Ok(u) };
    check_f32(b.ctx, &[w])?;
    if w.shape() != [n] {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("[{n}]"), got: w.shape().to_vec() });
    }
    let y = b.tmp(x.shape())?;
    b.step(Elementary::ColWise, 0, &u, w, &y, rows, n, 0.0, 0);
    Ok(y)
}

/// RMSNorm as three or four dispatches: mean of squares, rsqrt(+eps), scale rows, weight.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let plan = wgfuse::kernels::unfused::rms_norm(&ctx, &ctx.tensor(&[2.0f32; 4], &[1, 4])?, None, 0.0)?;
/// plan.record(&ctx)?;
/// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![1.0; 4]);
/// # Ok(()) }
/// ```
pub fn rms_norm(ctx: &Context, x: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Unfused> {
    check_f32(ctx, &[x])?;
    let mut b = Builder { ctx, steps: Vec::new() };
    let y = rms_steps(&mut b, x, weight, eps)?;
    Ok(b.done(vec![y]))
}

/// Add + RMSNorm: an add dispatch, then the RMSNorm steps. Outputs `[y, h]`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32; 4], &[1, 4])?;
/// let plan = wgfuse::kernels::unfused::add_rms_norm(&ctx, &x, &x, None, 0.0)?;
/// plan.record(&ctx)?;
/// assert_eq!(plan.outputs()[1].to_vec::<f32>()?, vec![2.0; 4]); // h
/// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![1.0; 4]); // y
/// # Ok(()) }
/// ```
pub fn add_rms_norm(ctx: &Context, x: &Tensor, residual: &Tensor, weight: Option<&Tensor>, eps: f32) -> Result<Unfused> {
    check_f32(ctx, &[x, residual])?;
    if x.shape() != residual.shape() {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("{:?}", x.shape()), got: residual.shape().to_vec() });
    }
    let mut b = Builder { ctx, steps: Vec::new() };
    let h = b.tmp(x.shape())?;
    b.step(Elementary::Binary, 0, x, residual, &h, x.rows(), x.last_dim(), 0.0, 0);
    let y = rms_steps(&mut b, &h, weight, eps)?;
    Ok(b.done(vec![y, h]))
}

/// LoRA as three dispatches: `t = x·A`, `u = t·B`, `y = base + s·u` (no base: `u + (s-1)·u`).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
/// let a = ctx.tensor(&[1.0f32, 1.0], &[2, 1])?;
/// let b = ctx.tensor(&[2.0f32], &[1, 1])?;
/// let plan = wgfuse::kernels::unfused::lora(&ctx, &x, &a, &b, 0.5, None)?;
/// plan.record(&ctx)?;
/// assert_eq!(plan.outputs()[0].to_vec::<f32>()?, vec![3.0]);
/// # Ok(()) }
/// ```
pub fn lora(ctx: &Context, x: &Tensor, a: &Tensor, bm: &Tensor, scale: f32, base: Option<&Tensor>) -> Result<Unfused> {
    check_f32(ctx, &[x, a, bm])?;
    let (rows, k_in) = (x.rows(), x.last_dim());
    let rank = match a.shape() {
        [k, r] if *k == k_in => *r,
        s => return Err(Error::ShapeMismatch { op: OP, expected: format!("A [{k_in}, r]"), got: s.to_vec() }),
    };
    let out = match bm.shape() {
        [r, o] if *r == rank => *o,
        s => return Err(Error::ShapeMismatch { op: OP, expected: format!("B [{rank}, out]"), got: s.to_vec() }),
    };
    let mut b = Builder { ctx, steps: Vec::new() };
    let (t, u, y) = (b.tmp(&[rows, rank])?, b.tmp(&[rows, out])?, b.tmp(&[rows, out])?);
    b.step(Elementary::Matmul, 0, x, a, &t, rows, rank, 0.0, k_in);
    b.step(Elementary::Matmul, 0, &t, bm, &u, rows, out, 0.0, rank);
    match base {
        Some(base) => {
            check_f32(ctx, &[base])?;
            if base.shape() != [rows, out] && base.len() != rows * out {
                return Err(Error::ShapeMismatch { op: OP, expected: format!("[{rows}, {out}]"), got: base.shape().to_vec() });
            }
            b.step(Elementary::Binary, 1, base, &u, &y, rows, out, scale, 0);
        }
        None => b.step(Elementary::Binary, 1, &u, &u, &y, rows, out, scale - 1.0, 0),
    }
    Ok(b.done(vec![y]))
}

/// `x [rows, k] · w [k, n]` with the baselines' tiled kernel (f32): a plain matrix product for
/// chains that need one between fused ops (a projection, attention scores). Not tuned: engines
/// bring their own GEMM.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 2.0], &[1, 2])?;
/// let w = ctx.tensor(&[1.0f32, 0.0, 0.0, 1.0], &[2, 2])?;
/// assert_eq!(wgfuse::kernels::unfused::matmul(&ctx, &x, &w)?.to_vec::<f32>()?, vec![1.0, 2.0]);
/// # Ok(()) }
/// ```
pub fn matmul(ctx: &Context, x: &Tensor, w: &Tensor) -> Result<Tensor> {
    check_f32(ctx, &[x, w])?;
    let (rows, k) = (x.rows(), x.last_dim());
    let n = match w.shape() {
        [wk, n] if *wk == k => *n,
        s => return Err(Error::ShapeMismatch { op: OP, expected: format!("w [{k}, n]"), got: s.to_vec() }),
    };
    let mut b = Builder { ctx, steps: Vec::new() };
    let y = b.tmp(&[rows, n])?;
    b.step(Elementary::Matmul, 0, x, w, &y, rows, n, 0.0, k);
    let plan = b.done(vec![y]);
    plan.record(ctx)?;
    Ok(plan.outputs[0].clone())
}
