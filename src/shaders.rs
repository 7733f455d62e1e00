//! Every shader source, embedded at compile time, and the enum that names them.

use crate::context::{Backend, Info};
use crate::error::{Error, Result};

/// One shader file (one per op family), in every language it exists in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// use wgfuse::shaders::Shader;
/// assert!(Shader::Softmax.wgsl().contains("fn softmax_f32_reg"));
/// # Ok(()) }
/// ```
pub enum Shader {
    /// `softmax.*`: fused softmax.
    Softmax,
    /// `rms_norm.*`: RMSNorm and residual-add + RMSNorm.
    RmsNorm,
    /// `lora.*`: LoRA apply, in-place add and merge.
    Lora,
    /// `lora_coop.wgsl`: LoRA's `x·A` on cooperative matrices (WGSL only; devices with
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX`).
    LoraCoop,
    /// `unfused.*`: the elementary kernels of the unfused baselines.
    Unfused,
    /// `copy.*`: the copy kernel that sets the bandwidth bound.
    Copy,
}

/// Every shader, for tests that load them all.
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// for s in wgfuse::shaders::ALL_SHADERS {
///     assert!(!s.wgsl().is_empty(), "{}", s.name());
/// }
/// # Ok(()) }
/// ```
pub const ALL_SHADERS: [Shader; 6] = [Shader::Softmax, Shader::RmsNorm, Shader::Lora, Shader::LoraCoop, Shader::Unfused, Shader::Copy];

/// A shading language a module can be made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let l = wgfuse::shaders::Language::Wgsl;
/// assert_ne!(l, wgfuse::shaders::Language::SpirV);
/// # Ok(()) }
/// ```
pub enum Language {
    /// Portable WGSL, compiled by naga for any backend.
    Wgsl,
    /// Metal Shading Language, passed through on Metal.
    Msl,
    /// SPIR-V compiled from our GLSL, passed through on Vulkan.
    SpirV,
}

impl Shader {
    /// The file stem, shared by every language.
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// assert_eq!(wgfuse::shaders::Shader::RmsNorm.name(), "rms_norm");
    /// # Ok(()) }
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Shader::Softmax => "softmax",
            Shader::RmsNorm => "rms_norm",
            Shader::Lora => "lora",
            Shader::LoraCoop => "lora_coop",
            Shader::Unfused => "unfused",
            Shader::Copy => "copy",
        }
    }

    /// The WGSL source (the row kernels get `rows.wgsl`, their shared row machinery, first).
    ///
    /// ```
    /// # fn main() -> wgfuse::Result<()> {
    /// let src = wgfuse::shaders::Shader::Lora.wgsl();
    /// assert!(src.contains("fn lora_f16"));
    /// # Ok(()) }
    /// ```
    pub fn wgsl(self) -> &'static str {
        match self {
            Shader::Softmax => concat!(include_str!("../shaders/wgsl/rows.wgsl"), include_str!("../shaders/wgsl/softmax.wgsl")),
            Shader::RmsNorm => concat!(include_str!("../shaders/wgsl/rows.wgsl"), include_str!("../shaders/wgsl/rms_norm.wgsl")),
            Shader::Lora => include_str!("../shaders/wgsl/lora.wgsl"),
            Shader::LoraCoop => include_str!("../shaders/wgsl/lora_coop.wgsl"),
            Shader::Unfused => include_str!("../shaders/wgsl/unfused.wgsl"),
            Shader::Copy => include_str!("../shaders/wgsl/copy.wgsl"),
        }
    }
}

/// One hand-written native kernel: its name (the MSL entry point and the `.spv` file stem),
/// the GLSL file it is compiled from, the macros that specialise it and its workgroup size.
///
/// Passthrough SPIR-V takes no pipeline constants, so every variant is its own `.spv`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
///
/// ```
/// # fn main() -> wgfuse::Result<()> {
/// let k = wgfuse::shaders::NATIVE_KERNELS.iter().find(|k| k.name == "softmax_f16_loop").unwrap();
/// assert_eq!((k.glsl, k.workgroup), ("softmax", 256));
/// assert!(k.defines.contains(&"F16"));
/// # Ok(()) }
/// ```
pub struct NativeKernel {
    /// Entry point (MSL) and file stem (`shaders/spirv/<name>.spv`).
    pub name: &'static str,
    /// Shader family.
    pub shader: Shader,
    /// GLSL source stem (`shaders/glsl/<glsl>.comp`).
    pub glsl: &'static str,
    /// Preprocessor macros, `NAME` or `NAME=value`.
    pub defines: &'static [&'static str],
    /// Threads per workgroup.
    pub workgroup: u32,
}

