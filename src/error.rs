//! The crate's one error type: every fallible call returns [`Result<T>`].

use crate::DType;

/// Everything that can go wrong in wgfuse, as structured variants a caller can match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// match ctx.tensor(&[1.0f32; 3], &[2, 2]) {
///     Err(wgfuse::Error::LengthMismatch { len, .. }) => assert_eq!(len, 3),
///     other => panic!("{other:?}"),
/// }
/// # Ok(()) }
/// ```
pub enum Error {
    /// No adapter matched the request (or none exists: no GPU driver and no software driver).
    #[error("no GPU adapter found{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    NoAdapter(String),
    /// `WGFUSE_BACKEND` (or an option) named a backend that does not exist.
    #[error("unknown backend {0:?}: expected one of vulkan, metal, dx12, gl")]
    UnknownBackend(String),
    /// The device refused to be created.
    #[error("device request failed: {0}")]
    RequestDevice(#[from] wgpu::RequestDeviceError),
    /// A tensor with no elements, or a shape of rank 0.
    #[error("{op}: empty tensor (shape {shape:?})")]
    Empty {
        /// The op (or call) that refused.
        op: &'static str,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// Shapes that do not fit together.
    #[error("{op}: shape mismatch: expected {expected}, got {got:?}")]
    ShapeMismatch {
        /// The op (or call) that refused.
        op: &'static str,
        /// What the op needed.
        expected: String,
        /// What it got.
        got: Vec<usize>,
    },
    /// Element counts that do not match the data given.
    #[error("{op}: {len} values given for shape {shape:?}")]
    LengthMismatch {
        /// The op (or call) that refused.
        op: &'static str,
        /// Number of values given.
        len: usize,
        /// The shape given.
        shape: Vec<usize>,
    },
    /// Tensors of different dtypes given to one op, or a dtype the call cannot take.
    #[error("{op}: dtype mismatch: expected {expected:?}, got {got:?}")]
    DTypeMismatch {
        /// The op (or call) that refused.
        op: &'static str,
        /// What the op needed.
        expected: DType,
        /// What it got.
        got: DType,
    },
    /// An argument out of its documented range (rank of LoRA, eps, ...).
    #[error("{op}: invalid argument: {what}")]
    InvalidArgument {
        /// The op (or call) that refused.
        op: &'static str,
        /// What was wrong.
        what: String,
    },
    /// The device lacks a feature the call needs.
    #[error("{what} needs the device feature {feature}, which this adapter ({adapter}) does not offer")]
    MissingFeature {
        /// What was wrong.
        what: &'static str,
        /// The missing wgpu feature.
        feature: &'static str,
        /// The adapter that lacks it.
        adapter: String,
    },
    /// A size over the device's limits (binding size, buffer size, workgroup counts).
    #[error("{op}: {what} is {got}, over the device limit of {limit}")]
    TooLarge {
        /// The op (or call) that refused.
        op: &'static str,
        /// What was wrong.
        what: &'static str,
        /// What it got.
        got: u64,
        /// The device limit.
        limit: u64,
    },
    /// A tensor created by one Context given to another.
    #[error("{op}: tensor belongs to another Context")]
    ForeignTensor {
        /// The op (or call) that refused.
        op: &'static str,
    },
    /// The requested backend cannot run here; the message says what would.
    #[error("backend {requested} is not available: {why}")]
    BackendUnavailable {
        /// What was asked for.
        requested: String,
        /// Why it cannot run, and what would.
        why: String,
    },
    /// A wgpu validation error, captured by an error scope.
    #[error("wgpu validation error: {0}")]
    Validation(String),
    /// The device ran out of memory.
    #[error("out of GPU memory: {0}")]
    OutOfMemory(String),
    /// The device was lost (driver reset, removal); the Context can no longer be used.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// Mapping a buffer for readback failed, or waiting on the device failed.
    #[error("readback failed: {0}")]
    Readback(String),
}

impl From<wgpu::Error> for Error {
    fn from(e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { source } => Error::OutOfMemory(source.to_string()),
            wgpu::Error::Validation { description, .. } => Error::Validation(description),
            wgpu::Error::Internal { description, .. } => Error::Validation(description),
        }
    }
}

/// `std::result::Result` with [`Error`].
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// fn norm(ctx: &wgfuse::Context, x: &wgfuse::Tensor) -> wgfuse::Result<Vec<f32>> {
///     ctx.rms_norm(x, None, 1e-5)?.to_vec()
/// }
/// let ctx = wgfuse::Context::new()?;
/// assert_eq!(norm(&ctx, &ctx.tensor(&[2.0f32; 4], &[1, 4])?)?.len(), 4);
/// # Ok(()) }
/// ```
pub type Result<T> = std::result::Result<T, Error>;
