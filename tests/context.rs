//! The Context: adapter choice, feature negotiation, wrapping a user's device, the pipeline
//! cache under concurrent use, lazy submission, and every bad input as a typed error.

mod common;

use std::sync::Arc;

use common::*;
use wgfuse::{Context, ContextOptions, DType, Error};

#[test]
fn info_reports_what_the_device_got() {
    let ctx = ctx(false);
    let info = ctx.info();
    assert!(!info.adapter.name.is_empty());
    assert!(info.features.contains(wgpu::Features::SUBGROUP), "kernels need subgroups: {info}");
    let (lo, hi) = info.subgroup_sizes();
    assert!(lo >= 1 && lo <= hi, "{lo}..{hi}");
    assert!(info.limits.max_storage_buffer_binding_size > 0);
    assert!(format!("{info}").contains("SUBGROUP=true"));
}

#[test]
fn adapter_and_backend_overrides() {
    let none = Context::with_options(ContextOptions { adapter: Some("no-such-gpu-anywhere".into()), ..ContextOptions::default() });
    assert!(matches!(none, Err(Error::NoAdapter(_))), "{none:?}");
    let bad = Context::with_options(ContextOptions { graphics_backend: Some("glide".into()), ..ContextOptions::default() });
    assert!(matches!(bad, Err(Error::UnknownBackend(_))), "{bad:?}");
    // Naming the adapter we would pick anyway selects it.
    let name = ctx(false).info().adapter.name.clone();
    let same = Context::with_options(ContextOptions { adapter: Some(name.to_uppercase()), ..ContextOptions::default() }).expect("by name");
    assert_eq!(same.info().adapter.name, name);
}

#[test]
fn wraps_a_user_device() {
    let (device, queue, info) = user_device(wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES | wgpu::Features::SHADER_F16, None);
    let ctx = Context::from_wgpu(device, queue, info).expect("from_wgpu");
    let x = ctx.tensor(&[1.0f32, 2.0, 3.0], &[1, 3]).unwrap();
    let y = ctx.softmax(&x).unwrap().to_vec::<f32>().unwrap();
    let s: f32 = y.iter().sum();
    assert!((s - 1.0).abs() < 1e-6 && y[2] > y[1] && y[1] > y[0], "{y:?}");
}

#[test]
fn missing_features_are_typed_errors() {
    // No SHADER_F16: f16 tensors are refused.
    let (device, queue, info) = user_device(wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES, None);
    let ctx = Context::from_wgpu(device, queue, info).unwrap();
    let h = [half::f16::ONE; 4];
    assert!(matches!(ctx.tensor(&h, &[4]), Err(Error::MissingFeature { feature: "SHADER_F16", .. })));
    // No SUBGROUP: the kernels are refused, nothing panics.
    let (device, queue, info) = user_device(wgpu::Features::IMMEDIATES, None);
    let ctx = Context::from_wgpu(device, queue, info).unwrap();
    let x = ctx.tensor(&[1.0f32; 8], &[2, 4]).unwrap();
    assert!(matches!(ctx.softmax(&x), Err(Error::MissingFeature { feature: "SUBGROUP", .. })));
}

#[test]
fn sizes_over_device_limits_are_typed_errors() {
    let small = wgpu::Limits { max_storage_buffer_binding_size: 1 << 16, ..ctx(false).info().limits.clone() };
    let (device, queue, info) = user_device(wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES, Some(small));
    let ctx = Context::from_wgpu(device, queue, info).unwrap();
    let big = vec![0.5f32; 1 << 15];
    assert!(matches!(ctx.tensor(&big, &[1 << 15]), Err(Error::TooLarge { .. })));
    // Ops whose output would pass the limit refuse before recording anything.
    let x = ctx.tensor(&[1.0f32; 4], &[1, 4]).unwrap();
    let a = ctx.tensor(&[1.0f32; 4], &[4, 1]).unwrap();
    let b = ctx.tensor(&vec![1.0f32; 8000], &[1, 8000]).unwrap();
    let wide = ctx.tensor(&vec![1.0f32; 8000], &[1000, 8]).unwrap();
    assert!(matches!(ctx.lora(&wide, &ctx.tensor(&[1.0f32; 8], &[8, 1]).unwrap(), &b, 1.0, None), Err(Error::TooLarge { .. })));
    // A device that allows too few storage buffers per stage for a kernel: a typed error.
    let few = wgpu::Limits { max_storage_buffers_per_shader_stage: 4, ..ctx.info().limits.clone() };
    let (device, queue, info) = user_device(wgpu::Features::SUBGROUP | wgpu::Features::IMMEDIATES, Some(few));
    let tight = Context::from_wgpu(device, queue, info).unwrap();
    let t = tight.tensor(&[1.0f32; 8], &[2, 4]).unwrap();
    assert!(matches!(tight.rms_norm(&t, None, 1e-5), Err(Error::TooLarge { what: "storage buffers per shader stage", .. })));
    assert!(tight.softmax(&t).is_ok());
    let merged = ctx.lora_merge(&wide, &ctx.tensor(&[1.0f32; 1000], &[1000, 1]).unwrap(), &ctx.tensor(&[1.0f32; 8], &[1, 8]).unwrap(), 1.0);
    assert!(merged.is_ok(), "{merged:?}");
    assert!(ctx.lora(&x, &a, &b, 1.0, None).is_ok());
    assert!(ctx.sync().is_ok());
}

