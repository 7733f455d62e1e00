//! `cargo xtask probe FILE.wgsl [--mib N]`: times the compute entry points of a WGSL file
//! against a copy over the same bytes, to try a kernel's memory pattern or loop structure
//! before it goes into a library kernel.
//!
//! Bindings: 0 `src` (read, N MiB of random f32, default 64), 1 `dst` (read-write, N MiB),
//! 2 `small` (read, 1 MiB of random f32), `src2` / `dst2` (N MiB each, made only when named) and
//! `zero` (1 MiB of zeros, made only when named);
//! a line `// bind 3:src,4:dst,...` binds those buffers
//! at other numbers instead (every entry point must use every binding). Each entry point to
//! time has a line
//! `// dispatch <entry> <workgroups> [<MiB moved>]` (default: 2 N, src read and dst written);
//! modules are built as the library builds its own, without bounds checks (`--checked` adds them);
//! more than 65535 workgroups are laid out as x × y, so an entry point takes its index as
//! `wid.x + wid.y * nwg.x`.
//!
//! So that a library shader runs unchanged: `// params 4096 4096 0.5 ...` sets the immediates
//! (words: integers as u32, numbers with a point as f32 bits), and `// constants WG=256,T=256`
//! the pipeline-overridable constants of every entry point; with a line `// uniform N` the
//! params go to a uniform buffer at binding N instead (as the library's WGSL kernels take them).
//!
//! `--half` fills the buffers with f16 values instead (same bytes), for kernels that read f16
//! inputs; `--dump N` reads back the first N f32 words of `dst` after each entry point and
//! prints their sum and sum of magnitudes, so that variants of one computation can be checked
//! against each other.

use std::time::Duration;

use rand::SeedableRng;
use wgfuse::kernels::copy;
use wgfuse::timing::{median, Timer};
use wgfuse::{Context, DType};

use crate::util::{err, random, Res};

fn time(timer: &mut Timer, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> wgfuse::Result<()>) -> Res<f64> {
    timer.warm_up(Duration::from_millis(200), &mut f).map_err(err)?;
    Ok(median(&timer.time(30, &mut f).map_err(err)?))
}

