//! The kernels: one module per op, each with its params, variant choice, `encode` (the
//! low-level layer, recording into a caller's compute pass) and its CPU reference.

pub mod copy;
pub mod lora;
pub mod rms_norm;
pub mod softmax;
pub mod unfused;

use crate::context::Backend;
use crate::shaders::Shader;
use crate::tensor::DType;

/// An op family (one shader file each, except the fused RMSNorm pair).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// assert_eq!(wgfuse::kernels::Op::AddRmsNorm.name(), "add_rms_norm");
/// # Ok(()) }
/// ```
pub enum Op {
    /// Fused softmax.
    Softmax,
    /// RMSNorm.
    RmsNorm,
    /// Residual add + RMSNorm.
    AddRmsNorm,
    /// LoRA: y = base + s·(x·A)·B, in place, or the merge W + s·A·B (the variant's mode).
    Lora,
    /// One elementary kernel of the unfused baselines.
    Unfused(unfused::Elementary),
    /// The bandwidth-bound copy.
    Copy,
}

impl Op {
    /// The op's name, as in entry points and reports.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::kernels::Op::Lora.name(), "lora");
    /// # Ok(()) }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Op::Softmax => "softmax",
            Op::RmsNorm => "rms_norm",
            Op::AddRmsNorm => "add_rms_norm",
            Op::Lora => "lora",
            Op::Unfused(e) => e.name(),
            Op::Copy => "copy",
        }
    }
    /// The op named `name` (`softmax`, `rms_norm`, `add_rms_norm`, `lora`, `copy`), if any.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::Op;
    /// assert_eq!(Op::from_name("add_rms_norm"), Some(Op::AddRmsNorm));
    /// assert_eq!(Op::from_name("gelu"), None);
    /// # Ok(()) }
    /// ```
    pub fn from_name(name: &str) -> Option<Op> {
        [Op::Softmax, Op::RmsNorm, Op::AddRmsNorm, Op::Lora, Op::Copy].into_iter().find(|op| op.name() == name)
    }

    /// The shader file it lives in.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::Op;
    /// assert_eq!(Op::AddRmsNorm.shader(), wgfuse::shaders::Shader::RmsNorm);
    /// # Ok(()) }
    /// ```
    pub fn shader(self) -> Shader {
        match self {
            Op::Softmax => Shader::Softmax,
            Op::RmsNorm | Op::AddRmsNorm => Shader::RmsNorm,
            Op::Lora => Shader::Lora,
            Op::Unfused(_) => Shader::Unfused,
            Op::Copy => Shader::Copy,
        }
    }
}

/// How a kernel splits its work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{row_variant, Kind};
/// assert_eq!(row_variant(8, 50_000, 1024).kind, Kind::Online);
/// # Ok(()) }
/// ```
pub enum Kind {
    /// Rows held in registers (`T` threads a row, `K` chunks a thread, `WG / T` rows a group).
    Reg,
    /// Rows looped over (any length).
    Online,
    /// A plain kernel with one shape of work split.
    Plain,
    /// First dispatch of a split form (LoRA: partial `x·A` per k slice).
    Down,
    /// Second dispatch of a split form (LoRA: sum the slices, then `·B`).
    Up,
    /// LoRA's tiled form for many rows: `t = x·A` per k slice into scratch (`threads`: k lanes
    /// a row group, 32, or 16 for the wide form of 8 k a lane; `chunks`: k tiles of 128 a
    /// slice, 1..=256), then [`Kind::Expand`].
    Project,
    /// Second dispatch of the tiled form: `y = base + s·t·B` (`threads`: column chunks a
    /// workgroup, one of [`lora::EXPAND_WIDTHS`](crate::kernels::lora::EXPAND_WIDTHS);
    /// `chunks`: 16-row blocks a workgroup).
    Expand,
    /// Row ops (softmax, RMSNorm, add + RMSNorm) in f16 over aligned rows, one row a
    /// workgroup (`wg` = `threads`, `chunks` a thread), persistent: [`PERSIST_GROUPS`] workgroups walk the rows, each loading its next
    /// row before it reduces and writes the current one.
    Persist,
    /// LoRA on cooperative matrices (tensor cores), one dispatch: f16, devices where
    /// [`Info::coop_f16`](crate::Info::coop_f16) holds, rows, `in`, `out` and the rank
    /// multiples of 16. A workgroup of 8 subgroups (`wg`) takes 16 rows: its subgroups split
    /// the k axis of `x·A`, then the column tiles of `base + s·t·B`.
    Coop,
    /// LoRA for few rows, one dispatch: each workgroup computes its `chunks` rows' `x·A` with
    /// the rank quads across its threads, then a block of columns (`threads`: column blocks).
    Skinny,
}

