//! [`Tensor`]: a contiguous GPU buffer range with a shape and a dtype, and its host interop
//! (`&[f32]`, `&[half::f16]`, `ndarray`).

use std::sync::{Arc, Weak};

use half::f16;
use wgpu::util::DeviceExt;

use crate::context::{Binding, Context, Inner};
use crate::error::{Error, Result};

/// Element type of a tensor. Kernels accumulate in f32 for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let t = ctx.tensor(&[half::f16::ONE; 2], &[2])?;
/// assert_eq!(t.dtype(), wgfuse::DType::F16);
/// # Ok(()) }
/// ```
pub enum DType {
    /// 32-bit float.
    F32,
    /// 16-bit IEEE half (needs the device feature `SHADER_F16`).
    F16,
}

impl DType {
    /// Bytes per element.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::DType::F16.size(), 2);
    /// # Ok(()) }
    /// ```
    pub fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
    /// `"f32"` or `"f16"`: the suffix of every entry point.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::DType::F32.name(), "f32");
    /// # Ok(()) }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

/// A host element type a tensor can be made from and read back into.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::Element;
/// fn upload<T: Element>(ctx: &wgfuse::Context, v: &[T]) -> wgfuse::Result<wgfuse::Tensor> {
///     ctx.tensor(v, &[v.len()])
/// }
/// let ctx = wgfuse::Context::new()?;
/// assert_eq!(upload(&ctx, &[1.0f32, 2.0])?.dtype(), f32::DTYPE);
/// # Ok(()) }
/// ```
pub trait Element: bytemuck::Pod + Copy + Send + Sync + 'static {
    /// The dtype of tensors holding this type.
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f16 {
    const DTYPE: DType = DType::F16;
}

pub(crate) struct Storage {
    pub buffer: wgpu::Buffer,
    /// Where to return the buffer when the last tensor using it is dropped (`None`: not ours).
    pool: Option<Weak<Inner>>,
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Some(inner) = self.pool.take().and_then(|w| w.upgrade()) {
            inner.release(self.buffer.clone());
        }
    }
}

/// A contiguous, row-major tensor on the GPU.
///
/// Cloning a tensor is cheap and shares its buffer. Ops never modify their inputs, except
/// the in-place ones (`lora_add_`), which take `&mut Tensor`.
#[derive(Clone)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let view = x.clone(); // shares the buffer
/// assert_eq!(view.to_vec::<f32>()?, x.to_vec::<f32>()?);
/// # Ok(()) }
/// ```
pub struct Tensor {
    pub(crate) ctx: Context,
    pub(crate) storage: Arc<Storage>,
    pub(crate) offset: u64,
    pub(crate) shape: Vec<usize>,
    pub(crate) dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor").field("shape", &self.shape).field("dtype", &self.dtype).field("offset", &self.offset).finish()
    }
}

/// Bytes a binding of `len` elements of `dtype` covers: rounded up to 16 so that kernels can
/// load whole 4-element chunks (the allocation is padded to match).
pub(crate) fn padded_bytes(len: usize, dtype: DType) -> u64 {
    ((len * dtype.size()) as u64).next_multiple_of(16)
}

fn check_shape(shape: &[usize], op: &'static str) -> Result<usize> {
    if shape.is_empty() || shape.contains(&0) {
        return Err(Error::Empty { op, shape: shape.to_vec() });
    }
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or(Error::TooLarge {
        op,
        what: "element count",
        got: u64::MAX,
        limit: usize::MAX as u64,
    })
}

impl Context {
    fn check_dtype(&self, dtype: DType, op: &'static str) -> Result<()> {
        if dtype == DType::F16 {
            self.require(wgpu::Features::SHADER_F16, "SHADER_F16", op)?;
        }
        Ok(())
    }

