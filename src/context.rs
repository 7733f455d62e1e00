//! The [`Context`]: device, queue, feature negotiation, the pipeline and bind-group caches, the
//! buffer pool, and the pending command encoder into which ops are recorded lazily.
//!
//! Ops record into one open compute pass; the pass is ended and submitted when data is read,
//! on [`Context::sync`], or when a batch is full: 16 ops after the device was last waited on,
//! then twice as many each batch, up to `max_pending_ops`. wgpu inserts the barriers
//! between dependent dispatches of one pass, so chained ops see each other's results.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::kernels::{Op, PipelineKey};
use crate::shaders::{Language, ModuleKey};
use crate::tensor::{DType, Tensor};

/// Which implementation of the kernels a Context runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::with_options(wgfuse::ContextOptions { backend: wgfuse::Backend::Wgsl, ..Default::default() })?;
/// assert_eq!(ctx.backend(), wgfuse::Backend::Wgsl);
/// # Ok(()) }
/// ```
pub enum Backend {
    /// The portable WGSL kernels (every adapter).
    #[default]
    Wgsl,
    /// Hand-written native shaders through passthrough: MSL on Metal (`msl` feature), SPIR-V on
    /// Vulkan (`spirv` feature).
    Native,
}

impl Backend {
    /// Short lower-case name, used in reports and benchmark ids.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::Backend::Native.name(), "native");
    /// # Ok(()) }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Backend::Wgsl => "wgsl",
            Backend::Native => "native",
        }
    }
}

/// Options for [`Context::with_options`]. `Default` reads `WGFUSE_ADAPTER` and `WGFUSE_BACKEND`.
#[derive(Clone, Debug)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let opts = wgfuse::ContextOptions { max_pending_ops: 128, pool_limit_bytes: 256 << 20, ..Default::default() };
/// let ctx = wgfuse::Context::with_options(opts)?;
/// assert_eq!(ctx.options().max_pending_ops, 128);
/// # Ok(()) }
/// ```
pub struct ContextOptions {
    /// Pick the first adapter whose name contains this substring (case-insensitive).
    pub adapter: Option<String>,
    /// Restrict adapters to one graphics API: `vulkan`, `metal`, `dx12` or `gl` (default: Vulkan,
    /// Metal and DX12; GL adapters only when named here).
    pub graphics_backend: Option<String>,
    /// Which kernels to run.
    pub backend: Backend,
    /// Create the library's shader modules with runtime bounds checks. Off by default: every
    /// size a kernel relies on is validated on the host before it is dispatched.
    pub shader_checks: bool,
    /// Submit once this many ops are pending. The first batch after a wait on the device is
    /// 16 ops (or this, if smaller), and each batch doubles the next up to this, so that the GPU
    /// starts early on a long stream of ops.
    pub max_pending_ops: usize,
    /// Bytes of freed buffers the pool may keep for reuse.
    pub pool_limit_bytes: u64,
    /// Fill every output buffer with NaN before the kernel writes it (a debugging aid: an
    /// element a kernel forgets to write reads back as NaN instead of stale data).
    pub poison_outputs: bool,
    /// Ask for wgpu's `EXPERIMENTAL_COOPERATIVE_MATRIX` when the adapter has it (Vulkan
    /// `VK_KHR_cooperative_matrix`: the tensor cores of NVIDIA GPUs), so that LoRA's
    /// [`Kind::Coop`](crate::kernels::Kind::Coop) can be forced (no default rule picks it: on
    /// the H200 it is slower than the other forms). Off by default, as wgpu marks the feature
    /// experimental; `WGFUSE_COOPERATIVE_MATRIX=1` turns it on. Only
    /// [`Context::with_options`] can ask for it: a device from [`Context::from_wgpu`] keeps the
    /// features it was made with.
    pub cooperative_matrix: bool,
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            adapter: std::env::var("WGFUSE_ADAPTER").ok().filter(|s| !s.is_empty()),
            graphics_backend: std::env::var("WGFUSE_BACKEND").ok().filter(|s| !s.is_empty()),
            backend: Backend::Wgsl,
            shader_checks: false,
            max_pending_ops: 512,
            pool_limit_bytes: 1 << 30,
            poison_outputs: false,
            cooperative_matrix: std::env::var("WGFUSE_COOPERATIVE_MATRIX").is_ok_and(|v| v == "1"),
        }
    }
}

/// What a Context holds and has made, from [`Context::stats`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let s: wgfuse::Stats = ctx.stats();
/// assert_eq!(s.pending_ops, 0);
/// # Ok(()) }
/// ```
pub struct Stats {
    /// Compute pipelines compiled.
    pub pipelines_created: usize,
    /// Output buffers created (buffers reused from the pool are not counted again).
    pub buffers_created: usize,
    /// Freed buffers kept for reuse.
    pub pooled_buffers: usize,
    /// Their bytes (bounded by `ContextOptions::pool_limit_bytes`).
    pub pooled_bytes: u64,
    /// Bind groups cached (bounded).
    pub cached_bind_groups: usize,
    /// Ops recorded and not yet submitted.
    pub pending_ops: usize,
}

/// What the Context got from its adapter: reported by [`Context::info`].
#[derive(Clone, Debug)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let info: &wgfuse::Info = ctx.info();
/// println!("{info}");
/// # Ok(()) }
/// ```
pub struct Info {
    /// The adapter's description (name, vendor, driver, backend, subgroup sizes).
    pub adapter: wgpu::AdapterInfo,
    /// The features the device was created with.
    pub features: wgpu::Features,
    /// The limits the device was created with.
    pub limits: wgpu::Limits,
    /// The cooperative-matrix configurations the kernels may use: the adapter's, when the
    /// device was made with `EXPERIMENTAL_COOPERATIVE_MATRIX`; empty otherwise.
    pub cooperative_matrix: Vec<wgpu::CooperativeMatrixProperties>,
}

