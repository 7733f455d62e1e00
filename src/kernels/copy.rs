//! The copy kernel: `y = x` over whole 16-byte chunks, the bandwidth bound of every report.

use crate::context::{Context, Dispatch};
use crate::error::{Error, Result};
use crate::kernels::{Kind, Op, PipelineKey, Variant};
use crate::tensor::{DType, Tensor};

const OP: &str = "copy";
/// One 16-byte chunk a thread: over 64 MiB on the H200 this copy took 37.6 µs where 4 chunks a
/// thread took 39.5 (2 and 8 chunks were between and slower), so the bound is the faster copy.
const VARIANT: Variant = Variant { kind: Kind::Plain, wg: 256, threads: 1, chunks: 1, mode: 0 };

/// Records `y = x` (bytes, any dtype, same byte length) into the caller's pass.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let (x, y) = (ctx.tensor(&[1.0f32, 2.0, 3.0], &[3])?, ctx.tensor(&[0.0f32; 3], &[3])?);
/// let mut enc = ctx.device().create_command_encoder(&Default::default());
/// wgfuse::kernels::copy::encode(&ctx, &mut enc.begin_compute_pass(&Default::default()), &x, &y)?;
/// ctx.queue().submit([enc.finish()]);
/// assert_eq!(y.to_vec::<f32>()?, vec![1.0, 2.0, 3.0]);
/// # Ok(()) }
/// ```
pub fn encode(ctx: &Context, pass: &mut wgpu::ComputePass<'_>, x: &Tensor, y: &Tensor) -> Result<()> {
    ctx.check_same(x, OP)?;
    ctx.check_same(y, OP)?;
    if x.byte_len() != y.byte_len() {
        return Err(Error::ShapeMismatch { op: OP, expected: format!("{} bytes", x.byte_len()), got: y.shape().to_vec() });
    }
    let chunks = x.byte_len().div_ceil(16);
    let per_group = (VARIANT.wg * VARIANT.chunks) as u64;
    let key = PipelineKey::new(Op::Copy, VARIANT, DType::F32, crate::Backend::Wgsl);
    let params = [chunks as u32, 0, 0, 0, 0, 0, 0, 0];
    let bindings = [x.binding(0, false), y.binding(1, true)];
    let workgroups = crate::kernels::groups_u32(chunks.div_ceil(per_group), OP)?;
    ctx.encode(pass, &Dispatch { key, bindings: &bindings, params, workgroups })
}