    /// Uploads `data` as a tensor of `shape` (f32 or f16).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
    /// assert_eq!((x.rows(), x.last_dim()), (2, 3));
    /// assert_eq!(x.to_vec::<f32>()?, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// # Ok(()) }
    /// ```
    pub fn tensor<T: Element>(&self, data: &[T], shape: &[usize]) -> Result<Tensor> {
        let op = "tensor";
        let len = check_shape(shape, op)?;
        if data.len() != len {
            return Err(Error::LengthMismatch { op, len: data.len(), shape: shape.to_vec() });
        }
        self.check_dtype(T::DTYPE, op)?;
        self.check_alive()?;
        let bytes = padded_bytes(len, T::DTYPE);
        self.check_buffer_size(bytes, op)?;
        let device = self.device();
        // A fresh buffer filled at creation (the data is copied once, straight into the mapped
        // buffer): never one from the pool, which a pending op may still read (a queue write
        // would land before that op runs).
        let buffer = self.scoped(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgfuse tensor"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: true,
            })
        })?;
        {
            let src: &[u8] = bytemuck::cast_slice(data);
            let mut view = buffer.slice(..).get_mapped_range_mut().map_err(|e| Error::Validation(format!("{e:?}")))?;
            view.slice(..src.len()).copy_from_slice(src);
            view.slice(src.len()..).fill(0);
        }
        buffer.unmap();
        Ok(Tensor {
            ctx: self.clone(),
            storage: Arc::new(Storage { buffer, pool: None }),
            offset: 0,
            shape: shape.to_vec(),
            dtype: T::DTYPE,
        })
    }

    /// Uploads an `ndarray` view (any layout; copied to row-major).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let a = ndarray::Array2::<f32>::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32);
    /// let t = ctx.tensor_from_ndarray(a.view().into_dyn())?;
    /// assert_eq!(t.to_ndarray::<f32>()?, a.into_dyn());
    /// # Ok(()) }
    /// ```
    pub fn tensor_from_ndarray<T: Element>(&self, a: ndarray::ArrayViewD<'_, T>) -> Result<Tensor> {
        let shape = a.shape().to_vec();
        match a.as_slice() {
            Some(s) => self.tensor(s, &shape),
            None => {
                let v: Vec<T> = a.iter().copied().collect();
                self.tensor(&v, &shape)
            }
        }
    }

    /// An uninitialised tensor for a kernel to write (from the buffer pool).
    pub(crate) fn output(&self, shape: &[usize], dtype: DType, op: &'static str) -> Result<Tensor> {
        let len = check_shape(shape, op)?;
        let buffer = self.alloc(padded_bytes(len, dtype), op)?;
        Ok(Tensor {
            ctx: self.clone(),
            storage: Arc::new(Storage { buffer, pool: Some(self.weak()) }),
            offset: 0,
            shape: shape.to_vec(),
            dtype,
        })
    }

    /// A buffer for a kernel's scratch in a caller's own pass: never taken from the pool nor
    /// returned to it, since the caller may submit its pass after later pooled work (a pooled
    /// buffer could then be rewritten by this pass after another op took it).
    pub(crate) fn scratch(&self, shape: &[usize], dtype: DType, op: &'static str) -> Result<Tensor> {
        let len = check_shape(shape, op)?;
        let bytes = padded_bytes(len, dtype);
        self.check_buffer_size(bytes, op)?;
        let device = self.device();
        let buffer = self.scoped(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgfuse scratch"),
                size: bytes,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })
        })?;
        Ok(Tensor { ctx: self.clone(), storage: Arc::new(Storage { buffer, pool: None }), offset: 0, shape: shape.to_vec(), dtype })
    }

    /// Wraps an existing buffer (at `offset` bytes) as a tensor of `shape` and `dtype`, so the
    /// ops can run on an engine's own buffers. The buffer needs `STORAGE` usage (and
    /// `COPY_SRC` to read it back), `offset` must meet `min_storage_buffer_offset_alignment`,
    /// and the range must hold the elements rounded up to 16 bytes.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgpu::util::DeviceExt;
    /// let ctx = wgfuse::Context::new()?;
    /// // An engine's own buffer: 256 bytes of padding, then 8 floats.
    /// let mut data = vec![0.0f32; 64];
    /// data.extend([1.0f32; 8]);
    /// let buf = ctx.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
    ///     label: None,
    ///     contents: bytemuck::cast_slice(&data),
    ///     usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    /// });
    /// let x = ctx.tensor_from_buffer(&buf, 256, &[2, 4], wgfuse::DType::F32)?;
    /// assert_eq!(ctx.softmax(&x)?.to_vec::<f32>()?, vec![0.25; 8]);
    /// # Ok(()) }
    /// ```
    pub fn tensor_from_buffer(&self, buffer: &wgpu::Buffer, offset: u64, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let op = "tensor_from_buffer";
        let len = check_shape(shape, op)?;
        self.check_dtype(dtype, op)?;
        let need = padded_bytes(len, dtype);
        self.check_buffer_size(need, op)?;
        let align = self.info().limits.min_storage_buffer_offset_alignment as u64;
        if offset % align != 0 {
            return Err(Error::InvalidArgument { op, what: format!("offset {offset} is not a multiple of {align}") });
        }
        if !buffer.usage().contains(wgpu::BufferUsages::STORAGE) {
            return Err(Error::InvalidArgument { op, what: "buffer lacks STORAGE usage".into() });
        }
        if offset.checked_add(need).is_none_or(|end| end > buffer.size()) {
            return Err(Error::TooLarge {
                op,
                what: "range end (padded to 16 bytes)",
                got: offset.saturating_add(need),
                limit: buffer.size(),
            });
        }
        Ok(Tensor {
            ctx: self.clone(),
            storage: Arc::new(Storage { buffer: buffer.clone(), pool: None }),
            offset,
            shape: shape.to_vec(),
            dtype,
        })
    }
}

