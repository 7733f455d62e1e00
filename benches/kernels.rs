//! Criterion benches of every op, per backend, named `{backend}/{op}/{dtype}/{shape}`.
//!
//! Each sample's time is GPU time from timestamp queries (`iter_custom`), with a cold L2
//! before every run; throughput is the bytes the op must move. `WGFUSE_BENCH_SMALL=1` shrinks
//! the shapes (for CI and software adapters).

use std::sync::OnceLock;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wgfuse::kernels::{bytes_moved, lora, rms_norm, softmax, unfused, Op};
use wgfuse::timing::Timer;
use wgfuse::{Backend, Context, DType, Tensor};

fn contexts() -> &'static Vec<(&'static str, Context)> {
    static CTX: OnceLock<Vec<(&'static str, Context)>> = OnceLock::new();
    CTX.get_or_init(|| {
        let ctx = Context::new().expect("a GPU adapter (benches need one)");
        // The native kernels on the same device (build with --features spirv, or msl on Metal).
        let native = ctx.with_backend(Backend::Native);
        let mut v = vec![("wgsl", ctx)];
        match native {
            Ok(native) => v.push(("native", native)),
            Err(e) => eprintln!("native benches skipped: {e}"),
        }
        v
    })
}

fn small() -> bool {
    std::env::var("WGFUSE_BENCH_SMALL").is_ok_and(|v| v != "0" && !v.is_empty())
}

fn tensor(ctx: &Context, shape: &[usize], dtype: DType, seed: u32) -> Tensor {
    let n: usize = shape.iter().product();
    // A cheap deterministic pattern in [-4, 4): never zeros.
    let v: Vec<f32> =
        (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / (1u32 << 24) as f32 * 8.0 - 4.0).collect();
    match dtype {
        DType::F32 => ctx.tensor(&v, shape).expect("upload"),
        DType::F16 => ctx.tensor(&v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>(), shape).expect("upload"),
    }
}

fn timer(ctx: &Context) -> Timer {
    Timer::new(ctx, if small() { 4 << 20 } else { 256 << 20 }).expect("timer")
}

/// Runs `f` `iters` times on the GPU and returns the summed GPU time.
fn gpu_time(timer: &mut Timer, iters: u64, f: &mut dyn FnMut(&mut wgpu::ComputePass<'_>) -> wgfuse::Result<()>) -> Duration {
    let us: f64 = timer.time(iters as usize, f).expect("timed runs").iter().sum();
    Duration::from_secs_f64(us * 1e-6)
}

fn row_shapes() -> Vec<[usize; 2]> {
    if small() {
        vec![[64, 1000], [256, 4096]]
    } else {
        vec![[128, 1024], [4096, 4096], [4096, 8192], [16384, 4096], [4096, 32000]]
    }
}

fn row_ops(c: &mut Criterion) {
    for op in ["softmax", "rms_norm", "add_rms_norm"] {
        for (backend, ctx) in contexts() {
            // Groups are `{backend}/{op}`, so results read `{backend}/{op}/{dtype}/{shape}`.
            let mut group = c.benchmark_group(format!("{backend}/{op}"));
            configure(&mut group);
            let mut unfused_group: Vec<(String, u64, unfused::Unfused)> = Vec::new();
            let mut t = timer(ctx);
            for dtype in [DType::F32, DType::F16] {
                for [rows, n] in row_shapes() {
                    let (x, r, w, y, h) = (
                        tensor(ctx, &[rows, n], dtype, 1),
                        tensor(ctx, &[rows, n], dtype, 2),
                        tensor(ctx, &[n], dtype, 3),
                        tensor(ctx, &[rows, n], dtype, 4),
                        tensor(ctx, &[rows, n], dtype, 5),
                    );
                    let kind = Op::from_name(op).expect("a row op of this bench");
                    let bytes = bytes_moved(kind, &[rows, n], dtype);
                    group.throughput(Throughput::Bytes(bytes));
                    let id = BenchmarkId::from_parameter(format!("{}/{rows}x{n}", dtype.name()));
                    group.bench_function(id, |b| {
                        b.iter_custom(|iters| {
                            let mut f = |p: &mut wgpu::ComputePass<'_>| match op {
                                "softmax" => softmax::encode(ctx, p, &softmax::Args { x: &x, y: &y, variant: None }),
                                "rms_norm" => rms_norm::encode(
                                    ctx,
                                    p,
                                    &rms_norm::Args { x: &x, residual: None, weight: Some(&w), y: &y, h: None, eps: 1e-5, variant: None },
                                ),
                                _ => rms_norm::encode(
                                    ctx,
                                    p,
                                    &rms_norm::Args {
                                        x: &x,
                                        residual: Some(&r),
                                        weight: Some(&w),
                                        y: &y,
                                        h: Some(&h),
                                        eps: 1e-5,
                                        variant: None,
                                    },
                                ),
                            };
                            gpu_time(&mut t, iters, &mut f)
                        })
                    });
                    if *backend == "wgsl" && dtype == DType::F32 {
                        let plan = match op {
                            "softmax" => unfused::softmax(ctx, &x),
                            "rms_norm" => unfused::rms_norm(ctx, &x, Some(&w), 1e-5),
                            _ => unfused::add_rms_norm(ctx, &x, &r, Some(&w), 1e-5),
                        }
                        .expect("unfused plan");
                        unfused_group.push((format!("{}/{rows}x{n}", dtype.name()), bytes, plan));
                    }
                }
            }
            group.finish();
            if !unfused_group.is_empty() {
                let mut group = c.benchmark_group(format!("unfused/{op}"));
                configure(&mut group);
                for (name, bytes, plan) in &unfused_group {
                    group.throughput(Throughput::Bytes(*bytes));
                    group.bench_function(BenchmarkId::from_parameter(name), |b| {
                        b.iter_custom(|iters| gpu_time(&mut t, iters, &mut |p| plan.encode(ctx, p)))
                    });
                }
                group.finish();
            }
        }
    }
}

fn configure(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group.warm_up_time(wgfuse::timing::RESUME_WARM_UP).measurement_time(Duration::from_secs(if small() { 1 } else { 2 })).sample_size(10);
}

fn lora_op(c: &mut Criterion) {
    let shapes: Vec<[usize; 4]> = if small() {
        vec![[64, 256, 8, 256], [1, 1024, 16, 1024]]
    } else {
        vec![[512, 512, 8, 512], [1, 4096, 16, 4096], [4096, 4096, 16, 4096]]
    };
    for (backend, ctx) in contexts() {
        let mut group = c.benchmark_group(format!("{backend}/lora"));
        configure(&mut group);
        let mut t = timer(ctx);
        for dtype in [DType::F32, DType::F16] {
            for [m, k, r, o] in &shapes {
                let (x, a, b, base, y) = (
                    tensor(ctx, &[*m, *k], dtype, 1),
                    tensor(ctx, &[*k, *r], dtype, 2),
                    tensor(ctx, &[*r, *o], dtype, 3),
                    tensor(ctx, &[*m, *o], dtype, 4),
                    tensor(ctx, &[*m, *o], dtype, 5),
                );
                group.throughput(Throughput::Bytes(bytes_moved(Op::Lora, &[*m, *k, *r, *o], dtype)));
                let args = lora::Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: 0.5, mode: lora::Mode::Base, variant: None };
                let id = BenchmarkId::from_parameter(format!("{}/{m}x{k}x{r}x{o}", dtype.name()));
                group.bench_function(id, |bch| bch.iter_custom(|iters| gpu_time(&mut t, iters, &mut |p| lora::encode(ctx, p, &args))));
            }
        }
        group.finish();
    }
}

criterion_group!(benches, row_ops, lora_op);
criterion_main!(benches);