macro_rules! native_kernels {
    ($($name:literal: $shader:ident $glsl:literal $wg:literal [$($def:literal),*];)*) => {
        /// Every native kernel (the table `cargo xtask shaders` compiles and the native backend
        /// loads).
        pub const NATIVE_KERNELS: &[NativeKernel] = &[
            $(NativeKernel { name: $name, shader: Shader::$shader, glsl: $glsl, defines: &[$($def),*], workgroup: $wg }),*
        ];

        /// The committed SPIR-V of native kernel `name`.
        #[cfg(feature = "spirv")]
        pub fn spirv(name: &str) -> Option<&'static [u8]> {
            match name {
                $($name => Some(include_bytes!(concat!("../shaders/spirv/", $name, ".spv"))),)*
                _ => None,
            }
        }
    };
}

native_kernels! {
    "softmax_f32_sub_k1": Softmax "softmax" 256 ["WG=256", "KMAX=1", "SUB"];
    "softmax_f32_sub_k2": Softmax "softmax" 256 ["WG=256", "KMAX=2", "SUB"];
    "softmax_f32_sub_k4": Softmax "softmax" 256 ["WG=256", "KMAX=4", "SUB"];
    "softmax_f32_sub_k8": Softmax "softmax" 256 ["WG=256", "KMAX=8", "SUB"];
    "softmax_f32_row256_k1": Softmax "softmax" 256 ["WG=256", "KMAX=1"];
    "softmax_f32_row256_k2": Softmax "softmax" 256 ["WG=256", "KMAX=2"];
    "softmax_f32_row256_k4": Softmax "softmax" 256 ["WG=256", "KMAX=4"];
    "softmax_f32_row256_k8": Softmax "softmax" 256 ["WG=256", "KMAX=8"];
    "softmax_f32_row512_k4": Softmax "softmax" 512 ["WG=512", "KMAX=4"];
    "softmax_f32_row512_k8": Softmax "softmax" 512 ["WG=512", "KMAX=8"];
    "softmax_f32_row1024_k4": Softmax "softmax" 1024 ["WG=1024", "KMAX=4"];
    "softmax_f32_row1024_k8": Softmax "softmax" 1024 ["WG=1024", "KMAX=8"];
    "softmax_f32_loop": Softmax "softmax" 256 ["WG=256", "LOOP"];
    "softmax_f16_sub_k1": Softmax "softmax" 256 ["WG=256", "KMAX=1", "SUB", "F16"];
    "softmax_f16_sub_k2": Softmax "softmax" 256 ["WG=256", "KMAX=2", "SUB", "F16"];
    "softmax_f16_sub_k4": Softmax "softmax" 256 ["WG=256", "KMAX=4", "SUB", "F16"];
    "softmax_f16_sub_k8": Softmax "softmax" 256 ["WG=256", "KMAX=8", "SUB", "F16"];
    "softmax_f16_row256_k1": Softmax "softmax" 256 ["WG=256", "KMAX=1", "F16"];
    "softmax_f16_row256_k2": Softmax "softmax" 256 ["WG=256", "KMAX=2", "F16"];
    "softmax_f16_row256_k4": Softmax "softmax" 256 ["WG=256", "KMAX=4", "F16"];
    "softmax_f16_row256_k8": Softmax "softmax" 256 ["WG=256", "KMAX=8", "F16"];
    "softmax_f16_row512_k4": Softmax "softmax" 512 ["WG=512", "KMAX=4", "F16"];
    "softmax_f16_row512_k8": Softmax "softmax" 512 ["WG=512", "KMAX=8", "F16"];
    "softmax_f16_row1024_k4": Softmax "softmax" 1024 ["WG=1024", "KMAX=4", "F16"];
    "softmax_f16_row1024_k8": Softmax "softmax" 1024 ["WG=1024", "KMAX=8", "F16"];
    "softmax_f16_loop": Softmax "softmax" 256 ["WG=256", "LOOP", "F16"];
    "softmax_f16_persist1024_k4": Softmax "softmax" 1024 ["WG=1024", "KMAX=4", "PERSIST", "F16"];
    "softmax_f16_persist1024_k8": Softmax "softmax" 1024 ["WG=1024", "KMAX=8", "PERSIST", "F16"];
    "rms_norm_f32_sub_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "SUB"];
    "rms_norm_f32_sub_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "SUB"];
    "rms_norm_f32_sub_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "SUB"];
    "rms_norm_f32_sub_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "SUB"];
    "rms_norm_f32_row256_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1"];
    "rms_norm_f32_row256_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2"];
    "rms_norm_f32_row256_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4"];
    "rms_norm_f32_row256_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8"];
    "rms_norm_f32_row512_k4": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=4"];
    "rms_norm_f32_row512_k8": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=8"];
    "rms_norm_f32_row1024_k4": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=4"];
    "rms_norm_f32_row1024_k8": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=8"];
    "rms_norm_f32_loop": RmsNorm "rms_norm" 256 ["WG=256", "LOOP"];
    "rms_norm_f16_sub_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "SUB", "F16"];
    "rms_norm_f16_sub_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "SUB", "F16"];
    "rms_norm_f16_sub_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "SUB", "F16"];
    "rms_norm_f16_sub_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "SUB", "F16"];
    "rms_norm_f16_row256_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "F16"];
    "rms_norm_f16_row256_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "F16"];
    "rms_norm_f16_row256_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "F16"];
    "rms_norm_f16_row256_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "F16"];
    "rms_norm_f16_row512_k4": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=4", "F16"];
    "rms_norm_f16_row512_k8": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=8", "F16"];
    "rms_norm_f16_row1024_k4": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=4", "F16"];
    "rms_norm_f16_row1024_k8": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=8", "F16"];
    "rms_norm_f16_loop": RmsNorm "rms_norm" 256 ["WG=256", "LOOP", "F16"];
    "add_rms_norm_f32_sub_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "SUB", "ADD"];
    "add_rms_norm_f32_sub_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "SUB", "ADD"];
    "add_rms_norm_f32_sub_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "SUB", "ADD"];
    "add_rms_norm_f32_sub_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "SUB", "ADD"];
    "add_rms_norm_f32_row256_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "ADD"];
    "add_rms_norm_f32_row256_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "ADD"];
    "add_rms_norm_f32_row256_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "ADD"];
    "add_rms_norm_f32_row256_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "ADD"];
    "add_rms_norm_f32_row512_k4": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=4", "ADD"];
    "add_rms_norm_f32_row512_k8": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=8", "ADD"];
    "add_rms_norm_f32_row1024_k4": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=4", "ADD"];
    "add_rms_norm_f32_row1024_k8": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=8", "ADD"];
    "add_rms_norm_f32_loop": RmsNorm "rms_norm" 256 ["WG=256", "LOOP", "ADD"];
    "add_rms_norm_f16_sub_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "SUB", "ADD", "F16"];
    "add_rms_norm_f16_sub_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "SUB", "ADD", "F16"];
    "add_rms_norm_f16_sub_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "SUB", "ADD", "F16"];
    "add_rms_norm_f16_sub_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "SUB", "ADD", "F16"];
    "add_rms_norm_f16_row256_k1": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=1", "ADD", "F16"];
    "add_rms_norm_f16_row256_k2": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=2", "ADD", "F16"];
    "add_rms_norm_f16_row256_k4": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=4", "ADD", "F16"];
    "add_rms_norm_f16_row256_k8": RmsNorm "rms_norm" 256 ["WG=256", "KMAX=8", "ADD", "F16"];
    "add_rms_norm_f16_row512_k4": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=4", "ADD", "F16"];
    "add_rms_norm_f16_row512_k8": RmsNorm "rms_norm" 512 ["WG=512", "KMAX=8", "ADD", "F16"];
    "add_rms_norm_f16_row1024_k4": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=4", "ADD", "F16"];
    "add_rms_norm_f16_row1024_k8": RmsNorm "rms_norm" 1024 ["WG=1024", "KMAX=8", "ADD", "F16"];
    "add_rms_norm_f16_loop": RmsNorm "rms_norm" 256 ["WG=256", "LOOP", "ADD", "F16"];
    "lora_f32": Lora "lora" 256 [];
    "lora_f16": Lora "lora" 256 ["F16"];
    "lora_f32_skinny256_tm1": Lora "lora" 256 ["SKINNY", "WG=256", "TM=1"];
    "lora_f32_skinny256_tm2": Lora "lora" 256 ["SKINNY", "WG=256", "TM=2"];
    "lora_f32_skinny256_tm4": Lora "lora" 256 ["SKINNY", "WG=256", "TM=4"];
    "lora_f32_skinny1024_tm1": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=1"];
    "lora_f32_skinny1024_tm2": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=2"];
    "lora_f32_skinny1024_tm4": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=4"];
    "lora_f16_skinny256_tm1": Lora "lora" 256 ["SKINNY", "WG=256", "TM=1", "F16"];
    "lora_f16_skinny256_tm2": Lora "lora" 256 ["SKINNY", "WG=256", "TM=2", "F16"];
    "lora_f16_skinny256_tm4": Lora "lora" 256 ["SKINNY", "WG=256", "TM=4", "F16"];
    "lora_f16_skinny1024_tm1": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=1", "F16"];
    "lora_f16_skinny1024_tm2": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=2", "F16"];
    "lora_f16_skinny1024_tm4": Lora "lora" 1024 ["SKINNY", "WG=1024", "TM=4", "F16"];
}

