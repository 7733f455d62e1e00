//! `cargo xtask shader-stats`: the driver's own compile statistics (registers, shared memory,
//! spills, instruction counts: whatever the driver reports) for every WGSL kernel the library
//! picks for the benchmark shapes, read through `VK_KHR_pipeline_executable_properties`.
//!
//! wgpu exposes none of this, so the kernels are compiled a second time on a Vulkan device of
//! our own, from the SPIR-V that wgpu's Vulkan backend makes of them (naga, with the library's
//! pipeline constants, no bounds checks, no loop bounding, no zero-initialised workgroup memory,
//! as the library creates them). Nothing is dispatched: the ops are recorded into a pass that is
//! never submitted, only so that the Context picks and compiles its kernels.
//!
//! Options: `--ops softmax,rms_norm,add_rms_norm,lora` (default: all), `--ir DIR` (write the
//! driver's internal representations, where it gives any, to `DIR`).

use std::ffi::{c_char, CStr, CString};

use ash::vk;
use wgfuse::kernels::{lora, rms_norm, softmax, Kind, PipelineKey, Variant};
use wgfuse::{Backend, Context, DType, Tensor};

use crate::util::{err, Res};

const EXT: &CStr = vk::KHR_PIPELINE_EXECUTABLE_PROPERTIES_NAME;

/// A tensor over a fresh, never-written buffer: the kernels are only recorded, not run.
fn blank(ctx: &Context, shape: &[usize], dtype: DType) -> Res<Tensor> {
    let n: usize = shape.iter().product();
    let size = (n * dtype.size()).next_multiple_of(16) as u64;
    let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("shader-stats"),
        size,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    ctx.tensor_from_buffer(&buf, 0, shape, dtype).map_err(err)
}

fn fits(ctx: &Context, bytes: usize) -> bool {
    bytes as u64 <= ctx.info().limits.max_storage_buffer_binding_size
}

/// Records the table's cases of `ops` into a pass that is dropped unsubmitted: the Context
/// compiles the kernels it picks for them.
fn record_cases(ctx: &Context, ops: &[String]) -> Res<()> {
    let want = |op: &str| ops.is_empty() || ops.iter().any(|o| o == op);
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    let mut pass = enc.begin_compute_pass(&Default::default());
    for dtype in [DType::F32, DType::F16] {
        for (rows, n) in [(128, 1024), (4096, 4096), (4096, 8192), (16384, 4096), (4096, 32000)] {
            if !fits(ctx, rows * n * dtype.size()) {
                println!("skipped {rows}x{n} {}: over the device's binding limit", dtype.name());
                continue;
            }
            let (x, y) = (blank(ctx, &[rows, n], dtype)?, blank(ctx, &[rows, n], dtype)?);
            let w = blank(ctx, &[n], dtype)?;
            if want("softmax") {
                softmax::encode(ctx, &mut pass, &softmax::Args { x: &x, y: &y, variant: None }).map_err(err)?;
            }
            if want("rms_norm") {
                let a = rms_norm::Args { x: &x, residual: None, weight: Some(&w), y: &y, h: None, eps: 1e-5, variant: None };
                rms_norm::encode(ctx, &mut pass, &a).map_err(err)?;
            }
            if want("add_rms_norm") {
                let (r, h) = (blank(ctx, &[rows, n], dtype)?, blank(ctx, &[rows, n], dtype)?);
                let a = rms_norm::Args { x: &x, residual: Some(&r), weight: Some(&w), y: &y, h: Some(&h), eps: 1e-5, variant: None };
                rms_norm::encode(ctx, &mut pass, &a).map_err(err)?;
            }
        }
        if want("lora") {
            for [rows, k_in, rank, out] in [[4096, 4096, 16, 4096], [512, 512, 8, 512], [1, 4096, 16, 4096]] {
                let (x, a) = (blank(ctx, &[rows, k_in], dtype)?, blank(ctx, &[k_in, rank], dtype)?);
                let (b, base, y) = (blank(ctx, &[rank, out], dtype)?, blank(ctx, &[rows, out], dtype)?, blank(ctx, &[rows, out], dtype)?);
                let args = lora::Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: 0.5, mode: lora::Mode::Base, variant: None };
                lora::encode(ctx, &mut pass, &args).map_err(err)?;
                if rows < 4096 {
                    continue;
                }
                // The tiled x·A's other forms: 32 k lanes, and row groups of 2 rows.
                for (lanes, mode) in [(32, 0), (16, lora::MODE_XA_ROWS2), (32, lora::MODE_XA_ROWS2)] {
                    let variant = Some(Variant { kind: Kind::Project, wg: 256, threads: lanes, chunks: 16, mode });
                    lora::encode(ctx, &mut pass, &lora::Args { variant, ..args }).map_err(err)?;
                }
            }
        }
    }
    Ok(())
}