impl Kind {
    fn suffix(self) -> Option<&'static str> {
        match self {
            Kind::Reg => Some("reg"),
            Kind::Online => Some("online"),
            Kind::Plain => None,
            Kind::Down => Some("down"),
            Kind::Up => Some("up"),
            Kind::Project => Some("xa"),
            Kind::Expand => Some("tb"),
            Kind::Skinny => Some("skinny"),
            Kind::Persist => Some("persist"),
            Kind::Coop => Some("coop"),
        }
    }
}

/// A kernel variant: its kind and the constants specialised into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{Kind, Variant};
/// let ctx = wgfuse::Context::new()?;
/// let x = ctx.tensor(&[0.0f32; 8], &[2, 4])?;
/// let y = ctx.tensor(&[f32::NAN; 8], &[2, 4])?;
/// // Force the looped variant with 64 threads a row, 4 rows a workgroup.
/// ctx.softmax_into(&x, &y, Some(Variant { kind: Kind::Online, wg: 256, threads: 64, chunks: 1, mode: 0 }))?;
/// assert_eq!(y.to_vec::<f32>()?, vec![0.25; 8]);
/// # Ok(()) }
/// ```
pub struct Variant {
    /// Work split.
    pub kind: Kind,
    /// Threads per workgroup.
    pub wg: u32,
    /// Threads per row.
    pub threads: u32,
    /// 4-element chunks each thread holds (register variants); tile size for others.
    pub chunks: u32,
    /// Op-specific mode (LoRA: base / in place; RMSNorm: weight present).
    pub mode: u32,
}

impl Variant {
    /// The pipeline-overridable constants of the variant.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let v = wgfuse::kernels::row_variant(1, 4096, 1024);
    /// assert_eq!(v.constants()[1], ("T", 256.0));
    /// # Ok(()) }
    /// ```
    pub fn constants(&self) -> [(&'static str, f64); 4] {
        [("WG", self.wg as f64), ("T", self.threads as f64), ("K", self.chunks as f64), ("MODE", self.mode as f64)]
    }
    /// Short description for reports, e.g. `reg t256 k4 x1`.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let v = wgfuse::kernels::row_variant(64, 1000, 1024);
    /// assert!(v.describe().starts_with("reg t"));
    /// # Ok(()) }
    /// ```
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Reg if self.threads == 0 => format!("sub k{} (a row per subgroup)", self.chunks),
            Kind::Reg => format!("reg t{} k{} r{}", self.threads, self.chunks, self.wg / self.threads.max(1)),
            Kind::Online => format!("online t{} r{}", self.threads, self.wg / self.threads.max(1)),
            Kind::Plain => format!("wg{} tile{} passes{}", self.wg, self.chunks, self.threads),
            Kind::Down | Kind::Up => format!("split-k tile{} passes{}", self.chunks, self.threads),
            Kind::Project if self.mode & crate::kernels::lora::MODE_XA_ROWS2 != 0 => {
                format!("tiled kl{} kt{} r2", self.threads, self.chunks)
            }
            Kind::Project => format!("tiled kl{} kt{}", self.threads, self.chunks),
            Kind::Expand => format!("t·B c{} blocks{}", self.threads, self.chunks),
            Kind::Skinny => format!("skinny wg{} rows{} col-blocks{}", self.wg, self.chunks, self.threads),
            Kind::Persist => format!("persist t{} k{} ({PERSIST_GROUPS} workgroups)", self.threads, self.chunks),
            Kind::Coop => format!("coop wg{} (cooperative matrices)", self.wg),
        }
    }
}

/// Sizes compiled into a pipeline as constants, each 0 where the kernel reads it from its
/// `Params` at run time. LoRA's `t·B` dispatch ([`Kind::Expand`]) is compiled for its rank and
/// `out`: its products' loops over rank quads and its row addresses then fold when the pipeline
/// is made. A model has few (rank, `out`) pairs, and the rows stay a run-time size. On an H200
/// (4096 x 4096 r16 → 4096, same call) this took t·B alone from 51.8 to 47.3 µs (f32) and from
/// 38.8 to 35.7 (f16).
///
/// ```
/// use wgfuse::kernels::Fixed;
/// let f = Fixed { rank: 16, out: 4096 };
/// assert_eq!(f.constants(), vec![("RANK", 16.0), ("N_OUT", 4096.0)]);
/// assert!(Fixed::default().constants().is_empty());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fixed {
    /// LoRA's rank (0: at run time).
    pub rank: u32,
    /// LoRA's output columns (0: at run time).
    pub out: u32,
}