/// The native kernel named `name`.
pub(crate) fn native_kernel(name: &str) -> Option<&'static NativeKernel> {
    NATIVE_KERNELS.iter().find(|k| k.name == name)
}

/// The MSL source of `shader` (one `.metal` file per op family).
#[cfg(feature = "msl")]
pub fn msl(shader: Shader) -> Option<&'static str> {
    match shader {
        Shader::Softmax => Some(concat!(include_str!("../shaders/msl/rows.h.metal"), include_str!("../shaders/msl/softmax.metal"))),
        Shader::RmsNorm => Some(concat!(include_str!("../shaders/msl/rows.h.metal"), include_str!("../shaders/msl/rms_norm.metal"))),
        Shader::Lora => Some(include_str!("../shaders/msl/lora.metal")),
        Shader::Unfused | Shader::Copy | Shader::LoraCoop => None,
    }
}

/// The language the kernels of `backend` are written in on this adapter, or why none can run.
pub(crate) fn language(info: &Info, backend: Backend) -> Result<Language> {
    match backend {
        Backend::Wgsl => Ok(Language::Wgsl),
        Backend::Native => native_language(info),
    }
}

/// The native language for this adapter, or a typed error that says what would work.
pub(crate) fn native_language(info: &Info) -> Result<Language> {
    let api = info.adapter.backend;
    let requested = format!("Native on {api:?}");
    let unavailable = |why: String| Err(Error::BackendUnavailable { requested: requested.clone(), why });
    if !info.features.contains(wgpu::Features::PASSTHROUGH_SHADERS) {
        return unavailable(format!("the device lacks PASSTHROUGH_SHADERS; use Backend::Wgsl on {}", info.adapter.name));
    }
    match api {
        wgpu::Backend::Vulkan if cfg!(feature = "spirv") => Ok(Language::SpirV),
        wgpu::Backend::Vulkan => {
            unavailable("this build lacks the `spirv` cargo feature; rebuild with --features spirv, or use Backend::Wgsl".into())
        }
        wgpu::Backend::Metal if cfg!(feature = "msl") => Ok(Language::Msl),
        wgpu::Backend::Metal => {
            unavailable("this build lacks the `msl` cargo feature; rebuild with --features msl, or use Backend::Wgsl".into())
        }
        other => unavailable(format!(
            "no native kernels exist for {other:?}: native kernels are MSL on Metal and SPIR-V on Vulkan; use Backend::Wgsl"
        )),
    }
}

