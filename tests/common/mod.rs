//! Shared test harness: contexts, random inputs, and `assert_close`.
#![allow(dead_code)]

use half::f16;
use rand::{Rng, SeedableRng};
use wgfuse::{Backend, Context, ContextOptions, DType, Tensor};

/// A Context on the best adapter, with outputs poisoned. Panics (fails the test) when no
/// adapter exists: a kernel test that silently skips proves nothing.
pub fn ctx(shader_checks: bool) -> Context {
    ctx_on(Backend::Wgsl, shader_checks)
}

/// A Context on the best adapter running `backend`'s kernels, outputs poisoned. Panics when
/// there is no adapter or the backend cannot run on it.
pub fn ctx_on(backend: Backend, shader_checks: bool) -> Context {
    let opts = ContextOptions { shader_checks, poison_outputs: true, backend, ..ContextOptions::default() };
    match Context::with_options(opts) {
        Ok(c) => c,
        Err(e) => panic!("no GPU adapter for the {backend:?} kernel tests ({e}); install a Vulkan driver (lavapipe: mesa-vulkan-drivers)"),
    }
}

/// Every kernel set the suite runs each case on: WGSL with shader checks off and on, and the
/// native SPIR-V kernels when the `spirv` feature is on (CI builds with every feature; the
/// native kernels then run on lavapipe, which has passthrough shaders).
pub fn contexts() -> Vec<(&'static str, Context)> {
    let mut all = vec![("wgsl", ctx(false)), ("wgsl+checks", ctx(true))];
    if cfg!(feature = "spirv") {
        all.push(("native", ctx_on(Backend::Native, false)));
    }
    all
}

/// The native kernels' Context (tests of native-only behaviour).
pub fn native_ctx() -> Context {
    ctx_on(Backend::Native, false)
}

/// A fresh seeded generator; the seed is printed so that a failure can be replayed.
pub fn rng(what: &str) -> rand::rngs::StdRng {
    let seed: u64 = std::env::var("WGFUSE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| rand::thread_rng().gen());
    eprintln!("{what}: seed {seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// `len` values uniform in `[-scale, scale]`.
pub fn random(rng: &mut impl Rng, len: usize, scale: f64) -> Vec<f64> {
    (0..len).map(|_| rng.gen_range(-scale..=scale)).collect()
}

/// Uploads `data` as `dtype`; returns the tensor and the values as the GPU sees them (f16
/// rounding applied) for the reference.
pub fn upload(ctx: &Context, data: &[f64], shape: &[usize], dtype: DType) -> (Tensor, Vec<f64>) {
    match dtype {
        DType::F32 => {
            let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
            (ctx.tensor(&v, shape).expect("upload"), v.iter().map(|&x| x as f64).collect())
        }
        DType::F16 => {
            let v: Vec<f16> = data.iter().map(|&x| f16::from_f64(x)).collect();
            (ctx.tensor(&v, shape).expect("upload"), v.iter().map(|x| x.to_f64()).collect())
        }
    }
}

pub fn download(t: &Tensor) -> Vec<f64> {
    t.to_vec_f32().expect("download").into_iter().map(f64::from).collect()
}

/// Fails with the count of bad elements, the worst one and where it is. NaN matches only NaN;
/// infinities must match exactly.
pub fn assert_close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut bad = 0usize;
    let mut worst = (0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            approx::abs_diff_eq!(g, w, epsilon = atol + rtol * w.abs())
        };
        if !ok {
            bad += 1;
            let err = if (g - w).is_nan() { f64::INFINITY } else { (g - w).abs() };
            if err >= worst.1 {
                worst = (i, err);
            }
        }
    }
    if bad > 0 {
        let i = worst.0;
        panic!("{what}: {bad} of {} elements off (atol {atol}, rtol {rtol}); worst at {i}: got {}, want {}", got.len(), got[i], want[i]);
    }
}

/// Tolerances per dtype for normalised outputs (values in [0, 1] or O(1)).
pub fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F32 => (1e-6, 1e-4),
        DType::F16 => (2e-3, 1e-2),
    }
}

/// A tensor of `shape` filled with NaN: an output that a kernel must overwrite in full.
pub fn poisoned(ctx: &Context, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    match dtype {
        DType::F32 => ctx.tensor(&vec![f32::NAN; n], shape).expect("poisoned"),
        DType::F16 => ctx.tensor(&vec![f16::NAN; n], shape).expect("poisoned"),
    }
}

/// Every row-kernel variant worth forcing on rows of `n` elements: the looped form at 1 to 1024
/// threads a row, and the register form wherever a thread's chunks fit its registers (also with
/// exactly the chunks of the row where it has a multiple of 4 T elements).
#[allow(dead_code)]
pub fn row_variants(n: usize) -> Vec<wgfuse::kernels::Variant> {
    use wgfuse::kernels::{Kind, Variant};
    let chunks = (n + 6) / 4;
    let mut vs = Vec::new();
    for t in [1u32, 8, 32, 64, 256, 1024] {
        let k = chunks.div_ceil(t as usize) as u32;
        let wg = t.max(256);
        vs.push(Variant { kind: Kind::Online, wg, threads: t, chunks: 1, mode: 0 });
        if k <= 16 {
            vs.push(Variant { kind: Kind::Reg, wg, threads: t, chunks: k, mode: 0 });
        }
        // Rows a multiple of 4 and exactly T x K chunks: the kernels drop their slot guards.
        let exact = n / 4 / t as usize;
        if n % 4 == 0 && (1..=16).contains(&exact) && exact * t as usize * 4 == n && exact as u32 != k {
            vs.push(Variant { kind: Kind::Reg, wg, threads: t, chunks: exact as u32, mode: 0 });
        }
    }
    vs
}

/// A device of the user's own on the default adapter of Vulkan, Metal or DX12, with `features`
/// where the adapter has them and `limits` (default: the adapter's).
pub fn user_device(features: wgpu::Features, limits: Option<wgpu::Limits>) -> (wgpu::Device, wgpu::Queue, wgpu::AdapterInfo) {
    pollster::block_on(async {
        // The APIs a Context takes by default (GL only when asked for).
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance.request_adapter(&wgpu::RequestAdapterOptions::default()).await.expect("adapter");
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                required_features: features & adapter.features(),
                required_limits: limits.unwrap_or_else(|| adapter.limits()),
                ..Default::default()
            })
            .await
            .expect("device");
        (device, queue, adapter.get_info())
    })
}