impl Fixed {
    /// The pipeline-overridable constants these sizes set (lora.wgsl's `RANK` and `N_OUT`).
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        [("RANK", self.rank), ("N_OUT", self.out)].into_iter().filter(|&(_, v)| v != 0).map(|(n, v)| (n, v as f64)).collect()
    }
}

/// What names one compiled pipeline: the typed key of the pipeline cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{row_variant, Op, PipelineKey};
/// let a = PipelineKey::new(Op::Softmax, row_variant(1, 4, 1024), wgfuse::DType::F32, wgfuse::Backend::Wgsl);
/// let b = PipelineKey { dtype: wgfuse::DType::F16, ..a };
/// assert_ne!(a, b); // one pipeline each
/// # Ok(()) }
/// ```
pub struct PipelineKey {
    /// Op.
    pub op: Op,
    /// Variant and its constants.
    pub variant: Variant,
    /// Element type.
    pub dtype: DType,
    /// WGSL or native.
    pub backend: Backend,
    /// Sizes compiled in (WGSL only; all 0 for every kernel but LoRA's `t·B`).
    pub fixed: Fixed,
}

impl PipelineKey {
    /// The key of a pipeline with no size compiled in (`fixed` all 0); see [`PipelineKey::with_fixed`].
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{row_variant, Fixed, Op, PipelineKey};
    /// let key = PipelineKey::new(Op::Softmax, row_variant(1, 4, 1024), wgfuse::DType::F32, wgfuse::Backend::Wgsl);
    /// assert_eq!(key.fixed, Fixed::default());
    /// # Ok(()) }
    /// ```
    pub fn new(op: Op, variant: Variant, dtype: DType, backend: Backend) -> Self {
        Self { op, variant, dtype, backend, fixed: Fixed::default() }
    }

    /// The same pipeline compiled for these sizes.
    pub fn with_fixed(self, fixed: Fixed) -> Self {
        Self { fixed, ..self }
    }

    /// The shader file the entry point lives in.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{Kind, Op, PipelineKey, Variant};
    /// let variant = Variant { kind: Kind::Coop, wg: 256, threads: 0, chunks: 0, mode: 1 };
    /// let key = PipelineKey::new(Op::Lora, variant, wgfuse::DType::F16, wgfuse::Backend::Wgsl);
    /// assert_eq!(key.shader(), wgfuse::shaders::Shader::LoraCoop);
    /// # Ok(()) }
    /// ```
    pub fn shader(&self) -> Shader {
        match (self.op, self.variant.kind) {
            (Op::Lora, Kind::Coop) => Shader::LoraCoop,
            (op, _) => op.shader(),
        }
    }

    /// The pipeline-overridable constants of a WGSL pipeline: the variant's, then the sizes
    /// compiled in.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{Fixed, Kind, Op, PipelineKey, Variant};
    /// let variant = Variant { kind: Kind::Expand, wg: 256, threads: 256, chunks: 4, mode: 1 };
    /// let key = PipelineKey::new(Op::Lora, variant, wgfuse::DType::F32, wgfuse::Backend::Wgsl).with_fixed(Fixed { rank: 16, out: 4096 });
    /// assert_eq!(key.constants().len(), 6);
    /// # Ok(()) }
    /// ```
    pub fn constants(&self) -> Vec<(&'static str, f64)> {
        let mut c = self.variant.constants().to_vec();
        c.extend(self.fixed.constants());
        c
    }

    /// `<op>_<dtype>[_<variant>]`, the entry point in every shader language.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{row_variant, Op, PipelineKey};
    /// let key = PipelineKey::new(Op::Softmax, row_variant(1, 8, 1024), wgfuse::DType::F16, wgfuse::Backend::Wgsl);
    /// assert_eq!(key.entry_point(), "softmax_f16_reg");
    /// # Ok(()) }
    /// ```
    pub fn entry_point(&self) -> String {
        if self.backend == Backend::Native {
            return self.native_entry_point();
        }
        match self.variant.kind.suffix() {
            Some(s) => format!("{}_{}_{}", self.op.name(), self.dtype.name(), s),
            None => format!("{}_{}", self.op.name(), self.dtype.name()),
        }
    }
}