impl Info {
    /// The graphics API behind the device.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert_eq!(ctx.info().graphics_backend(), ctx.info().adapter.backend);
    /// # Ok(()) }
    /// ```
    pub fn graphics_backend(&self) -> wgpu::Backend {
        self.adapter.backend
    }
    /// `(min, max)` subgroup size the adapter reports.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let (min, max) = ctx.info().subgroup_sizes();
    /// assert!(min >= 1 && min <= max);
    /// # Ok(()) }
    /// ```
    pub fn subgroup_sizes(&self) -> (u32, u32) {
        (self.adapter.subgroup_min_size, self.adapter.subgroup_max_size)
    }
    /// Whether the device multiplies 16 x 16 f16 matrices into f32 with cooperative-matrix
    /// operations, with f16 and subgroup barriers (what LoRA's
    /// [`Kind::Coop`](crate::kernels::Kind::Coop) needs).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// println!("tensor cores for f16: {}", ctx.info().coop_f16());
    /// # Ok(()) }
    /// ```
    pub fn coop_f16(&self) -> bool {
        use wgpu::CooperativeScalarType as S;
        let needs = wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP_BARRIER;
        self.features.contains(needs)
            && self.cooperative_matrix.iter().any(|c| (c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type) == (16, 16, 16, S::F16, S::F32))
    }
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.adapter;
        writeln!(f, "adapter:   {} ({:?}, {:?})", a.name, a.device_type, a.backend)?;
        writeln!(f, "driver:    {} {}", a.driver, a.driver_info)?;
        writeln!(f, "subgroups: {}..={}", a.subgroup_min_size, a.subgroup_max_size)?;
        let names: Vec<String> =
            crate::context::WANTED_FEATURES.iter().map(|(feat, name)| format!("{name}={}", self.features.contains(*feat))).collect();
        writeln!(f, "features:  {} COOPERATIVE_MATRIX_F16={}", names.join(" "), self.coop_f16())?;
        write!(
            f,
            "limits:    max_storage_binding={} max_buffer={} max_workgroups_per_dim={} max_invocations={} immediates={}",
            self.limits.max_storage_buffer_binding_size,
            self.limits.max_buffer_size,
            self.limits.max_compute_workgroups_per_dimension,
            self.limits.max_compute_invocations_per_workgroup,
            self.limits.max_immediate_size
        )
    }
}

/// The optional features wgfuse asks for when the adapter has them.
pub(crate) const WANTED_FEATURES: &[(wgpu::Features, &str)] = &[
    (wgpu::Features::SHADER_F16, "SHADER_F16"),
    (wgpu::Features::SUBGROUP, "SUBGROUP"),
    (wgpu::Features::SUBGROUP_BARRIER, "SUBGROUP_BARRIER"),
    (wgpu::Features::IMMEDIATES, "IMMEDIATES"),
    (wgpu::Features::TIMESTAMP_QUERY, "TIMESTAMP_QUERY"),
    (wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES, "TIMESTAMP_QUERY_INSIDE_PASSES"),
    (wgpu::Features::PASSTHROUGH_SHADERS, "PASSTHROUGH_SHADERS"),
];

/// Size of the block of sizes every kernel takes (its `Params`).
pub(crate) const IMMEDIATE_BYTES: u32 = 32;

/// Binding slot of the uniform buffer that holds a WGSL kernel's `Params`. On the H200's Vulkan
/// driver a dispatch that sets immediates cost ~1.2 µs more than one that reads the same sizes
/// from a uniform buffer bound with its bind group (copy and softmax over 64 MiB,
/// BENCHMARKS.md), so the sizes live in a small uniform buffer per distinct value instead, made
/// once and cached with the bind group.
///
/// The SPIR-V kernels take theirs the same way, at the slot right after their storage bindings
/// ([`params_slot`]): wgpu's Vulkan backend numbers a layout's descriptors by position, which
/// passthrough SPIR-V must match, and contiguous slots from 0 are numbered as they are. The MSL
/// kernels take theirs as immediates (`buffer(0)`).
pub(crate) const PARAMS_SLOT: u32 = 31;

/// The slot of the uniform buffer with a kernel's `Params` in `lang`, given its storage
/// bindings' `(slot, writable)`, or `None` for immediates. A SPIR-V kernel's storage slots must
/// be 0.. in order (see [`PARAMS_SLOT`]); anything else is refused rather than bound to the
/// wrong buffers.
fn params_slot(lang: Language, storage: &[(u32, bool)], op: &'static str) -> Result<Option<u32>> {
    match lang {
        Language::Wgsl => Ok(Some(PARAMS_SLOT)),
        Language::SpirV if storage.iter().enumerate().all(|(i, &(slot, _))| slot == i as u32) => Ok(Some(storage.len() as u32)),
        Language::SpirV => Err(Error::InvalidArgument {
            op,
            what: format!("native SPIR-V bindings must take slots 0.. in order, got {:?}", storage.iter().map(|b| b.0).collect::<Vec<_>>()),
        }),
        Language::Msl => Ok(None),
    }
}

/// Uniform buffers of distinct `Params` values kept before the cache starts over.
const MAX_PARAMS_BUFFERS: usize = 4096;

/// One buffer binding of a dispatch: slot, range, and whether the kernel writes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Binding<'a> {
    pub slot: u32,
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub size: u64,
    pub writable: bool,
}

/// Everything one kernel launch needs.
pub(crate) struct Dispatch<'a> {
    pub key: PipelineKey,
    pub bindings: &'a [Binding<'a>],
    pub params: [u32; 8],
    pub workgroups: u32,
}

/// A compiled kernel and the bind-group layout its bind groups are made against.
pub(crate) struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: Arc<wgpu::BindGroupLayout>,
    /// The slot of the uniform buffer its `Params` come from (`None`: from immediates).
    pub params_slot: Option<u32>,
}

