//! # wgfuse
//!
//! Fused GPU kernels for transformer inference — softmax, RMSNorm (with fused residual add)
//! and LoRA — written in WGSL and run through [`wgpu`] on Vulkan, Metal, DX12 or GL.
//!
//! ```
//! # fn main() -> wgfuse::Result<()> {
//! let ctx = wgfuse::Context::new()?;                 // best adapter; WGFUSE_ADAPTER overrides
//! let x = ctx.tensor(&vec![0.5f32; 4 * 1000], &[4, 1000])?;
//! let y = ctx.softmax(&x)?;                          // recorded, not yet submitted
//! let host: Vec<f32> = y.to_vec()?;                  // submits, waits, reads back
//! assert_eq!(host.len(), 4000);
//! # Ok(()) }
//! ```
//!
//! ## Two layers
//! - **Simple:** methods on [`Context`] (`ctx.softmax(&x)`) return new tensors. They are
//!   recorded lazily into one pending compute pass, which is submitted when data is read
//!   ([`Tensor::to_vec`]), on [`Context::sync`] / [`Context::flush`], or once a batch is full:
//!   16 ops after the last wait on the device, each batch twice the last, up to
//!   [`ContextOptions::max_pending_ops`]. Outputs come from a buffer pool that reuses freed
//!   buffers of the same size class.
//! - **Low level:** `kernels::<op>::encode(&ctx, &mut pass, &args)` records into a compute
//!   pass of the caller's own encoder and never submits or waits. Keep the tensors you pass
//!   alive until that encoder is submitted: a dropped output goes back to the pool, and the
//!   Context may hand its buffer to a later op that runs before your pass does.
//!
//! ## Dtypes
//! `f32` and `f16` (`half::f16`) tensors; kernels accumulate in f32. f16 tensors need the
//! device feature `SHADER_F16`.
//!
//! ## Backends
//! [`Backend::Wgsl`] runs the portable kernels everywhere; [`Backend::Native`] runs
//! hand-written MSL (feature `msl`, on Metal) or SPIR-V (feature `spirv`, on Vulkan).

#![warn(missing_docs)]

pub mod context;
pub mod error;
pub mod kernels;
pub mod shaders;
pub mod tensor;
pub mod timing;

pub use context::{Backend, Context, ContextOptions, Info, Stats};
pub use error::{Error, Result};
pub use tensor::{DType, Element, Tensor};

/// CPU references of every op: f64 accumulation, numerically safe.
pub mod reference {
    pub use crate::kernels::lora::{reference as lora, reference_merge as lora_merge};
    pub use crate::kernels::rms_norm::{reference as rms_norm, reference_add as add_rms_norm};
    pub use crate::kernels::softmax::reference as softmax;
}