impl PipelineKey {
    /// The native kernel's name (MSL entry point, `.spv` stem): `<op>_<dtype>_<form>` with the
    /// form `sub_k<K>` (a row per subgroup), `row<T>_k<K>` (a row per workgroup of `T` threads,
    /// `K` chunks a thread in registers) or `loop`; LoRA's is `lora_<dtype>` (the tiled form) or
    /// `lora_<dtype>_skinny<T>_tm<K>` (the skinny form: `T` threads, tiles of `K` rows).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// use wgfuse::kernels::{native_row_variant, Op, PipelineKey};
    /// let key = PipelineKey::new(Op::Softmax, native_row_variant(4096, 4096, 32, 1024), wgfuse::DType::F32, wgfuse::Backend::Native);
    /// assert_eq!(key.entry_point(), "softmax_f32_row256_k4");
    /// # Ok(()) }
    /// ```
    fn native_entry_point(&self) -> String {
        let (op, d, v) = (self.op.name(), self.dtype.name(), &self.variant);
        match (self.op, v.kind) {
            (Op::Lora, Kind::Skinny) => format!("lora_{d}_skinny{}_tm{}", v.wg, v.chunks),
            (Op::Lora, _) => format!("lora_{d}"),
            (_, Kind::Online) => format!("{op}_{d}_loop"),
            (_, Kind::Persist) => format!("{op}_{d}_persist{}_k{}", v.wg, v.chunks),
            (_, Kind::Reg) if v.threads == 0 => format!("{op}_{d}_sub_k{}", v.chunks),
            (_, Kind::Reg) => format!("{op}_{d}_row{}_k{}", v.wg, v.chunks),
            (_, _) => format!("{op}_{d}_{}", v.describe().replace(' ', "_")),
        }
    }
}

/// The most 4-element chunks a thread of a native register kernel holds (`KMAX` in
/// shaders/glsl).
pub const NATIVE_KMAX: u32 = 8;

/// The register forms the native row kernels are compiled in, as (threads per row, chunks a
/// thread): threads 0 is a row per subgroup. Passthrough SPIR-V takes no pipeline constants,
/// so each pair is its own kernel, and its chunk count is exact rather than a bound tested at
/// run time. On the H200 (one build each, one call) the 8-chunk form of every width took
/// softmax f16 4096x4096 43.6 µs and these forms 31.9; 128x1024 f32 13.1 and 8.1.
pub const NATIVE_ROW_FORMS: &[(u32, u32)] =
    &[(0, 1), (0, 2), (0, 4), (0, 8), (256, 1), (256, 2), (256, 4), (256, 8), (512, 4), (512, 8), (1024, 4), (1024, 8)];

/// The variant of a native row kernel for `rows` rows of `n` elements on a device whose
/// smallest subgroup is `min_subgroup` threads and whose workgroups hold up to
/// `max_invocations` threads (the WGSL rule's shape, [`row_variant`], in the forms of
/// [`NATIVE_ROW_FORMS`]):
/// - `sub_k<K>` (`threads: 0`): a row per subgroup, when a row fits in a subgroup's registers
///   and there are rows enough to fill ~256 workgroups (or the row is a chunk per lane at most);
/// - `row<T>_k<K>`: a row per workgroup held in registers, the fewest threads T of 256, 512 and
///   1024 that leave a thread at most 4 chunks, else 1024 threads (or the most the device has)
///   with 8;
/// - `loop` (`Kind::Online`): longer rows, read twice.
///
/// `K` is the smallest power of two that covers the row.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{native_row_variant, Kind};
/// let v = native_row_variant(16384, 1024, 32, 1024); // sub: 256 chunks over 32 lanes
/// assert_eq!((v.threads, v.chunks), (0, 8));
/// let v = native_row_variant(4096, 8192, 32, 1024);
/// assert_eq!((v.wg, v.chunks), (512, 4));
/// let v = native_row_variant(4096, 32000, 32, 1024);
/// assert_eq!((v.wg, v.chunks), (1024, 8));
/// assert_eq!(native_row_variant(4, 50257, 32, 1024).kind, Kind::Online);
/// # Ok(()) }
/// ```
pub fn native_row_variant(rows: usize, n: usize, min_subgroup: u32, max_invocations: u32) -> Variant {
    let chunks = n.div_ceil(4) as u64;
    let sg = min_subgroup.max(1) as u64;
    let k = NATIVE_KMAX as u64;
    let rows_per_group = (256 / sg).max(1);
    // The fewest chunks of a power of two that cover the row on `team` threads.
    let cover = |team: u64| chunks.div_ceil(team).max(1).next_power_of_two() as u32;
    let reg = |wg: u32| Variant { kind: Kind::Reg, wg, threads: wg, chunks: cover(wg as u64), mode: 0 };
    if chunks <= k * sg && (chunks <= sg || (rows as u64).div_ceil(rows_per_group) >= 256) {
        return Variant { threads: 0, chunks: cover(sg), ..reg(256) };
    }
    let teams = [256u32, 512, 1024].into_iter().filter(|&t| t <= max_invocations.max(256));
    if let Some(t) = teams.clone().find(|&t| chunks <= 4 * t as u64) {
        return reg(t);
    }
    match teams.max() {
        Some(t) if chunks <= k * t as u64 => reg(t),
        _ => Variant { kind: Kind::Online, wg: 256, threads: 256, chunks: 1, mode: 0 },
    }
}