impl Tensor {
    /// The shape.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[0.5f32; 6], &[2, 3])?;
    /// assert_eq!(x.shape(), &[2, 3]);
    /// assert_eq!((x.len(), x.rows(), x.last_dim(), x.byte_len()), (6, 2, 3, 24));
    /// assert_eq!(x.dtype(), wgfuse::DType::F32);
    /// assert!(!x.is_empty() && x.offset() == 0 && x.buffer().size() >= 24);
    /// # Ok(()) }
    /// ```
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The dtype.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Always false: tensors have at least one element.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Size of the last dimension.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn last_dim(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }
    /// Number of rows: the product of all dimensions but the last.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn rows(&self) -> usize {
        self.len() / self.last_dim().max(1)
    }
    /// The Context the tensor lives on.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[0.5f32; 2], &[2])?;
    /// assert_eq!(x.context().info().adapter.name, ctx.info().adapter.name);
    /// # Ok(()) }
    /// ```
    pub fn context(&self) -> &Context {
        &self.ctx
    }
    /// The `wgpu::Buffer` behind the tensor (shared by clones).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.storage.buffer
    }
    /// Byte offset of the first element in [`Tensor::buffer`].
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Bytes of the elements (without padding).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// # Ok(()) }
    /// ```
    pub fn byte_len(&self) -> u64 {
        (self.len() * self.dtype.size()) as u64
    }

    pub(crate) fn binding(&self, slot: u32, writable: bool) -> Binding<'_> {
        Binding { slot, buffer: &self.storage.buffer, offset: self.offset, size: padded_bytes(self.len(), self.dtype), writable }
    }

    /// The same data seen with another shape of the same element count.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32; 6], &[6])?.reshape(&[2, 3])?;
    /// assert_eq!(x.shape(), &[2, 3]);
    /// # Ok(()) }
    /// ```
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let len = check_shape(shape, "reshape")?;
        if len != self.len() {
            return Err(Error::ShapeMismatch { op: "reshape", expected: format!("{} elements", self.len()), got: shape.to_vec() });
        }
        Ok(Tensor { shape: shape.to_vec(), ..self.clone() })
    }

    /// Reads the tensor back (submits pending ops and waits for them).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let h = [half::f16::from_f32(1.5); 3];
    /// let t = ctx.tensor(&h, &[3])?;
    /// assert_eq!(t.to_vec::<half::f16>()?, h.to_vec());
    /// assert!(t.to_vec::<f32>().is_err()); // wrong dtype: a typed error
    /// # Ok(()) }
    /// ```
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        if T::DTYPE != self.dtype {
            return Err(Error::DTypeMismatch { op: "to_vec", expected: self.dtype, got: T::DTYPE });
        }
        self.ctx.read(&self.storage.buffer, self.offset, self.byte_len())
    }

    /// Reads the tensor back as an `ndarray` of its shape.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let a = ctx.tensor(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2])?.to_ndarray::<f32>()?;
    /// assert_eq!(a[[1, 0]], 3.0);
    /// # Ok(()) }
    /// ```
    pub fn to_ndarray<T: Element>(&self) -> Result<ndarray::ArrayD<T>> {
        let v = self.to_vec::<T>()?;
        ndarray::ArrayD::from_shape_vec(self.shape.clone(), v).map_err(|e| Error::ShapeMismatch {
            op: "to_ndarray",
            expected: e.to_string(),
            got: self.shape.clone(),
        })
    }

    /// Reads the tensor back as f32 whatever its dtype.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let h = ctx.tensor(&[half::f16::from_f32(0.5); 2], &[2])?;
    /// assert_eq!(h.to_vec_f32()?, vec![0.5, 0.5]);
    /// # Ok(()) }
    /// ```
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        match self.dtype {
            DType::F32 => self.to_vec::<f32>(),
            DType::F16 => Ok(self.to_vec::<f16>()?.into_iter().map(f32::from).collect()),
        }
    }

    /// Overwrites every element (padding included) with `bits` repeated: tests poison outputs
    /// with NaN this way. Ordered after pending ops.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let y = ctx.tensor(&[0.0f32; 4], &[4])?;
    /// y.fill_bits(f32::NAN.to_bits())?;
    /// assert!(y.to_vec::<f32>()?.iter().all(|v| v.is_nan()));
    /// # Ok(()) }
    /// ```
    pub fn fill_bits(&self, bits: u32) -> Result<()> {
        let words = (padded_bytes(self.len(), self.dtype) / 4) as usize;
        let data = vec![bits; words];
        // Through a copy recorded in order with pending ops (a queue write would run first).
        let device = self.ctx.device();
        let src = self.ctx.scoped(|| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("wgfuse fill"),
                contents: bytemuck::cast_slice(&data),
                usage: wgpu::BufferUsages::COPY_SRC,
            })
        })?;
        let (dst, off) = (&self.storage.buffer, self.offset);
        self.ctx.with_encoder(|enc| enc.copy_buffer_to_buffer(&src, 0, dst, off, (words * 4) as u64));
        Ok(())
    }
}