pub fn run(args: &[String]) -> Res<()> {
    let mut file = None;
    let mut mib = 64usize;
    let mut checked = false;
    let mut half = false;
    let mut dump = 0usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mib" => mib = it.next().ok_or("--mib needs a value")?.parse().map_err(err)?,
            "--checked" => checked = true,
            "--half" => half = true,
            "--dump" => dump = it.next().ok_or("--dump needs a value")?.parse().map_err(err)?,
            f if file.is_none() => file = Some(f.to_string()),
            o => return Err(format!("unknown option {o}")),
        }
    }
    let file = file.ok_or("usage: cargo xtask probe FILE.wgsl [--mib N] [--checked] [--half] [--dump N]")?;
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{file}: {e}"))?;
    let ctx = Context::new().map_err(err)?;
    println!("{}", ctx.info());
    for c in &ctx.info().cooperative_matrix {
        println!("cooperative matrix: {}x{}x{} {:?} -> {:?}", c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type);
    }
    let mut timer = Timer::new(&ctx, 256 << 20).map_err(err)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let (dtype, n, n_small) = if half { (DType::F16, mib << 19, 1 << 19) } else { (DType::F32, mib << 18, 1 << 18) };
    let src = random(&ctx, &mut rng, &[n], dtype)?;
    let dst = random(&ctx, &mut rng, &[n], dtype)?;
    let small = random(&ctx, &mut rng, &[n_small], dtype)?;
    // A second pair of N MiB buffers, made only when a `// bind` line names them (add + RMSNorm
    // reads x and r and writes y and h).
    let bind_line = text.lines().find_map(|l| l.trim().strip_prefix("// bind ")).unwrap_or("");
    let second = |name: &str, rng: &mut rand::rngs::SmallRng| -> Res<Option<wgfuse::Tensor>> {
        if bind_line.split(',').any(|b| b.trim().ends_with(&format!(":{name}"))) {
            return random(&ctx, rng, &[n], dtype).map(Some);
        }
        Ok(None)
    };
    let src2 = second("src2", &mut rng)?;
    let dst2 = second("dst2", &mut rng)?;
    // `zero`: 1 MiB of zeros (counters a probe resets itself before it ends), made only when named.
    let zero = if bind_line.split(',').any(|b| b.trim().ends_with(":zero")) {
        Some(ctx.tensor(&vec![0.0f32; 1 << 18], &[1 << 18]).map_err(err)?)
    } else {
        None
    };
    let device = ctx.device();
    let module = ctx
        .scoped(|| {
            let desc = wgpu::ShaderModuleDescriptor { label: Some("probe"), source: wgpu::ShaderSource::Wgsl(text.as_str().into()) };
            let checks = if checked { wgpu::ShaderRuntimeChecks::checked() } else { wgpu::ShaderRuntimeChecks::unchecked() };
            // SAFETY: as the library's modules (`--checked` restores the bounds checks); a probe
            // that indexes out of its buffers is a bug in the probe, which `--checked` finds.
            unsafe { device.create_shader_module_trusted(desc, checks) }
        })
        .map_err(err)?;
    let mut binds = vec![(0u32, &src), (1, &dst), (2, &small)];
    if let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("// bind ")) {
        binds = line
            .split(',')
            .map(|b| {
                let (n, which) = b.trim().split_once(':').ok_or(format!("bad binding {b:?}"))?;
                let buf = match which {
                    "src" => &src,
                    "dst" => &dst,
                    "small" => &small,
                    "src2" => src2.as_ref().ok_or("src2")?,
                    "dst2" => dst2.as_ref().ok_or("dst2")?,
                    "zero" => zero.as_ref().ok_or("zero")?,
                    o => return Err(format!("unknown buffer {o:?}")),
                };
                Ok((n.parse::<u32>().map_err(err)?, buf))
            })
            .collect::<Res<_>>()?;
    }
    let params: Vec<u32> = match text.lines().find_map(|l| l.trim().strip_prefix("// params ")) {
        Some(line) => line
            .split_whitespace()
            .map(|w| if w.contains('.') { w.parse::<f32>().map(f32::to_bits).map_err(err) } else { w.parse::<u32>().map_err(err) })
            .collect::<Res<_>>()?,
        None => Vec::new(),
    };
    let constants: Vec<(String, f64)> = match text.lines().find_map(|l| l.trim().strip_prefix("// constants ")) {
        Some(line) => line
            .split(',')
            .map(|c| {
                let (k, v) = c.trim().split_once('=').ok_or(format!("bad constant {c:?}"))?;
                Ok((k.to_string(), v.parse::<f64>().map_err(err)?))
            })
            .collect::<Res<_>>()?,
        None => Vec::new(),
    };
    let param_bytes: Vec<u8> = params.iter().flat_map(|w| w.to_le_bytes()).collect();
    let consts: Vec<(&str, f64)> = constants.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    // `// uniform N`: the params go to a uniform buffer at binding N instead of immediates.
    let uniform_at: Option<u32> = match text.lines().find_map(|l| l.trim().strip_prefix("// uniform ")) {
        Some(n) => Some(n.trim().parse().map_err(err)?),
        None => None,
    };
    let uniform = match uniform_at {
        Some(_) => {
            use wgpu::util::DeviceExt;
            let mut bytes = param_bytes.clone();
            bytes.resize(bytes.len().next_multiple_of(16).max(16), 0);
            let desc =
                wgpu::util::BufferInitDescriptor { label: Some("probe params"), contents: &bytes, usage: wgpu::BufferUsages::UNIFORM };
            Some(ctx.scoped(|| ctx.device().create_buffer_init(&desc)).map_err(err)?)
        }
        None => None,
    };
    let immediate_size = if uniform_at.is_some() { 0 } else { (params.len() * 4) as u32 };
    let layout = if params.is_empty() { None } else { Some(bind_layout(&ctx, &text, &binds, immediate_size, uniform_at)?) };
    let copy_us = time(&mut timer, |p| copy::encode(&ctx, p, &src, &dst))?;
    let bytes = 2.0 * (mib << 20) as f64;
    println!("copy {mib} MiB -> {mib} MiB: {copy_us:.2} µs, {:.0} GB/s", bytes / (copy_us * 1e3));
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("// dispatch ") else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let (entry, groups) = match f.as_slice() {
            [e, g, ..] => (*e, g.parse::<u32>().map_err(err)?),
            _ => return Err(format!("bad line {line:?}")),
        };
        let moved = match f.get(2) {
            Some(m) => m.parse::<f64>().map_err(err)? * (1 << 20) as f64,
            None => bytes,
        };
        let pipeline = ctx
            .scoped(|| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: layout.as_ref().map(|(_, pl)| pl),
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions { constants: &consts, zero_initialize_workgroup_memory: false },
                    cache: None,
                })
            })
            .map_err(|e| format!("{entry}: {e}"))?;
        let group_layout = match &layout {
            Some((bgl, _)) => bgl.clone(),
            None => pipeline.get_bind_group_layout(0),
        };
        let group = ctx
            .scoped(|| {
                device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some(entry),
                    layout: &group_layout,
                    entries: &binds
                        .iter()
                        .map(|&(i, t)| wgpu::BindGroupEntry { binding: i, resource: t.buffer().as_entire_binding() })
                        .chain(
                            uniform_at
                                .zip(uniform.as_ref())
                                .map(|(i, b)| wgpu::BindGroupEntry { binding: i, resource: b.as_entire_binding() }),
                        )
                        .collect::<Vec<_>>(),
                })
            })
            .map_err(|e| format!("{entry}: {e}"))?;
        let (gx, gy) =
            if groups > 65535 { (65535u32.min(groups.div_ceil(groups.div_ceil(65535))), groups.div_ceil(65535)) } else { (groups, 1) };
        let us = time(&mut timer, |p| {
            p.set_pipeline(&pipeline);
            p.set_bind_group(0, &group, &[]);
            if immediate_size > 0 {
                p.set_immediates(0, &param_bytes);
            }
            p.dispatch_workgroups(gx, gy, 1);
            Ok(())
        })?;
        println!(
            "{entry:<24} {groups:>7} groups {us:9.2} µs {:7.0} GB/s {:6.1}% of the copy of the same bytes",
            moved / (us * 1e3),
            100.0 * copy_us * (moved / bytes) / us
        );
        if dump > 0 {
            // The words as f32 whatever the buffer's dtype (two halves a word).
            let words: Vec<u32> = if half {
                dst.to_vec::<half::f16>().map_err(err)?.chunks(2).map(|h| h[0].to_bits() as u32 | (h[1].to_bits() as u32) << 16).collect()
            } else {
                dst.to_vec::<f32>().map_err(err)?.iter().map(|x| x.to_bits()).collect()
            };
            let v: Vec<f64> = words.iter().take(dump).map(|&w| f32::from_bits(w) as f64).collect();
            let (sum, abs) = v.iter().fold((0.0, 0.0), |(s, a), &x| (s + x, a + x.abs()));
            println!("  dst[..{}]: sum {sum:.6e}, sum |.| {abs:.6e}, first {:?}", v.len(), &v[..v.len().min(4)]);
        }
    }
    Ok(())
}

/// An explicit layout (immediates need one): every bound buffer as a storage buffer, read-only
/// where the shader declares it `read`.
fn bind_layout(
    ctx: &Context,
    text: &str,
    binds: &[(u32, &wgfuse::Tensor)],
    immediate_size: u32,
    uniform_at: Option<u32>,
) -> Res<(wgpu::BindGroupLayout, wgpu::PipelineLayout)> {
    let device = ctx.device();
    let read_only = |n: u32| text.lines().any(|l| l.contains(&format!("@binding({n})")) && l.contains("var<storage, read>"));
    let entries: Vec<wgpu::BindGroupLayoutEntry> = binds
        .iter()
        .map(|&(n, _)| wgpu::BindGroupLayoutEntry {
            binding: n,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only: read_only(n) },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .chain(uniform_at.map(|n| wgpu::BindGroupLayoutEntry {
            binding: n,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Uniform, has_dynamic_offset: false, min_binding_size: None },
            count: None,
        }))
        .collect();
    ctx.scoped(|| {
        let bgl = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("probe"), entries: &entries });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("probe"),
            bind_group_layouts: &[Some(&bgl)],
            immediate_size,
        });
        (bgl, pl)
    })
    .map_err(err)
}