/// Every native row form that holds rows of `n` on a device whose smallest subgroup is
/// `min_subgroup` threads and whose workgroups hold up to `max_invocations` threads: each
/// register form of [`NATIVE_ROW_FORMS`] whose chunks cover the row, then the loop.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{native_row_forms, Kind};
/// let forms = native_row_forms(8193, 32, 1024); // 2049 chunks
/// assert_eq!(forms.iter().map(|v| (v.threads, v.chunks)).collect::<Vec<_>>(), [(512, 8), (1024, 4), (1024, 8), (256, 1)]);
/// assert_eq!(forms[3].kind, Kind::Online);
/// # Ok(()) }
/// ```
pub fn native_row_forms(n: usize, min_subgroup: u32, max_invocations: u32) -> Vec<Variant> {
    let chunks = n.div_ceil(4) as u64;
    let mut forms: Vec<Variant> = NATIVE_ROW_FORMS
        .iter()
        .filter(|&&(threads, k)| {
            let team = if threads == 0 { min_subgroup.max(1) } else { threads };
            threads <= max_invocations && chunks <= k as u64 * team as u64
        })
        .map(|&(threads, k)| Variant { kind: Kind::Reg, wg: if threads == 0 { 256 } else { threads }, threads, chunks: k, mode: 0 })
        .collect();
    forms.push(Variant { kind: Kind::Online, wg: 256, threads: 256, chunks: 1, mode: 0 });
    forms
}

/// What the native row rules read from the device: its smallest subgroup size (at least 1) and
/// the most threads a workgroup may have.
pub(crate) fn native_row_limits(ctx: &crate::Context) -> (u32, u32) {
    let info = ctx.info();
    (info.subgroup_sizes().0.max(1), info.limits.max_compute_invocations_per_workgroup)
}

/// A native row kernel's plan: its variant (chosen, or a forced one checked), its sizes
/// (`rows, n, eps, rows per workgroup, aligned, weight`) and workgroup count.
pub(crate) fn native_row_plan(
    ctx: &crate::Context,
    rows: usize,
    n: usize,
    forced: Option<Variant>,
    op: &'static str,
) -> crate::Result<(Variant, [u32; 8], u64)> {
    let (min_sg, max_inv) = native_row_limits(ctx);
    let v = match forced {
        None => native_row_variant(rows, n, min_sg, max_inv),
        Some(v) => {
            let ok = match v.kind {
                Kind::Online => true,
                Kind::Reg => {
                    (v.threads == 0 || v.threads == v.wg)
                        && native_row_forms(n, min_sg, max_inv)
                            .iter()
                            .any(|f| f.kind == Kind::Reg && (f.threads, f.chunks) == (v.threads, v.chunks))
                }
                _ => false,
            };
            if !ok {
                return Err(crate::Error::InvalidArgument {
                    op,
                    what: format!(
                        "native variant {v:?} for rows of {n}: native row kernels are a row per subgroup (Reg, threads 0) or \
                         a row per workgroup (Reg, threads = wg) in the (threads, chunks) forms {NATIVE_ROW_FORMS:?}, \
                         whose chunks cover the row, or Online"
                    ),
                });
            }
            match v.kind {
                Kind::Online => Variant { kind: Kind::Online, wg: 256, threads: 256, chunks: 1, mode: v.mode },
                _ => Variant { wg: if v.threads == 0 { 256 } else { v.wg }, ..v },
            }
        }
    };
    let (params, groups) = native_row_launch(rows, n, &v, min_sg);
    Ok((v, params, groups))
}