/// `(slot, writable)` per storage binding, and the slot of the uniform buffer with the sizes
/// (`None`: immediates).
pub(crate) type LayoutSig = (Vec<(u32, bool)>, Option<u32>);
/// A dispatch ready to go into a pass ([`Context::prepare`]).
struct Ready {
    pipeline: Arc<Pipeline>,
    group: wgpu::BindGroup,
    grid: (u32, u32),
    params: [u32; 8],
}

impl Ready {
    /// Sets the pipeline, the bind group and (MSL kernels only) the immediates, and dispatches.
    fn write(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline.pipeline);
        pass.set_bind_group(0, &self.group, &[]);
        if self.pipeline.params_slot.is_none() {
            pass.set_immediates(0, bytemuck::cast_slice(&self.params));
        }
        pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
    }
}

/// The bindings of one dispatch, inline (no allocation per op).
pub(crate) type Bindings<'a> = smallvec::SmallVec<[Binding<'a>; 16]>;
type Layouts = (Arc<wgpu::BindGroupLayout>, Arc<wgpu::PipelineLayout>);

/// A bind group's identity: its layout (by address) and its buffer ranges. Inline storage, so
/// looking one up allocates nothing (this runs once per op).
#[derive(Clone, PartialEq, Eq, Hash)]
struct BindKey {
    layout: usize,
    entries: smallvec::SmallVec<[(u32, wgpu::Buffer, u64, u64); 16]>,
    /// The sizes, for kernels that read them from a uniform buffer in the group (else zeros).
    params: [u32; 8],
}

#[derive(Default)]
struct Pending {
    pass: Option<wgpu::ComputePass<'static>>,
    encoder: Option<wgpu::CommandEncoder>,
    ops: usize,
    /// Ops in the next batch: 0 after a wait on the device ([`FIRST_BATCH`]), then doubled at
    /// each submission, at most `max_pending_ops`.
    batch: usize,
}

/// Ops in the first batch submitted after the device was waited on. Later batches double up to
/// `max_pending_ops`, so the GPU starts on a long stream of ops while the host records the rest,
/// and submissions stay few. On the H200 (`examples/host_loop.rs`: softmax 128×1024 f32, 1000
/// ops with one sync, two rounds each in one run): one batch of 512 first, 4.22–4.83 µs of wall
/// time per op; batches from 16, 3.52–4.66. Each op there waits for the last (they reuse one
/// pooled output), ~3 µs apiece on the GPU, which bounds both.
const FIRST_BATCH: usize = 16;

#[derive(Default)]
struct Pool {
    free: HashMap<u64, Vec<wgpu::Buffer>>,
    bytes: u64,
}

pub(crate) struct Inner {
    pub id: u64,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: Info,
    pub options: ContextOptions,
    modules: RwLock<HashMap<ModuleKey, Arc<wgpu::ShaderModule>>>,
    pipelines: RwLock<HashMap<PipelineKey, Arc<Pipeline>>>,
    layouts: Mutex<HashMap<LayoutSig, Layouts>>,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    params: Mutex<HashMap<[u32; 8], wgpu::Buffer>>,
    pending: Mutex<Pending>,
    pool: Mutex<Pool>,
    lost: Arc<Mutex<Option<String>>>,
    pipelines_created: AtomicUsize,
    buffers_created: AtomicUsize,
}

impl Inner {
    /// A fresh Context state on `device`: empty caches, pool and pending pass, a new id.
    fn new(device: wgpu::Device, queue: wgpu::Queue, info: Info, options: ContextOptions, lost: Arc<Mutex<Option<String>>>) -> Inner {
        Inner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            info,
            options,
            modules: RwLock::default(),
            pipelines: RwLock::default(),
            layouts: Mutex::default(),
            bind_groups: Mutex::default(),
            params: Mutex::default(),
            pending: Mutex::default(),
            pool: Mutex::default(),
            lost,
            pipelines_created: AtomicUsize::new(0),
            buffers_created: AtomicUsize::new(0),
        }
    }
}

/// The entry point of wgfuse: a device, its queue and everything cached on them.
///
/// `Context` is cheap to clone (an `Arc`), `Send` and `Sync`: share it between threads.
#[derive(Clone)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let ctx = wgfuse::Context::new()?;
/// let other = ctx.clone(); // the same device and caches
/// std::thread::spawn(move || other.softmax(&other.tensor(&[1.0f32; 2], &[1, 2]).unwrap()).map(|_| ()))
///     .join()
///     .expect("thread")?;
/// # Ok(()) }
/// ```
pub struct Context {
    pub(crate) inner: Arc<Inner>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
const MAX_BIND_GROUPS: usize = 4096;

fn parse_backend(name: &str) -> Result<wgpu::Backends> {
    match name.to_ascii_lowercase().as_str() {
        "vulkan" | "vk" => Ok(wgpu::Backends::VULKAN),
        "metal" | "mtl" => Ok(wgpu::Backends::METAL),
        "dx12" | "d3d12" => Ok(wgpu::Backends::DX12),
        "gl" | "gles" | "opengl" => Ok(wgpu::Backends::GL),
        other => Err(Error::UnknownBackend(other.to_string())),
    }
}

fn device_rank(t: wgpu::DeviceType) -> u32 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The size class a request of `bytes` is served from: at most 25% over the request.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let b = bytes.max(256).next_multiple_of(16);
    let top = 63 - b.leading_zeros();
    let step = 1u64 << top.saturating_sub(2);
    b.next_multiple_of(step)
}