/// The SPIR-V wgpu's Vulkan backend makes of `key`'s kernel, as the library creates it.
fn spirv(key: &PipelineKey, lang: (u8, u8)) -> Res<(Vec<u32>, Vec<vk::DescriptorSetLayoutBinding<'static>>, u32)> {
    let module = naga::front::wgsl::parse_str(key.shader().wgsl()).map_err(|e| format!("{}: {e}", key.shader().name()))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{}: {e:?}", key.shader().name()))?;
    let entry = key.entry_point();
    let mut constants = naga::back::PipelineConstants::default();
    for (name, v) in key.constants() {
        constants.insert(name.to_string(), v);
    }
    let (module, info) =
        naga::back::pipeline_constants::process_overrides(&module, &info, Some((naga::ShaderStage::Compute, &entry)), &constants)
            .map_err(|e| format!("{entry}: {e}"))?;
    let unchecked = naga::proc::BoundsCheckPolicy::Unchecked;
    let options = naga::back::spv::Options {
        lang_version: lang,
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: unchecked,
            buffer: unchecked,
            image_load: unchecked,
            binding_array: unchecked,
        },
        zero_initialize_workgroup_memory: naga::back::spv::ZeroInitializeWorkgroupMemoryMode::None,
        force_loop_bounding: false,
        emit_int_div_checks: false,
        ..Default::default()
    };
    let pipeline = naga::back::spv::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: entry.clone() };
    let words = naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline)).map_err(|e| format!("{entry}: {e}"))?;
    // Every storage and uniform binding of group 0 (each entry point refers to all of its
    // file's), and any immediates as push constants.
    let mut bindings = Vec::new();
    let mut immediates = 0;
    for (_, var) in module.global_variables.iter() {
        let kind = match var.space {
            naga::AddressSpace::Storage { .. } => Some(vk::DescriptorType::STORAGE_BUFFER),
            naga::AddressSpace::Uniform => Some(vk::DescriptorType::UNIFORM_BUFFER),
            _ => None,
        };
        match (kind, var.space, &var.binding) {
            (Some(kind), _, Some(b)) if b.group == 0 => bindings.push(
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b.binding)
                    .descriptor_type(kind)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE),
            ),
            (_, naga::AddressSpace::Immediate, _) => immediates = module.types[var.ty].inner.size(module.to_ctx()),
            _ => {}
        }
    }
    Ok((words, bindings, immediates))
}

/// A statistic's value as text.
fn value(s: &vk::PipelineExecutableStatisticKHR<'_>) -> String {
    // SAFETY: `format` names the union's live member.
    unsafe {
        match s.format {
            vk::PipelineExecutableStatisticFormatKHR::BOOL32 => (s.value.b32 != 0).to_string(),
            vk::PipelineExecutableStatisticFormatKHR::INT64 => s.value.i64.to_string(),
            vk::PipelineExecutableStatisticFormatKHR::UINT64 => s.value.u64.to_string(),
            vk::PipelineExecutableStatisticFormatKHR::FLOAT64 => format!("{:.3}", s.value.f64),
            other => format!("{other:?}"),
        }
    }
}

fn text(chars: &[c_char]) -> String {
    // SAFETY: the driver writes NUL-terminated strings into these fixed arrays.
    unsafe { CStr::from_ptr(chars.as_ptr()) }.to_string_lossy().into_owned()
}

/// One executable of a pipeline as the driver reports it: its name (and subgroup size), its
/// statistics (name, value) and, when asked for, its internal representations (name, bytes).
struct Executable {
    name: String,
    stats: Vec<(String, String)>,
    reprs: Vec<(String, Vec<u8>)>,
}

/// Our own Vulkan device on the adapter wgfuse picked, with every feature it supports and the
/// executable-properties extension where the driver has it.
struct Vk {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    stats: Option<ash::khr::pipeline_executable_properties::Device>,
    lang: (u8, u8),
    push_limit: u32,
}