/// The native softmax's variant: [`native_row_variant`], made persistent ([`Kind::Persist`],
/// `softmax_f16_persist1024_k<K>`) where WGSL's rule ([`wgsl_row_variant`]) makes it so: f16
/// rows of a multiple of 4 that take a 1024-thread workgroup each, at least twice as many rows
/// as [`PERSIST_GROUPS`]. RMSNorm's native kernels have no persistent form.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{native_softmax_variant, Kind};
/// use wgfuse::DType;
/// let v = native_softmax_variant(4096, 32000, DType::F16, 32, 1024);
/// assert_eq!((v.kind, v.wg, v.chunks), (Kind::Persist, 1024, 8));
/// assert_eq!(native_softmax_variant(4096, 32000, DType::F32, 32, 1024).kind, Kind::Reg);
/// # Ok(()) }
/// ```
pub fn native_softmax_variant(rows: usize, n: usize, dtype: DType, min_subgroup: u32, max_invocations: u32) -> Variant {
    persistent_if_wide(native_row_variant(rows, n, min_subgroup, max_invocations), rows, n, dtype)
}

/// The native softmax's plan: its persistent form when forced or picked
/// ([`native_softmax_variant`]), else [`native_row_plan`]'s.
pub(crate) fn native_softmax_plan(
    ctx: &crate::Context,
    rows: usize,
    n: usize,
    dtype: DType,
    forced: Option<Variant>,
    op: &'static str,
) -> crate::Result<(Variant, [u32; 8], u64)> {
    let (min_sg, max_inv) = native_row_limits(ctx);
    let v = forced.unwrap_or_else(|| native_softmax_variant(rows, n, dtype, min_sg, max_inv));
    if v.kind != Kind::Persist {
        return native_row_plan(ctx, rows, n, forced, op);
    }
    check_persist(&v, dtype, n, max_inv, op)?;
    if v.wg != 1024 || !matches!(v.chunks, 4 | 8) {
        return Err(crate::Error::InvalidArgument {
            op,
            what: format!("native persistent variant {v:?}: the native kernels are 1024 threads with 4 or 8 chunks a thread"),
        });
    }
    let v = Variant { mode: 0, ..v };
    let (params, _) = native_row_launch(rows, n, &v, min_sg);
    Ok((v, params, row_groups(rows, &v)))
}

/// The sizes (`rows, n, eps = 0, rows per workgroup, aligned, weight = 0`) and workgroup
/// count of native row variant `v` on a device whose smallest subgroup is `min_subgroup`.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{native_row_launch, native_row_variant};
/// let v = native_row_variant(16384, 1024, 32, 1024); // a row per subgroup
/// assert_eq!(native_row_launch(16384, 1024, &v, 32), ([16384, 1024, 0, 8, 1, 0, 0, 0], 2048));
/// # Ok(()) }
/// ```
pub fn native_row_launch(rows: usize, n: usize, v: &Variant, min_subgroup: u32) -> ([u32; 8], u64) {
    let rpg = if v.kind == Kind::Reg && v.threads == 0 { (256 / min_subgroup.max(1)).max(1) } else { 1 };
    // params[6] stays 0: `zero` in rows.glsl / rows.h.metal, which keeps h's f16 rounding in y.
    ([rows as u32, n as u32, 0, rpg, u32::from(n % 4 == 0), 0, 0, 0], (rows as u64).div_ceil(rpg as u64))
}

/// The slots a row kernel's tensors bind to: f32 and f16 entry points use different slots
/// (their arrays have different element types).
pub(crate) fn slot(dtype: DType, i: u32) -> u32 {
    match dtype {
        DType::F32 => i,
        DType::F16 => 8 + i,
    }
}