#[test]
fn pipeline_cache_creates_each_pipeline_once_under_concurrency() {
    let ctx = ctx(false);
    let before = ctx.pipelines_created();
    let x = ctx.tensor(&vec![0.25f32; 64 * 100], &[64, 100]).unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(8));
    std::thread::scope(|s| {
        for _ in 0..8 {
            let (ctx, x, barrier) = (ctx.clone(), x.clone(), barrier.clone());
            s.spawn(move || {
                barrier.wait();
                for _ in 0..20 {
                    let y = ctx.softmax(&x).unwrap().to_vec::<f32>().unwrap();
                    assert!(y.iter().all(|&v| (v - 0.01).abs() < 1e-6));
                }
            });
        }
    });
    assert_eq!(ctx.pipelines_created() - before, 1, "one shape, one pipeline");
}

#[test]
fn ops_are_lazy_and_chain() {
    let ctx = ctx(false);
    let x = ctx.tensor(&[0.0f32, 1.0, 2.0, 3.0], &[2, 2]).unwrap();
    // A chain of ops recorded without reads, then one read.
    let mut y = x.clone();
    for _ in 0..100 {
        y = ctx.softmax(&y).unwrap();
    }
    let got = y.to_vec::<f32>().unwrap();
    let mut want = vec![0.0f64, 1.0, 2.0, 3.0];
    for _ in 0..100 {
        for r in want.chunks_mut(2) {
            let m = r[0].max(r[1]);
            let (a, b) = ((r[0] - m).exp(), (r[1] - m).exp());
            r[0] = a / (a + b);
            r[1] = b / (a + b);
        }
    }
    assert_close(&got.iter().map(|&v| v as f64).collect::<Vec<_>>(), &want, 1e-6, 1e-5, "chained softmax");
    ctx.sync().unwrap();
}