impl Vk {
    fn new(adapter_name: &str) -> Res<Self> {
        // SAFETY: plain Vulkan set-up; every object is destroyed in `drop`.
        unsafe {
            let entry = ash::Entry::load().map_err(|e| format!("Vulkan loader: {e}"))?;
            let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_3);
            let instance = entry.create_instance(&vk::InstanceCreateInfo::default().application_info(&app), None).map_err(err)?;
            let made = Self::open(&instance, adapter_name);
            match made {
                Ok((device, has_ext, lang, push_limit)) => {
                    let stats = has_ext.then(|| ash::khr::pipeline_executable_properties::Device::new(&instance, &device));
                    Ok(Vk { _entry: entry, instance, device, stats, lang, push_limit })
                }
                Err(e) => {
                    instance.destroy_instance(None);
                    Err(e)
                }
            }
        }
    }

    unsafe fn open(instance: &ash::Instance, adapter_name: &str) -> Res<(ash::Device, bool, (u8, u8), u32)> {
        let phys = instance.enumerate_physical_devices().map_err(err)?;
        let named = |p: &vk::PhysicalDevice| {
            let props = instance.get_physical_device_properties(*p);
            props.device_name_as_c_str().is_ok_and(|n| n.to_string_lossy() == adapter_name)
        };
        let pd = *phys.iter().find(|p| named(p)).or(phys.first()).ok_or("no Vulkan physical device")?;
        let props = instance.get_physical_device_properties(pd);
        let exts = instance.enumerate_device_extension_properties(pd).map_err(err)?;
        let has_ext = exts.iter().any(|e| e.extension_name_as_c_str().is_ok_and(|n| n == EXT));
        let family = instance
            .get_physical_device_queue_family_properties(pd)
            .iter()
            .position(|q| q.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or("no compute queue")? as u32;
        let api = props.api_version.min(vk::API_VERSION_1_3);
        let lang = if api >= vk::API_VERSION_1_3 {
            (1, 6)
        } else if api >= vk::API_VERSION_1_2 {
            (1, 5)
        } else {
            (1, 3)
        };
        let has_ext = has_ext && {
            let mut fexe = vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default();
            let mut f = vk::PhysicalDeviceFeatures2::default().push_next(&mut fexe);
            instance.get_physical_device_features2(pd, &mut f);
            fexe.pipeline_executable_info == vk::TRUE
        };
        // Every feature the device has (f16 arithmetic and storage, subgroup sizes, ...).
        let mut f11 = vk::PhysicalDeviceVulkan11Features::default();
        let mut f12 = vk::PhysicalDeviceVulkan12Features::default();
        let mut f13 = vk::PhysicalDeviceVulkan13Features::default();
        let mut fexe = vk::PhysicalDevicePipelineExecutablePropertiesFeaturesKHR::default().pipeline_executable_info(true);
        let mut features = vk::PhysicalDeviceFeatures2::default().push_next(&mut f11).push_next(&mut f12);
        if api >= vk::API_VERSION_1_3 {
            features = features.push_next(&mut f13);
        }
        instance.get_physical_device_features2(pd, &mut features);
        if has_ext {
            features = features.push_next(&mut fexe);
        }
        let prio = [1.0f32];
        let queues = [vk::DeviceQueueCreateInfo::default().queue_family_index(family).queue_priorities(&prio)];
        let names: Vec<*const c_char> = if has_ext { vec![EXT.as_ptr()] } else { Vec::new() };
        let info = vk::DeviceCreateInfo::default().queue_create_infos(&queues).enabled_extension_names(&names).push_next(&mut features);
        let device = instance.create_device(pd, &info, None).map_err(err)?;
        Ok((device, has_ext, lang, props.limits.max_push_constants_size))
    }

    /// Compiles `key`'s kernel and returns the driver's statistics per executable (empty
    /// without the extension), and its internal representations when `ir` is set.
    fn compile(&self, key: &PipelineKey, ir: bool) -> Res<Vec<Executable>> {
        let (words, bindings, immediates) = spirv(key, self.lang)?;
        let d = &self.device;
        // SAFETY: objects are created and destroyed here; nothing is submitted.
        unsafe {
            let module = d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&words), None).map_err(err)?;
            let set =
                d.create_descriptor_set_layout(&vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings), None).map_err(err)?;
            let ranges =
                [vk::PushConstantRange::default().stage_flags(vk::ShaderStageFlags::COMPUTE).size(immediates.min(self.push_limit))];
            let sets = [set];
            let mut layout_info = vk::PipelineLayoutCreateInfo::default().set_layouts(&sets);
            if immediates > 0 {
                layout_info = layout_info.push_constant_ranges(&ranges);
            }
            let layout = d.create_pipeline_layout(&layout_info, None).map_err(err)?;
            let name = CString::new(key.entry_point()).map_err(err)?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .flags(vk::PipelineShaderStageCreateFlags::ALLOW_VARYING_SUBGROUP_SIZE)
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(&name);
            let mut flags = vk::PipelineCreateFlags::empty();
            if self.stats.is_some() {
                flags |= vk::PipelineCreateFlags::CAPTURE_STATISTICS_KHR;
                if ir {
                    flags |= vk::PipelineCreateFlags::CAPTURE_INTERNAL_REPRESENTATIONS_KHR;
                }
            }
            let info = [vk::ComputePipelineCreateInfo::default().flags(flags).stage(stage).layout(layout)];
            let made = d.create_compute_pipelines(vk::PipelineCache::null(), &info, None).map_err(|(_, e)| format!("{name:?}: {e}"));
            let out = match made {
                Ok(p) => {
                    let r = self.read(p[0], ir);
                    d.destroy_pipeline(p[0], None);
                    r
                }
                Err(e) => Err(e),
            };
            d.destroy_pipeline_layout(layout, None);
            d.destroy_descriptor_set_layout(set, None);
            d.destroy_shader_module(module, None);
            out
        }
    }

    unsafe fn read(&self, pipeline: vk::Pipeline, ir: bool) -> Res<Vec<Executable>> {
        let Some(ext) = &self.stats else { return Ok(Vec::new()) };
        let execs = ext.get_pipeline_executable_properties(&vk::PipelineInfoKHR::default().pipeline(pipeline)).map_err(err)?;
        let mut out = Vec::new();
        for (i, e) in execs.iter().enumerate() {
            let at = vk::PipelineExecutableInfoKHR::default().pipeline(pipeline).executable_index(i as u32);
            let stats = ext.get_pipeline_executable_statistics(&at).map_err(err)?;
            let stats = stats.iter().map(|s| (text(&s.name), value(s))).collect();
            let mut reprs = Vec::new();
            if ir {
                let mut heads = ext.get_pipeline_executable_internal_representations(&at).map_err(err)?;
                let mut data: Vec<Vec<u8>> = heads.iter().map(|h| vec![0u8; h.data_size]).collect();
                for (h, buf) in heads.iter_mut().zip(data.iter_mut()) {
                    h.p_data = buf.as_mut_ptr().cast();
                }
                let mut n = heads.len() as u32;
                (ext.fp().get_pipeline_executable_internal_representations_khr)(ext.device(), &at, &mut n, heads.as_mut_ptr())
                    .result()
                    .map_err(err)?;
                reprs = heads.iter().zip(data).map(|(h, d)| (text(&h.name), d)).collect();
            }
            out.push(Executable { name: format!("{} ({})", text(&e.name), e.subgroup_size), stats, reprs });
        }
        Ok(out)
    }
}