/// The variant for a row-wise kernel (softmax, RMSNorm) over `rows` rows of `n` elements.
///
/// The rule, derived from `cargo xtask tune` on an H200 (Vulkan, subgroup 32), f32 and f16:
/// - threads per row T: the smallest power of two that leaves each thread at most 4 chunks of 4
///   elements (4096-wide rows: T = 256, 41.9 µs for softmax f32 4096x4096, against 43.1 at
///   T = 512 and 44.1 at T = 128 with 8 chunks), several rows per 256-thread workgroup for
///   short rows;
/// - few rows: T doubles (up to 256) while there are fewer than 256 workgroups and a thread
///   holds more than one chunk (128x1024: T = 256, 8.1 µs, against 9.6 at T = 64);
/// - rows over 4 × 4 × max threads: up to 8 chunks a thread with max threads (4096x32000 f32:
///   288 µs, 261.6 since the butterfly second-level reduction; 16 chunks spill: 952 µs);
/// - longer rows: the looped variant (two reads), 1024 threads.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{row_variant, Kind};
/// let v = row_variant(4096, 4096, 1024);
/// assert_eq!((v.kind, v.threads, v.chunks), (Kind::Reg, 256, 4));
/// assert_eq!(row_variant(4096, 100_000, 1024).kind, Kind::Online);
/// # Ok(()) }
/// ```
pub fn row_variant(rows: usize, n: usize, max_invocations: u32) -> Variant {
    // Chunks a row spans: rows start 4-aligned when n is a multiple of 4.
    let chunks = if n % 4 == 0 { n / 4 } else { (n + 6) / 4 } as u64;
    let big = max_invocations.clamp(64, 1024);
    let groups = |t: u32| (rows as u64).div_ceil((256 / t.min(256)).max(1) as u64);
    let mut t = 1u32;
    while t < big && chunks.div_ceil(t as u64) > 4 {
        t *= 2;
    }
    let mut k = chunks.div_ceil(t as u64);
    if k > 8 {
        return Variant { kind: Kind::Online, wg: big, threads: big, chunks: 1, mode: 0 };
    }
    while t < 256 && k > 1 && groups(t) < 256 {
        t *= 2;
        k = chunks.div_ceil(t as u64);
    }
    let wg = t.max(256.min(big));
    Variant { kind: Kind::Reg, wg, threads: t, chunks: k as u32, mode: 0 }
}

/// Workgroups of a [`Kind::Persist`] dispatch (at most one a row): on an H200 (132
/// multiprocessors, one 1024-thread workgroup each), a probe over 4096 x 32000 f16 rows took
/// 140.1 µs with 128 workgroups and 141.6 with 132 (a copy of the same bytes: 132.4).
pub const PERSIST_GROUPS: u32 = 128;

/// The WGSL row variant every row op (softmax, RMSNorm, add + RMSNorm) runs by default:
/// [`row_variant`], made persistent ([`Kind::Persist`]) for f16 rows of a multiple of 4 that
/// take a 1024-thread workgroup each, when there are at least twice as many rows as
/// persistent workgroups. On the H200 a probe over 4096 x 32000 f16 softmax took 140.1 µs
/// persistent against 176.6 for one row a workgroup (a copy of the same bytes: 132.4).
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::kernels::{wgsl_row_variant, Kind};
/// assert_eq!(wgsl_row_variant(4096, 32000, wgfuse::DType::F16, 1024).kind, Kind::Persist);
/// assert_eq!(wgsl_row_variant(4096, 32000, wgfuse::DType::F32, 1024).kind, Kind::Reg);
/// assert_eq!(wgsl_row_variant(100, 32000, wgfuse::DType::F16, 1024).kind, Kind::Reg); // few rows
/// # Ok(()) }
/// ```
pub fn wgsl_row_variant(rows: usize, n: usize, dtype: DType, max_invocations: u32) -> Variant {
    persistent_if_wide(row_variant(rows, n, max_invocations), rows, n, dtype)
}

/// `v` made persistent ([`Kind::Persist`]) for f16 rows of a multiple of 4 that take a
/// 1024-thread workgroup each, when there are at least twice as many rows as
/// [`PERSIST_GROUPS`] (the WGSL and native rules share it).
fn persistent_if_wide(v: Variant, rows: usize, n: usize, dtype: DType) -> Variant {
    let wide = v.kind == Kind::Reg && v.threads == 1024 && v.wg == 1024;
    if dtype == DType::F16 && n % 4 == 0 && wide && rows >= 2 * PERSIST_GROUPS as usize {
        return Variant { kind: Kind::Persist, ..v };
    }
    v
}

/// Checks a forced [`Kind::Persist`] variant (other kinds pass): f16 rows of a multiple of 4,
/// `wg` = `threads` (a power of two, 32 to the device's limit), 1 to 16 chunks a thread that
/// cover the row.
pub(crate) fn check_persist(v: &Variant, dtype: DType, n: usize, max_inv: u32, op: &'static str) -> crate::Result<()> {
    if v.kind != Kind::Persist {
        return Ok(());
    }
    let (t, k) = (v.threads, v.chunks);
    let fits = t == v.wg && t.is_power_of_two() && (32..=max_inv).contains(&t) && (1..=16).contains(&k);
    if dtype != DType::F16 || n % 4 != 0 || !fits || ((t * k) as usize) < n / 4 {
        return Err(crate::Error::InvalidArgument {
            op,
            what: format!(
                "persistent variant {v:?} for {dtype:?} rows of {n}: f16 rows of a multiple of 4, wg = threads (a power of two, 32 to {max_inv}), chunks 1 to 16 covering the row"
            ),
        });
    }
    Ok(())
}

