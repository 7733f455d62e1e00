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
pub const ALL_SHADERS: [Shader; 5] = [Shader::Softmax, Shader::RmsNorm, Shader::Lora, Shader::Unfused, Shader::Copy];

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
            Shader::Unfused => include_str!("../shaders/wgsl/unfused.wgsl"),
            Shader::Copy => include_str!("../shaders/wgsl/copy.wgsl"),
        }
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
        // The `spirv` and `msl` features reserve the native backends; their kernels are not
        // written yet, so asking for them says so at once rather than op by op.
        wgpu::Backend::Vulkan if cfg!(feature = "spirv") => {
            unavailable("the hand-written SPIR-V kernels are not part of this version yet; use Backend::Wgsl".into())
        }
        wgpu::Backend::Vulkan => {
            unavailable("this build lacks the `spirv` cargo feature; rebuild with --features spirv, or use Backend::Wgsl".into())
        }
        wgpu::Backend::Metal if cfg!(feature = "msl") => {
            unavailable("the hand-written MSL kernels are not part of this version yet; use Backend::Wgsl".into())
        }
        wgpu::Backend::Metal => {
            unavailable("this build lacks the `msl` cargo feature; rebuild with --features msl, or use Backend::Wgsl".into())
        }
        other => unavailable(format!(
            "no native kernels exist for {other:?}: native kernels are MSL on Metal and SPIR-V on Vulkan; use Backend::Wgsl"
        )),
    }
}

/// Creates the module of `shader` in `lang`.
pub(crate) fn create_module(device: &wgpu::Device, shader: Shader, lang: Language, checks: bool) -> Result<wgpu::ShaderModule> {
    match lang {
        Language::Wgsl => {
            let desc = wgpu::ShaderModuleDescriptor { label: Some(shader.name()), source: wgpu::ShaderSource::Wgsl(shader.wgsl().into()) };
            let checks = if checks { wgpu::ShaderRuntimeChecks::checked() } else { wgpu::ShaderRuntimeChecks::unchecked() };
            // SAFETY: every kernel's sizes (rows, row length, chunk counts, binding sizes) are
            // validated on the host before dispatch, and bindings are padded to whole chunks, so
            // the shaders never index out of bounds; `shader_checks: true` restores the checks.
            Ok(unsafe { device.create_shader_module_trusted(desc, checks) })
        }
        Language::Msl | Language::SpirV => {
            Err(Error::BackendUnavailable { requested: format!("{lang:?}"), why: "native kernels are not part of this build".into() })
        }
    }
}