#[test]
fn bad_inputs_are_typed_errors() {
    let ctx = ctx(false);
    let other = Context::new().unwrap();
    assert!(matches!(ctx.tensor::<f32>(&[], &[0]), Err(Error::Empty { .. })));
    assert!(matches!(ctx.tensor::<f32>(&[1.0], &[]), Err(Error::Empty { .. })));
    assert!(matches!(ctx.tensor(&[1.0f32, 2.0], &[3]), Err(Error::LengthMismatch { .. })));
    let x = ctx.tensor(&[1.0f32; 6], &[2, 3]).unwrap();
    let xh = ctx.tensor(&[half::f16::ONE; 6], &[2, 3]).unwrap();
    let foreign = other.tensor(&[1.0f32; 6], &[2, 3]).unwrap();
    assert!(matches!(ctx.softmax(&foreign), Err(Error::ForeignTensor { .. })));
    assert!(matches!(x.to_vec::<half::f16>(), Err(Error::DTypeMismatch { .. })));
    assert!(matches!(x.reshape(&[4]), Err(Error::ShapeMismatch { .. })));
    let y = ctx.tensor(&[0.0f32; 6], &[3, 2]).unwrap();
    assert!(matches!(ctx.softmax_into(&x, &y, None), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.softmax_into(&x, &xh, None), Err(Error::DTypeMismatch { .. })));
    // RMSNorm
    let w = ctx.tensor(&[1.0f32; 2], &[2]).unwrap();
    assert!(matches!(ctx.rms_norm(&x, Some(&w), 1e-5), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.rms_norm(&x, None, f32::NAN), Err(Error::InvalidArgument { .. })));
    assert!(matches!(ctx.rms_norm(&x, None, -1.0), Err(Error::InvalidArgument { .. })));
    assert!(matches!(ctx.add_rms_norm(&x, &xh, None, 1e-5), Err(Error::DTypeMismatch { .. })));
    assert!(matches!(ctx.add_rms_norm(&x, &y, None, 1e-5), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.add_rms_norm(&x, &foreign, None, 1e-5), Err(Error::ForeignTensor { .. })));
    // LoRA
    let a = ctx.tensor(&[1.0f32; 3 * 2], &[3, 2]).unwrap();
    let b = ctx.tensor(&[1.0f32; 2 * 5], &[2, 5]).unwrap();
    let bad_b = ctx.tensor(&[1.0f32; 3 * 5], &[3, 5]).unwrap();
    assert!(ctx.lora(&x, &a, &b, 1.0, None).is_ok());
    assert!(matches!(ctx.lora(&x, &a, &bad_b, 1.0, None), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.lora(&y, &a, &b, 1.0, None), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.lora(&x, &a, &b, f32::INFINITY, None), Err(Error::InvalidArgument { .. })));
    assert!(matches!(ctx.lora(&x, &a, &b, 1.0, Some(&x)), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(ctx.lora(&xh, &a, &b, 1.0, None), Err(Error::DTypeMismatch { .. })));
    let big_a = ctx.tensor(&vec![1.0f32; 3 * 129], &[3, 129]).unwrap();
    let big_b = ctx.tensor(&vec![1.0f32; 129 * 5], &[129, 5]).unwrap();
    assert!(matches!(ctx.lora(&x, &big_a, &big_b, 1.0, None), Err(Error::InvalidArgument { .. })));
    let mut yy = ctx.tensor(&[0.0f32; 10], &[2, 5]).unwrap();
    assert!(matches!(ctx.lora_add_(&mut yy, &foreign, &a, &b, 1.0), Err(Error::ForeignTensor { .. })));
    assert!(matches!(ctx.lora_merge(&x, &a, &b, 1.0), Err(Error::ShapeMismatch { .. })));
    // Wrapped buffers
    let plain = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 256,
        usage: wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    assert!(matches!(ctx.tensor_from_buffer(&plain, 0, &[4], DType::F32), Err(Error::InvalidArgument { .. })));
    let storage = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 512,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    assert!(matches!(ctx.tensor_from_buffer(&storage, 4, &[4], DType::F32), Err(Error::InvalidArgument { .. })));
    assert!(matches!(ctx.tensor_from_buffer(&storage, 256, &[100], DType::F32), Err(Error::TooLarge { .. })));
    assert!(ctx.tensor_from_buffer(&storage, 256, &[64], DType::F32).is_ok());
    // The unfused baselines refuse the same way.
    use wgfuse::kernels::unfused;
    assert!(matches!(unfused::softmax(&ctx, &foreign), Err(Error::ForeignTensor { .. })));
    assert!(matches!(unfused::rms_norm(&ctx, &x, Some(&w), 1e-5), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(unfused::add_rms_norm(&ctx, &x, &y, None, 1e-5), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(unfused::lora(&ctx, &x, &a, &bad_b, 1.0, None), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(unfused::matmul(&ctx, &x, &b), Err(Error::ShapeMismatch { .. })));
    assert!(matches!(unfused::rms_norm(&ctx, &xh, None, 1e-5), Err(Error::DTypeMismatch { .. })));
    // Nothing above poisoned the Context.
    assert_eq!(ctx.softmax(&x).unwrap().to_vec::<f32>().unwrap().len(), 6);
}

#[test]
fn wgpu_validation_errors_are_returned() {
    let ctx = ctx(false);
    let buf = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 256,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let x = ctx.tensor_from_buffer(&buf, 0, &[4, 4], DType::F32).unwrap();
    buf.destroy();
    // Recording or submitting work on a destroyed buffer is a wgpu validation error: returned.
    let r = ctx.softmax(&x).and_then(|y| y.to_vec::<f32>());
    assert!(matches!(r, Err(Error::Validation(_))), "{r:?}");
    // The Context stays usable.
    let z = ctx.tensor(&[1.0f32, 1.0], &[1, 2]).unwrap();
    assert_eq!(ctx.softmax(&z).unwrap().to_vec::<f32>().unwrap(), vec![0.5, 0.5]);
}

#[test]
fn long_use_keeps_memory_bounded() {
    // 100 000 chained ops: outputs come back to the pool and are reused; nothing grows.
    let ctx = Context::with_options(ContextOptions { max_pending_ops: 256, ..ContextOptions::default() }).expect("adapter");
    let x = ctx.tensor(&(0..4 * 64).map(|i| (i % 13) as f32 * 0.1).collect::<Vec<_>>(), &[4, 64]).unwrap();
    let w = ctx.tensor(&[1.0f32; 64], &[64]).unwrap();
    let mut y = x.clone();
    let mut seen = Vec::new();
    for i in 0..100_000 {
        y = if i % 2 == 0 { ctx.softmax(&y).unwrap() } else { ctx.rms_norm(&y, Some(&w), 1e-5).unwrap() };
        if i % 20_000 == 19_999 {
            ctx.sync().unwrap();
            seen.push(ctx.stats());
        }
    }
    let v = y.to_vec::<f32>().unwrap();
    assert!(v.iter().all(|x| x.is_finite()));
    let last = seen.last().unwrap();
    assert!(last.buffers_created <= 8, "{seen:?}");
    assert!(last.pooled_bytes <= 1 << 20 && last.cached_bind_groups <= 64, "{seen:?}");
    assert_eq!(seen.first().unwrap().buffers_created, last.buffers_created, "buffers keep being created: {seen:?}");
    assert_eq!(last.pending_ops, 0);
}

#[test]
fn batches_start_small_and_double() {
    // After a wait on the device, the first batch is submitted at 16 ops, then 32, 64, ... up
    // to max_pending_ops; a sync starts over.
    let ctx = Context::with_options(ContextOptions { max_pending_ops: 40, ..ContextOptions::default() }).expect("adapter");
    let x = ctx.tensor(&[0.5f32; 64], &[2, 32]).unwrap();
    let mut outs = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..2 {
        ctx.sync().unwrap();
        for _ in 0..100 {
            outs.push(ctx.softmax(&x).unwrap());
            pending.push(ctx.stats().pending_ops);
        }
    }
    let submits: Vec<usize> = pending.iter().enumerate().filter(|(_, &p)| p == 0).map(|(i, _)| i + 1).collect();
    // 16, 16 + 32, then batches of 40 (the cap); the second round the same, 100 ops later.
    assert_eq!(submits, vec![16, 48, 88, 116, 148, 188], "{pending:?}");
    // A long stream with no wait keeps batches of the cap (no shift overflowing into tiny ones).
    for i in 0..100 * 40 {
        drop(ctx.softmax(&x).unwrap());
        let p = ctx.stats().pending_ops;
        assert_eq!(p, (12 + i + 1) % 40, "op {i}: 12 were pending before the stream");
    }
    ctx.sync().unwrap();
    assert!(outs.iter().all(|y| y.to_vec::<f32>().unwrap() == vec![1.0 / 32.0; 64]));
}

#[test]
fn pool_limit_frees_buffers() {
    let ctx = Context::with_options(ContextOptions { pool_limit_bytes: 64 << 10, ..ContextOptions::default() }).expect("adapter");
    let outs: Vec<_> = (1..40).map(|i| ctx.softmax(&ctx.tensor(&vec![1.0f32; 512 * i], &[i, 512]).unwrap()).unwrap()).collect();
    ctx.sync().unwrap();
    drop(outs);
    assert!(ctx.stats().pooled_bytes <= 64 << 10, "{:?}", ctx.stats());
    ctx.trim();
    assert_eq!(ctx.stats().pooled_bytes, 0);
}

#[test]
fn eight_threads_share_one_context_correctly() {
    let ctx = ctx(false);
    std::thread::scope(|s| {
        for t in 0..8usize {
            let ctx = ctx.clone();
            s.spawn(move || {
                let mut g = rng(&format!("thread {t}"));
                for round in 0..5 {
                    let (rows, n) = (1 + (t * 7 + round) % 9, 1 + (t * 131 + round * 17) % 700);
                    let data = random(&mut g, rows * n, 5.0);
                    let (x, seen) = upload(&ctx, &data, &[rows, n], if t % 2 == 0 { DType::F32 } else { DType::F16 });
                    let a = ndarray::ArrayD::from_shape_vec(vec![rows, n], seen).unwrap();
                    let (atol, rtol) = tol(x.dtype());
                    let p = ctx.softmax(&x).unwrap();
                    let y = ctx.rms_norm(&x, None, 1e-5).unwrap();
                    assert_close(&download(&p), wgfuse::reference::softmax(a.view()).as_slice().unwrap(), atol, rtol, "softmax");
                    let want = wgfuse::reference::rms_norm(a.view(), None, 1e-5);
                    assert_close(&download(&y), want.as_slice().unwrap(), atol * 4.0, rtol, "rms_norm");
                }
            });
        }
    });
}

#[test]
fn native_backend_runs_where_it_can_and_says_what_would_work_elsewhere() {
    let api = ctx(false).info().adapter.backend;
    let can = (api == wgpu::Backend::Vulkan && cfg!(feature = "spirv")) || (api == wgpu::Backend::Metal && cfg!(feature = "msl"));
    let r = Context::with_options(ContextOptions { backend: wgfuse::Backend::Native, ..ContextOptions::default() });
    match r {
        Ok(c) => {
            assert!(can, "Native accepted on {api:?} without its feature");
            assert_eq!(c.backend(), wgfuse::Backend::Native);
        }
        Err(Error::BackendUnavailable { why, .. }) => {
            assert!(!can, "Native refused on {api:?}: {why}");
            assert!(why.contains("Backend::Wgsl"), "{why}");
        }
        Err(other) => panic!("expected BackendUnavailable, got {other:?}"),
    }
}