impl Context {
    /// A Context on the best adapter of the primary graphics APIs (Vulkan, Metal, DX12):
    /// discrete > integrated > virtual > CPU. `WGFUSE_ADAPTER` (a name substring) and
    /// `WGFUSE_BACKEND` (`vulkan|metal|dx12|gl`; GL only this way) override the choice.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// println!("{}", ctx.info());
    /// # Ok(()) }
    /// ```
    pub fn new() -> Result<Context> {
        Self::with_options(ContextOptions::default())
    }

    /// A Context with explicit options.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::{Context, ContextOptions};
    /// let ctx = Context::with_options(ContextOptions { shader_checks: true, ..ContextOptions::default() })?;
    /// assert!(ctx.options().shader_checks);
    /// # Ok(()) }
    /// ```
    pub fn with_options(options: ContextOptions) -> Result<Context> {
        pollster::block_on(Self::with_options_async(options))
    }

    /// Lists the adapters wgfuse can see (as `Context::new` would choose among them, best first).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// for a in wgfuse::Context::adapters(&wgfuse::ContextOptions::default())? {
    ///     println!("{} ({:?}, {:?})", a.name, a.device_type, a.backend);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn adapters(options: &ContextOptions) -> Result<Vec<wgpu::AdapterInfo>> {
        let (_, adapters) = pollster::block_on(Self::candidates(options))?;
        Ok(adapters.iter().map(|a| a.get_info()).collect())
    }

    async fn candidates(options: &ContextOptions) -> Result<(wgpu::Instance, Vec<wgpu::Adapter>)> {
        // GL only when asked for: wgpu's GL backend has no SUBGROUP, which every kernel needs,
        // and bringing it up costs a second driver stack for nothing.
        let backends = match &options.graphics_backend {
            Some(name) => parse_backend(name)?,
            None => wgpu::Backends::PRIMARY,
        };
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = backends;
        let instance = wgpu::Instance::new(desc);
        let mut adapters = instance.enumerate_adapters(backends).await;
        if let Some(sub) = &options.adapter {
            let sub = sub.to_lowercase();
            adapters.retain(|a| a.get_info().name.to_lowercase().contains(&sub));
        }
        adapters.sort_by_key(|a| {
            let info = a.get_info();
            // Prefer Vulkan/Metal/DX12 over GL for the same device.
            let api = u32::from(info.backend == wgpu::Backend::Gl);
            (device_rank(info.device_type), api)
        });
        Ok((instance, adapters))
    }

    /// Async form of [`Context::with_options`].
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = pollster::block_on(wgfuse::Context::with_options_async(Default::default()))?;
    /// assert!(!ctx.info().adapter.name.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn with_options_async(options: ContextOptions) -> Result<Context> {
        let (_instance, adapters) = Self::candidates(&options).await?;
        let Some(adapter) = adapters.into_iter().next() else {
            let mut why = Vec::new();
            if let Some(a) = &options.adapter {
                why.push(format!("no adapter name contains {a:?}"));
            }
            if let Some(b) = &options.graphics_backend {
                why.push(format!("backend restricted to {b}"));
            }
            return Err(Error::NoAdapter(why.join(", ")));
        };
        let info = adapter.get_info();
        let have = adapter.features();
        let mut features = wgpu::Features::empty();
        for (feat, name) in WANTED_FEATURES {
            if have.contains(*feat) {
                features |= *feat;
            } else {
                log::warn!("adapter {} lacks {name}", info.name);
            }
        }
        let coop = options.cooperative_matrix && have.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        let experimental = if coop {
            features |= wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
            // SAFETY: the only experimental feature asked for is cooperative matrices, used by
            // one kernel (lora_coop.wgsl) only where the adapter lists the configuration it
            // runs (16 x 16 x 16, f16 into f32, subgroup scope), on shapes the host checks
            // (whole 16 x 16 tiles, no load past a tensor's end); tests compare it with the
            // f64 reference on every device that has it.
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        };
        let configs = if coop { adapter.cooperative_matrix_properties() } else { Vec::new() };
        let limits = adapter.limits();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("wgfuse"),
                required_features: features,
                required_limits: limits,
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await?;
        log::info!("wgfuse: adapter {} ({:?}, {:?})", info.name, info.device_type, info.backend);
        Self::build(device, queue, info, configs, options, true)
    }

    /// Wraps a device the application already has. The device should have been created with
    /// `SUBGROUP` (ops report [`Error::MissingFeature`] otherwise), `SHADER_F16` for f16 tensors,
    /// and `IMMEDIATES` for the MSL kernels ([`Backend::Native`] on Metal; the WGSL and SPIR-V
    /// kernels read their sizes from a uniform buffer).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    /// let adapter = pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    /// let wanted = wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES;
    /// let desc = wgpu::DeviceDescriptor {
    ///     required_features: wanted & adapter.features(),
    ///     required_limits: adapter.limits(),
    ///     ..Default::default()
    /// };
    /// let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("a device");
    /// let ctx = wgfuse::Context::from_wgpu(device, queue, adapter.get_info())?;
    /// let y = ctx.softmax(&ctx.tensor(&[0.0f32, 0.0], &[1, 2])?)?;
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.5, 0.5]);
    /// # Ok(()) }
    /// ```
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue, adapter_info: wgpu::AdapterInfo) -> Result<Context> {
        Self::from_wgpu_with_options(device, queue, adapter_info, ContextOptions::default())
    }

    /// [`Context::from_wgpu`] with options (`adapter` and `graphics_backend` are ignored).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    /// let adapter = pollster::block_on(instance.request_adapter(&Default::default())).expect("an adapter");
    /// let desc = wgpu::DeviceDescriptor {
    ///     required_features: (wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES) & adapter.features(),
    ///     ..Default::default()
    /// };
    /// let (device, queue) = pollster::block_on(adapter.request_device(&desc)).expect("a device");
    /// let opts = wgfuse::ContextOptions { max_pending_ops: 64, ..Default::default() };
    /// let ctx = wgfuse::Context::from_wgpu_with_options(device, queue, adapter.get_info(), opts)?;
    /// assert_eq!(ctx.options().max_pending_ops, 64);
    /// # Ok(()) }
    /// ```
    pub fn from_wgpu_with_options(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter_info: wgpu::AdapterInfo,
        options: ContextOptions,
    ) -> Result<Context> {
        Self::build(device, queue, adapter_info, Vec::new(), options, false)
    }

    /// A second Context on the same device and queue that runs `backend`'s kernels (its own
    /// caches, pool and pending pass; tensors stay with the Context that made them). This is
    /// how one program compares WGSL with the native kernels on one device.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// match ctx.with_backend(wgfuse::Backend::Native) {
    ///     Ok(native) => assert_eq!(native.backend(), wgfuse::Backend::Native),
    ///     Err(e) => println!("no native kernels here: {e}"), // says what would work
    /// }
    /// # Ok(()) }
    /// ```
    pub fn with_backend(&self, backend: Backend) -> Result<Context> {
        let i = &self.inner;
        let options = ContextOptions { backend, ..i.options.clone() };
        if let Backend::Native = backend {
            crate::shaders::native_language(&i.info)?;
        }
        Ok(Context { inner: Arc::new(Inner::new(i.device.clone(), i.queue.clone(), i.info.clone(), options, i.lost.clone())) })
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        adapter: wgpu::AdapterInfo,
        cooperative_matrix: Vec<wgpu::CooperativeMatrixProperties>,
        options: ContextOptions,
        own_device: bool,
    ) -> Result<Context> {
        let info = Info { adapter, features: device.features(), limits: device.limits(), cooperative_matrix };
        let lost = Arc::new(Mutex::new(None));
        let lost_cb = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost_cb.lock() = Some(format!("{reason:?}: {msg}"));
        });
        if own_device {
            // Errors outside our error scopes must not abort the process: log them. Every
            // library call that can fail is wrapped in scopes and returns the error itself.
            device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
                log::error!("wgfuse: uncaptured wgpu error: {e}");
            }));
        }
        let ctx = Context { inner: Arc::new(Inner::new(device, queue, info, options, lost)) };
        if let Backend::Native = ctx.inner.options.backend {
            crate::shaders::native_language(&ctx.inner.info)?;
        }
        Ok(ctx)
    }

    /// What this Context got: adapter, backend, features, limits, subgroup sizes.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let (min, max) = ctx.info().subgroup_sizes();
    /// assert!(min <= max);
    /// # Ok(()) }
    /// ```
    pub fn info(&self) -> &Info {
        &self.inner.info
    }

    /// The options the Context was made with.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert!(ctx.options().max_pending_ops > 0);
    /// # Ok(()) }
    /// ```
    pub fn options(&self) -> &ContextOptions {
        &self.inner.options
    }

    /// The kernel backend ops of this Context run on.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert_eq!(ctx.backend(), wgfuse::Backend::Wgsl);
    /// # Ok(()) }
    /// ```
    pub fn backend(&self) -> Backend {
        self.inner.options.backend
    }

    /// The underlying device, for interop.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
    ///     label: None, size: 64, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false,
    /// });
    /// assert_eq!(buf.size(), 64);
    /// # Ok(()) }
    /// ```
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The underlying queue, for interop.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// ctx.queue().submit([]);
    /// # Ok(()) }
    /// ```
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// How many compute pipelines this Context has compiled so far.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32; 4], &[1, 4])?;
    /// let (a, b) = (ctx.softmax(&x)?, ctx.softmax(&x)?);
    /// assert_eq!(ctx.pipelines_created(), 1); // compiled once, cached
    /// # drop((a, b));
    /// # Ok(()) }
    /// ```
    pub fn pipelines_created(&self) -> usize {
        self.inner.pipelines_created.load(Ordering::Relaxed)
    }

    /// The kernels this Context has compiled (op, variant, dtype, backend), in no set order:
    /// what a profiler or the driver's compile statistics should look at for the ops run so far.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32; 4], &[1, 4])?;
    /// drop(ctx.softmax(&x)?);
    /// let keys = ctx.pipeline_keys();
    /// assert_eq!(keys.len(), 1);
    /// assert_eq!(keys[0].entry_point(), "softmax_f32_reg");
    /// # Ok(()) }
    /// ```
    pub fn pipeline_keys(&self) -> Vec<PipelineKey> {
        self.inner.pipelines.read().keys().copied().collect()
    }

    /// Counters of what the Context holds and has made: for monitoring long-running use.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32; 4], &[1, 4])?;
    /// drop(ctx.softmax(&x)?); // the output goes back to the pool
    /// ctx.sync()?;
    /// assert_eq!(ctx.stats().pooled_buffers, 1);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> Stats {
        let pool = self.inner.pool.lock();
        Stats {
            pipelines_created: self.inner.pipelines_created.load(Ordering::Relaxed),
            buffers_created: self.inner.buffers_created.load(Ordering::Relaxed),
            pooled_buffers: pool.free.values().map(Vec::len).sum(),
            pooled_bytes: pool.bytes,
            cached_bind_groups: self.inner.bind_groups.lock().len(),
            pending_ops: self.inner.pending.lock().ops,
        }
    }

    /// Whether the device has all of `features`.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert!(ctx.has(wgpu::Features::SUBGROUP));
    /// # Ok(()) }
    /// ```
    pub fn has(&self, features: wgpu::Features) -> bool {
        self.inner.info.features.contains(features)
    }

    pub(crate) fn require(&self, feature: wgpu::Features, name: &'static str, what: &'static str) -> Result<()> {
        if self.has(feature) {
            Ok(())
        } else {
            Err(Error::MissingFeature { what, feature: name, adapter: self.inner.info.adapter.name.clone() })
        }
    }

    pub(crate) fn check_alive(&self) -> Result<()> {
        match &*self.inner.lost.lock() {
            Some(why) => Err(Error::DeviceLost(why.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn check_same(&self, t: &Tensor, op: &'static str) -> Result<()> {
        if t.ctx.inner.id == self.inner.id {
            Ok(())
        } else {
            Err(Error::ForeignTensor { op })
        }
    }

    /// Runs `f` inside validation and out-of-memory error scopes and returns what they caught,
    /// as [`Error`]: for a caller's own wgpu calls on the context's device.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let bad = ctx.scoped(|| {
    ///     ctx.device().create_shader_module(wgpu::ShaderModuleDescriptor { label: None, source: wgpu::ShaderSource::Wgsl("fn (".into()) })
    /// });
    /// assert!(bad.is_err());
    /// # Ok(()) }
    /// ```
    pub fn scoped<T>(&self, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.inner.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.inner.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o.or(v) {
            return Err(e.into());
        }
        self.check_alive()?;
        Ok(out)
    }

    fn module(&self, key: ModuleKey) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(m) = self.inner.modules.read().get(&key) {
            return Ok(m.clone());
        }
        let mut modules = self.inner.modules.write();
        if let Some(m) = modules.get(&key) {
            return Ok(m.clone());
        }
        let module = self.scoped(|| crate::shaders::create_module(&self.inner.device, key, self.inner.options.shader_checks))??;
        let module = Arc::new(module);
        modules.insert(key, module.clone());
        Ok(module)
    }

    fn layouts(&self, sig: &LayoutSig) -> Result<Layouts> {
        let mut layouts = self.inner.layouts.lock();
        if let Some(l) = layouts.get(sig) {
            return Ok(l.clone());
        }
        let (storage, params) = sig;
        let entry = |slot: u32, ty: wgpu::BufferBindingType| wgpu::BindGroupLayoutEntry {
            binding: slot,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        };
        let entries: Vec<wgpu::BindGroupLayoutEntry> = storage
            .iter()
            .map(|&(slot, writable)| entry(slot, wgpu::BufferBindingType::Storage { read_only: !writable }))
            .chain(params.map(|slot| entry(slot, wgpu::BufferBindingType::Uniform)))
            .collect();
        let uniform_params = params.is_some();
        let device = &self.inner.device;
        let made = self.scoped(|| {
            let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("wgfuse"), entries: &entries });
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("wgfuse"),
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: if uniform_params { 0 } else { IMMEDIATE_BYTES },
            });
            (Arc::new(bgl), Arc::new(pl))
        })?;
        layouts.insert(sig.clone(), made.clone());
        Ok(made)
    }

    /// The compiled pipeline for `key`, created once per Context (read lock first, then a
    /// re-check under the write lock so concurrent callers never compile twice).
    pub(crate) fn pipeline(&self, key: &PipelineKey, bindings: &[Binding<'_>]) -> Result<Arc<Pipeline>> {
        if let Some(p) = self.inner.pipelines.read().get(key) {
            return Ok(p.clone());
        }
        self.require(wgpu::Features::SUBGROUP, "SUBGROUP", "wgfuse kernels")?;
        let mut pipelines = self.inner.pipelines.write();
        if let Some(p) = pipelines.get(key) {
            return Ok(p.clone());
        }
        let limits = &self.inner.info.limits;
        let storage: Vec<(u32, bool)> = bindings.iter().map(|b| (b.slot, b.writable)).collect();
        if storage.len() as u32 > limits.max_storage_buffers_per_shader_stage {
            return Err(Error::TooLarge {
                op: key.op.name(),
                what: "storage buffers per shader stage",
                got: storage.len() as u64,
                limit: limits.max_storage_buffers_per_shader_stage as u64,
            });
        }
        let lang = crate::shaders::language(&self.inner.info, key.backend)?;
        let params_slot = params_slot(lang, &storage, key.op.name())?;
        if params_slot.is_none() {
            self.require(wgpu::Features::IMMEDIATES, "IMMEDIATES", "the MSL kernels")?;
        }
        let sig: LayoutSig = (storage, params_slot);
        let entry = key.entry_point();
        // A SPIR-V module holds one kernel (entry `main`); WGSL and MSL modules hold the file.
        let (unit, entry_name) = match lang {
            Language::SpirV => {
                let k = crate::shaders::native_kernel(&entry).ok_or_else(|| Error::BackendUnavailable {
                    requested: format!("native {entry}"),
                    why: "no native kernel of this op, dtype and variant; use Backend::Wgsl".into(),
                })?;
                (k.name, "main")
            }
            Language::Wgsl | Language::Msl => ("", entry.as_str()),
        };
        let module = self.module(ModuleKey { shader: key.shader(), lang, unit })?;
        let (bgl, pl) = self.layouts(&sig)?;
        let consts: Vec<(&str, f64)> = if lang == Language::Wgsl { key.constants() } else { Vec::new() };
        let device = &self.inner.device;
        let pipeline = self.scoped(|| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(&entry),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(entry_name),
                compilation_options: wgpu::PipelineCompilationOptions { constants: &consts, zero_initialize_workgroup_memory: false },
                cache: None,
            })
        })?;
        self.inner.pipelines_created.fetch_add(1, Ordering::Relaxed);
        log::debug!("wgfuse: compiled {entry} {:?}", key.variant);
        let p = Arc::new(Pipeline { pipeline, layout: bgl, params_slot });
        pipelines.insert(*key, p.clone());
        Ok(p)
    }

    fn bind_group(&self, p: &Pipeline, bindings: &[Binding<'_>], params: &[u32; 8]) -> Result<wgpu::BindGroup> {
        let key = BindKey {
            layout: Arc::as_ptr(&p.layout) as usize,
            entries: bindings.iter().map(|b| (b.slot, b.buffer.clone(), b.offset, b.size)).collect(),
            params: if p.params_slot.is_some() { *params } else { [0; 8] },
        };
        let mut cache = self.inner.bind_groups.lock();
        if let Some(bg) = cache.get(&key) {
            return Ok(bg.clone());
        }
        let uniform = match p.params_slot {
            Some(slot) => Some((slot, self.params_buffer(params)?)),
            None => None,
        };
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .map(|b| wgpu::BindGroupEntry {
                binding: b.slot,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size),
                }),
            })
            .chain(uniform.as_ref().map(|(slot, u)| wgpu::BindGroupEntry { binding: *slot, resource: u.as_entire_binding() }))
            .collect();
        let device = &self.inner.device;
        let bg =
            self.scoped(|| device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &p.layout, entries: &entries }))?;
        if cache.len() >= MAX_BIND_GROUPS {
            cache.clear();
        }
        cache.insert(key, bg.clone());
        Ok(bg)
    }

    /// The uniform buffer holding `params`, made on first use and cached.
    fn params_buffer(&self, params: &[u32; 8]) -> Result<wgpu::Buffer> {
        let mut cache = self.inner.params.lock();
        if let Some(b) = cache.get(params) {
            return Ok(b.clone());
        }
        let desc = wgpu::util::BufferInitDescriptor {
            label: Some("wgfuse params"),
            contents: bytemuck::cast_slice(params),
            usage: wgpu::BufferUsages::UNIFORM,
        };
        let device = &self.inner.device;
        let buf = self.scoped(|| wgpu::util::DeviceExt::create_buffer_init(device, &desc))?;
        if cache.len() >= MAX_PARAMS_BUFFERS {
            cache.clear();
        }
        cache.insert(*params, buf.clone());
        Ok(buf)
    }

    /// The dispatch grid for `workgroups`: one row while it fits a dimension, else the fewest
    /// rows of equal length (at most `rows - 1` idle workgroups). A first row capped at the
    /// limit instead left up to a row idle: 65536 workgroups launched as 2 x 65535, and the copy
    /// over 256 MiB took 168 µs on the H200 against 131 with the rows balanced (32768 x 2).
    fn grid(&self, op: Op, workgroups: u32) -> Result<(u32, u32)> {
        let max = self.inner.info.limits.max_compute_workgroups_per_dimension.max(1);
        let w = workgroups.max(1);
        let y = w.div_ceil(max);
        let x = w.div_ceil(y);
        if y > max {
            return Err(Error::TooLarge { op: op.name(), what: "workgroup count", got: workgroups as u64, limit: max as u64 * max as u64 });
        }
        Ok((x, y))
    }

    /// Records `d` into a caller's pass (the low-level layer).
    pub(crate) fn encode(&self, pass: &mut wgpu::ComputePass<'_>, d: &Dispatch<'_>) -> Result<()> {
        self.prepare(d)?.write(pass);
        Ok(())
    }

    /// Records `d` into the pending pass (the simple layer), submitting when enough ops wait.
    pub(crate) fn record(&self, d: &Dispatch<'_>) -> Result<()> {
        let ready = self.prepare(d)?;
        let mut pending = self.inner.pending.lock();
        ready.write(self.pass(&mut pending));
        pending.ops += 1;
        let max = self.inner.options.max_pending_ops.max(1);
        let batch = pending.batch.clamp(FIRST_BATCH.min(max), max);
        if pending.ops >= batch {
            self.submit(&mut pending)?;
            pending.batch = batch.saturating_mul(2);
        }
        Ok(())
    }

    /// What dispatching `d` needs, from the caches: its pipeline, bind group and grid.
    fn prepare(&self, d: &Dispatch<'_>) -> Result<Ready> {
        self.check_alive()?;
        let pipeline = self.pipeline(&d.key, d.bindings)?;
        let group = self.bind_group(&pipeline, d.bindings, &d.params)?;
        let grid = self.grid(d.key.op, d.workgroups)?;
        Ok(Ready { pipeline, group, grid, params: d.params })
    }

    fn pass<'a>(&self, pending: &'a mut Pending) -> &'a mut wgpu::ComputePass<'static> {
        let pass = match pending.pass.take() {
            Some(pass) => pass,
            None => {
                let enc = pending.encoder.get_or_insert_with(|| {
                    self.inner.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgfuse") })
                });
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("wgfuse"), timestamp_writes: None }).forget_lifetime()
            }
        };
        pending.pass.insert(pass)
    }

    fn submit(&self, pending: &mut Pending) -> Result<Option<wgpu::SubmissionIndex>> {
        drop(pending.pass.take());
        pending.ops = 0;
        let Some(enc) = pending.encoder.take() else { return Ok(None) };
        let queue = &self.inner.queue;
        let idx = self.scoped(|| queue.submit([enc.finish()]))?;
        Ok(Some(idx))
    }

    /// Submits every pending op and waits for the device to finish them.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let x = ctx.tensor(&[1.0f32; 8], &[2, 4])?;
    /// let y = ctx.softmax(&x)?; // recorded, not yet submitted
    /// ctx.sync()?;              // submitted and finished
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.25; 8]);
    /// # Ok(()) }
    /// ```
    pub fn sync(&self) -> Result<()> {
        let idx = {
            let mut pending = self.inner.pending.lock();
            self.submit(&mut pending)?
        };
        self.wait(idx)
    }

    /// Submits every pending op without waiting.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// let y = ctx.softmax(&ctx.tensor(&[0.0f32; 4], &[2, 2])?)?;
    /// ctx.flush()?; // submitted; the GPU works while the host goes on
    /// assert_eq!(y.to_vec::<f32>()?, vec![0.5; 4]);
    /// # Ok(()) }
    /// ```
    pub fn flush(&self) -> Result<()> {
        let mut pending = self.inner.pending.lock();
        self.submit(&mut pending).map(|_| ())
    }

    fn wait(&self, idx: Option<wgpu::SubmissionIndex>) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::Wait { submission_index: idx, timeout: None })
            .map_err(|e| Error::Readback(e.to_string()))?;
        self.inner.pending.lock().batch = 0;
        self.check_alive()
    }

    /// Records a command into the pending encoder outside any pass (copies), in order with ops.
    pub(crate) fn with_encoder<T>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> T) -> T {
        let mut pending = self.inner.pending.lock();
        drop(pending.pass.take());
        let enc = pending
            .encoder
            .get_or_insert_with(|| self.inner.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgfuse") }));
        f(enc)
    }

    /// Reads `size` bytes at `offset` of `buffer` back as elements, after every pending op.
    pub(crate) fn read<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<T>> {
        self.check_alive()?;
        let padded = size.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT).max(4);
        let device = &self.inner.device;
        let staging = self.scoped(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgfuse readback"),
                size: padded,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        let idx = {
            let mut pending = self.inner.pending.lock();
            drop(pending.pass.take());
            let enc = pending
                .encoder
                .get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("wgfuse") }));
            enc.copy_buffer_to_buffer(buffer, offset, &staging, 0, padded);
            self.submit(&mut pending)?
        };
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.wait(idx)?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(Error::Readback(e.to_string())),
            Err(e) => return Err(Error::Readback(e.to_string())),
        }
        let view = staging.slice(..).get_mapped_range().map_err(|e| Error::Readback(format!("{e:?}")))?;
        // One copy, from the mapped range into the result (mapped ranges are aligned for any
        // element type here; the fallback only guards against a misaligned one).
        let bytes = &view[..size as usize];
        let out = match bytemuck::try_cast_slice::<u8, T>(bytes) {
            Ok(elems) => elems.to_vec(),
            Err(_) => bytemuck::pod_collect_to_vec(bytes),
        };
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// A buffer of at least `bytes` for a kernel output, from the pool when one of the same size
    /// class is free. Buffers taken here are only written by kernels recorded after this call, so
    /// reusing one that pending ops still read is ordered correctly.
    pub(crate) fn alloc(&self, bytes: u64, op: &'static str) -> Result<wgpu::Buffer> {
        let buffer = self.alloc_raw(bytes, op)?;
        if self.inner.options.poison_outputs {
            self.poison(&buffer)?;
        }
        Ok(buffer)
    }

    /// Overwrites `buffer` with NaN (f32 and f16 alike: 0x7fc0 halves), in order with pending ops.
    pub(crate) fn poison(&self, buffer: &wgpu::Buffer) -> Result<()> {
        let data = vec![0x7fc0_7fc0u32; (buffer.size() / 4) as usize];
        let device = &self.inner.device;
        let src = self.scoped(|| {
            wgpu::util::DeviceExt::create_buffer_init(
                device,
                &wgpu::util::BufferInitDescriptor {
                    label: Some("wgfuse poison"),
                    contents: bytemuck::cast_slice(&data),
                    usage: wgpu::BufferUsages::COPY_SRC,
                },
            )
        })?;
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(&src, 0, buffer, 0, buffer.size()));
        Ok(())
    }

    fn alloc_raw(&self, bytes: u64, op: &'static str) -> Result<wgpu::Buffer> {
        let class = size_class(bytes);
        self.check_buffer_size(class, op)?;
        if let Some(buf) = {
            let mut pool = self.inner.pool.lock();
            let b = pool.free.get_mut(&class).and_then(|v| v.pop());
            if b.is_some() {
                pool.bytes -= class;
            }
            b
        } {
            return Ok(buf);
        }
        let device = &self.inner.device;
        self.inner.buffers_created.fetch_add(1, Ordering::Relaxed);
        self.scoped(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgfuse tensor"),
                size: class,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
    }

    pub(crate) fn check_buffer_size(&self, bytes: u64, op: &'static str) -> Result<()> {
        let limits = &self.inner.info.limits;
        let limit = limits.max_buffer_size.min(limits.max_storage_buffer_binding_size);
        if bytes > limit {
            return Err(Error::TooLarge { op, what: "tensor bytes", got: bytes, limit });
        }
        Ok(())
    }

    /// Bytes of freed buffers the pool holds now.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// assert_eq!(ctx.pool_bytes(), 0);
    /// # Ok(()) }
    /// ```
    pub fn pool_bytes(&self) -> u64 {
        self.inner.pool.lock().bytes
    }

    /// Drops every pooled buffer and cached bind group (pipelines stay).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let ctx = wgfuse::Context::new()?;
    /// drop(ctx.softmax(&ctx.tensor(&[0.0f32; 4], &[2, 2])?)?);
    /// ctx.trim();
    /// assert_eq!(ctx.pool_bytes(), 0);
    /// # Ok(()) }
    /// ```
    pub fn trim(&self) {
        let mut pool = self.inner.pool.lock();
        pool.free.clear();
        pool.bytes = 0;
        self.inner.bind_groups.lock().clear();
    }

    pub(crate) fn weak(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }
}

impl Inner {
    /// Takes back a buffer whose tensor was dropped.
    pub(crate) fn release(&self, buffer: wgpu::Buffer) {
        let class = buffer.size();
        let mut pool = self.pool.lock();
        if pool.bytes + class <= self.options.pool_limit_bytes {
            pool.bytes += class;
            pool.free.entry(class).or_default().push(buffer);
        } else {
            drop(pool);
            // Over the limit: free it, and forget bind groups that keep it alive.
            self.bind_groups.lock().retain(|k, _| !k.entries.iter().any(|e| e.1 == buffer));
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").field("adapter", &self.inner.info.adapter.name).field("backend", &self.inner.options.backend).finish()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn f<T: Send + Sync>() {}
    f::<Context>();
    let _ = DType::F32;
}