/// What one shader module holds: a WGSL or MSL file (every entry point of `shader`), or one
/// SPIR-V kernel (`unit`: its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ModuleKey {
    pub shader: Shader,
    pub lang: Language,
    pub unit: &'static str,
}

/// Creates the module `key` names.
pub(crate) fn create_module(device: &wgpu::Device, key: ModuleKey, checks: bool) -> Result<wgpu::ShaderModule> {
    let shader = key.shader;
    match key.lang {
        Language::Wgsl => {
            let desc = wgpu::ShaderModuleDescriptor { label: Some(shader.name()), source: wgpu::ShaderSource::Wgsl(shader.wgsl().into()) };
            let checks = if checks { wgpu::ShaderRuntimeChecks::checked() } else { wgpu::ShaderRuntimeChecks::unchecked() };
            // SAFETY: every kernel's sizes (rows, row length, chunk counts, binding sizes) are
            // validated on the host before dispatch, and bindings are padded to whole chunks, so
            // the shaders never index out of bounds; `shader_checks: true` restores the checks.
            Ok(unsafe { device.create_shader_module_trusted(desc, checks) })
        }
        Language::SpirV => create_spirv(device, key),
        Language::Msl => create_msl(device, key),
    }
}

fn missing(key: ModuleKey, why: &str) -> Error {
    Error::BackendUnavailable { requested: format!("{:?} kernel {} ({})", key.lang, key.unit, key.shader.name()), why: why.into() }
}