/// `MODE` bit of the WGSL row kernels: rows of a multiple of 4 elements, so every chunk is
/// whole and the code for partial chunks folds away when the pipeline is made.
pub(crate) const MODE_ALIGNED: u32 = 16;

/// `MODE` bit of the WGSL register row kernels: the `threads` × `chunks` chunks of 4 cover a
/// row of `n` elements exactly (`n` = 4 · threads · chunks, 4-aligned), so the guards of chunk
/// slots past the row fold away when the pipeline is made (4096-wide rows at t256 k4, 8192 at
/// t512 k4, 1024 at t256 k1). On an H200 (old / new builds alternated in one call) softmax f16
/// over 4096 x 8192 went from 41.5-41.6 µs to 40.9-41.1, add + RMSNorm f16 over 4096 x 4096 from
/// 40.8-41.0 to 39.8-39.9 and over 4096 x 8192 from 74.8 to 73.0; softmax over 4096 x 4096 did
/// not move. RMSNorm without a residual was slower with it and keeps its guards (rms_norm.rs).
pub(crate) const MODE_EXACT: u32 = 32;

/// `mode` for variant `v` over rows of `n` elements: [`MODE_ALIGNED`] set exactly when the rows
/// are 4-aligned, [`MODE_EXACT`] exactly when `exact_ok` (the op runs faster without its slot
/// guards) and `v` is a register variant whose chunks cover the rows exactly.
pub(crate) fn row_mode(v: &Variant, mode: u32, n: usize, exact_ok: bool) -> u32 {
    let aligned = n % 4 == 0;
    let exact = exact_ok && aligned && v.kind == Kind::Reg && v.threads > 0 && n as u64 == 4 * v.threads as u64 * v.chunks as u64;
    (mode & !(MODE_ALIGNED | MODE_EXACT)) | if aligned { MODE_ALIGNED } else { 0 } | if exact { MODE_EXACT } else { 0 }
}

/// Workgroups a row kernel needs for `rows` rows.
pub(crate) fn row_groups(rows: usize, v: &Variant) -> u64 {
    if v.kind == Kind::Persist {
        return (rows as u64).min(PERSIST_GROUPS as u64);
    }
    (rows as u64).div_ceil((v.wg / v.threads.max(1)).max(1) as u64)
}

/// Checks a row-wise op's input against the device: element count, binding size, row length.
pub(crate) fn check_rows(ctx: &crate::Context, x: &crate::Tensor, op: &'static str) -> crate::Result<()> {
    let len = x.len() as u64;
    if len > u32::MAX as u64 / 2 {
        return Err(crate::Error::TooLarge { op, what: "element count", got: len, limit: u32::MAX as u64 / 2 });
    }
    ctx.check_buffer_size(crate::tensor::padded_bytes(x.len(), x.dtype()), op)
}

pub(crate) fn groups_u32(groups: u64, op: &'static str) -> crate::Result<u32> {
    u32::try_from(groups).map_err(|_| crate::Error::TooLarge { op, what: "workgroup count", got: groups, limit: u32::MAX as u64 })
}

/// Bytes an op must move through device memory, each input read once and each output written
/// once: the numerator of every GB/s figure. `shape` is `[rows, n]` for the row ops and
/// `[rows, in, rank, out]` for LoRA (with a base); RMSNorm counts its weight.
///
/// ```
/// use wgfuse::kernels::{bytes_moved, Op};
/// assert_eq!(bytes_moved(Op::Softmax, &[4096, 4096], wgfuse::DType::F32), 2 * 4096 * 4096 * 4);
/// assert_eq!(bytes_moved(Op::Lora, &[1, 8, 2, 8], wgfuse::DType::F16), (8 + 16 + 16 + 2 * 8) * 2);
/// ```
pub fn bytes_moved(op: Op, shape: &[usize], dtype: DType) -> u64 {
    let dim = |i: usize| shape.get(i).copied().unwrap_or(0) as u64;
    let (rows, n) = (dim(0), dim(1));
    let elems = match op {
        Op::Softmax | Op::Copy => 2 * rows * n,
        Op::RmsNorm => 2 * rows * n + n,
        Op::AddRmsNorm => 4 * rows * n + n,
        Op::Lora => {
            let (k_in, rank, out) = (dim(1), dim(2), dim(3));
            rows * k_in + k_in * rank + rank * out + 2 * rows * out
        }
        Op::Unfused(_) => 0,
    };
    elems * dtype.size() as u64
}