impl Drop for Vk {
    fn drop(&mut self) {
        // SAFETY: no object of the device outlives `compile`.
        unsafe {
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

pub fn run(args: &[String]) -> Res<()> {
    let mut ops = Vec::new();
    let mut ir_dir = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--ops" => ops = it.next().ok_or("--ops needs a list")?.split(',').map(str::to_string).collect(),
            "--ir" => ir_dir = Some(std::path::PathBuf::from(it.next().ok_or("--ir needs a folder")?)),
            other => return Err(format!("unknown option {other:?}; options: --ops LIST, --ir DIR")),
        }
    }
    let ctx = Context::new().map_err(err)?;
    let adapter = ctx.info().adapter.clone();
    if adapter.backend != wgpu::Backend::Vulkan || ctx.backend() != Backend::Wgsl {
        return Err(format!(
            "shader-stats reads Vulkan driver statistics of the WGSL kernels; the adapter is {:?} / {:?}",
            adapter.backend,
            ctx.backend()
        ));
    }
    println!("device: {} (driver {} {})", adapter.name, adapter.driver, adapter.driver_info);
    record_cases(&ctx, &ops)?;
    let mut keys = ctx.pipeline_keys();
    keys.sort_by_key(|k| (k.entry_point(), format!("{:?}", k.variant)));
    let vk = Vk::new(&adapter.name)?;
    if vk.stats.is_none() {
        println!("the driver lacks {EXT:?}: each kernel is compiled, with no statistics");
    }
    if let Some(dir) = &ir_dir {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    for key in &keys {
        let v = &key.variant;
        let execs = vk.compile(key, ir_dir.is_some())?;
        println!("{} {} (wg {}, T {}, K {}, mode {}):", key.entry_point(), v.describe(), v.wg, v.threads, v.chunks, v.mode);
        for e in execs {
            let line: Vec<String> = e.stats.iter().map(|(n, v)| format!("{n} {v}")).collect();
            println!("  {}: {}", e.name, line.join("; "));
            for (i, (what, data)) in e.reprs.iter().enumerate() {
                if let Some(dir) = &ir_dir {
                    let file = dir.join(format!("{}-{}-{i}.txt", key.entry_point(), v.describe().replace(' ', "_")));
                    std::fs::write(&file, data).map_err(err)?;
                    println!("  {what}: {} bytes in {}", data.len(), file.display());
                }
            }
        }
    }
    Ok(())
}