#[cfg(feature = "spirv")]
fn create_spirv(device: &wgpu::Device, key: ModuleKey) -> Result<wgpu::ShaderModule> {
    let bytes = spirv(key.unit).ok_or_else(|| missing(key, "no such native kernel; use Backend::Wgsl"))?;
    let entry = [wgpu::PassthroughShaderEntryPoint { name: "main".into(), workgroup_size: (0, 0, 0) }];
    let desc = wgpu::ShaderModuleDescriptorPassthrough {
        label: Some(key.unit),
        entry_points: entry.as_slice().into(),
        spirv: Some(wgpu::util::make_spirv_raw(bytes)),
        ..Default::default()
    };
    // SAFETY: the SPIR-V is compiled from shaders/glsl by `cargo xtask shaders` (checked in CI);
    // its storage bindings (slots 0.., in order), its uniform block of sizes (the next slot)
    // and its workgroup size match the layouts made in context.rs, and the host validates every
    // size the kernels index with.
    Ok(unsafe { device.create_shader_module_passthrough(desc) })
}

#[cfg(not(feature = "spirv"))]
fn create_spirv(_: &wgpu::Device, key: ModuleKey) -> Result<wgpu::ShaderModule> {
    Err(missing(key, "this build lacks the `spirv` cargo feature; rebuild with --features spirv, or use Backend::Wgsl"))
}

#[cfg(feature = "msl")]
fn create_msl(device: &wgpu::Device, key: ModuleKey) -> Result<wgpu::ShaderModule> {
    let source = msl(key.shader).ok_or_else(|| missing(key, "no MSL file for this shader; use Backend::Wgsl"))?;
    let entries: Vec<wgpu::PassthroughShaderEntryPoint> = NATIVE_KERNELS
        .iter()
        .filter(|k| k.shader == key.shader)
        .map(|k| wgpu::PassthroughShaderEntryPoint { name: k.name.into(), workgroup_size: (k.workgroup, 1, 1) })
        .collect();
    let desc = wgpu::ShaderModuleDescriptorPassthrough {
        label: Some(key.shader.name()),
        entry_points: entries.into(),
        msl: Some(source.into()),
        ..Default::default()
    };
    // SAFETY: the MSL kernels take their buffers at the indices wgpu's Metal backend assigns to
    // our explicit layouts (immediates at buffer 0, bindings from 1 in order) and are checked by
    // `cargo xtask check-msl`; the host validates every size the kernels index with.
    Ok(unsafe { device.create_shader_module_passthrough(desc) })
}

#[cfg(not(feature = "msl"))]
fn create_msl(_: &wgpu::Device, key: ModuleKey) -> Result<wgpu::ShaderModule> {
    Err(missing(key, "this build lacks the `msl` cargo feature; rebuild with --features msl, or use Backend::Wgsl"))
}
