//! The native kernels (hand-written GLSL compiled to SPIR-V, passed through on Vulkan): every
//! form forced on every row length, more rows than a grid dimension, and LoRA's tiles forced.
//! The op suites (softmax.rs, rms_norm.rs, lora.rs) also run every case on the native Context.
#![cfg(feature = "spirv")]

mod common;

use common::*;
use ndarray::ArrayD;
use wgfuse::kernels::{Kind, Variant};
use wgfuse::DType;

/// Every native form that holds rows of `n` on this device.
fn forms(ctx: &wgfuse::Context, n: usize) -> Vec<Variant> {
    let info = ctx.info();
    wgfuse::kernels::native_row_forms(n, info.subgroup_sizes().0, info.limits.max_compute_invocations_per_workgroup)
}

#[test]
fn native_every_form_on_every_row_length() {
    let ctx = native_ctx();
    for dtype in [DType::F32, DType::F16] {
        for n in [1usize, 3, 5, 33, 64, 257, 1023, 1025, 4096, 8193] {
            let rows = 5;
            let mut r = rng(&format!("native forms {dtype:?} n={n}"));
            let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 6.0), &[rows, n], dtype);
            let (res, rs) = upload(&ctx, &random(&mut r, rows * n, 6.0), &[rows, n], dtype);
            let (w, ws) = upload(&ctx, &random(&mut r, n, 2.0), &[n], dtype);
            let shape = vec![rows, n];
            let want_sm = wgfuse::reference::softmax(ArrayD::from_shape_vec(shape.clone(), xs.clone()).unwrap().view());
            let want_rms = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.clone(), xs.clone()).unwrap().view(), Some(&ws), 1e-5);
            let h: Vec<f64> = xs.iter().zip(&rs).map(|(a, b)| a + b).collect();
            let h = match dtype {
                DType::F32 => h.iter().map(|&v| v as f32 as f64).collect(),
                DType::F16 => h.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect::<Vec<_>>(),
            };
            let want_add = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.clone(), h.clone()).unwrap().view(), None, 1e-5);
            let (atol, rtol) = tol(dtype);
            let (ratol, rrtol) = if dtype == DType::F32 { (1e-5, 1e-4) } else { (4e-3, 1e-2) };
            for v in forms(&ctx, n) {
                let what = format!("native {dtype:?} n={n} {v:?}");
                let y = poisoned(&ctx, &shape, dtype);
                ctx.softmax_into(&x, &y, Some(v)).unwrap();
                assert_close(&download(&y), want_sm.as_slice().unwrap(), atol, rtol, &format!("softmax {what}"));

                let y = poisoned(&ctx, &shape, dtype);
                let args = wgfuse::kernels::rms_norm::Args {
                    x: &x,
                    residual: None,
                    weight: Some(&w),
                    y: &y,
                    h: None,
                    eps: 1e-5,
                    variant: Some(v),
                };
                ctx.rms_norm_with(&args).unwrap();
                assert_close(&download(&y), want_rms.as_slice().unwrap(), ratol, rrtol, &format!("rms_norm {what}"));

                let (y, hh) = (poisoned(&ctx, &shape, dtype), poisoned(&ctx, &shape, dtype));
                let args = wgfuse::kernels::rms_norm::Args {
                    x: &x,
                    residual: Some(&res),
                    weight: None,
                    y: &y,
                    h: Some(&hh),
                    eps: 1e-5,
                    variant: Some(v),
                };
                ctx.rms_norm_with(&args).unwrap();
                assert_close(&download(&hh), &h, 0.0, 1e-6, &format!("add_rms_norm h {what}"));
                assert_close(&download(&y), want_add.as_slice().unwrap(), ratol, rrtol, &format!("add_rms_norm y {what}"));
            }
        }
    }
}

#[test]
fn native_rejects_a_form_that_cannot_hold_the_row() {
    let ctx = native_ctx();
    let x = ctx.tensor(&vec![0.0f32; 3 * 40_000], &[3, 40_000]).unwrap();
    let y = poisoned(&ctx, &[3, 40_000], DType::F32);
    let v = Variant { kind: Kind::Reg, wg: 256, threads: 256, chunks: 8, mode: 0 };
    assert!(matches!(ctx.softmax_into(&x, &y, Some(v)), Err(wgfuse::Error::InvalidArgument { .. })));
    let odd = Variant { kind: Kind::Reg, wg: 256, threads: 64, chunks: 2, mode: 0 };
    assert!(matches!(ctx.softmax_into(&x, &y, Some(odd)), Err(wgfuse::Error::InvalidArgument { .. })));
    // A chunk count no native kernel is compiled with, though it would hold the row.
    let uncompiled = Variant { kind: Kind::Reg, wg: 1024, threads: 1024, chunks: 16, mode: 0 };
    assert!(matches!(ctx.softmax_into(&x, &y, Some(uncompiled)), Err(wgfuse::Error::InvalidArgument { .. })));
    let short = ctx.tensor(&vec![0.0f32; 3 * 40], &[3, 40]).unwrap();
    let three = Variant { kind: Kind::Reg, wg: 256, threads: 256, chunks: 3, mode: 0 };
    assert!(matches!(
        ctx.softmax_into(&short, &poisoned(&ctx, &[3, 40], DType::F32), Some(three)),
        Err(wgfuse::Error::InvalidArgument { .. })
    ));
}

#[test]
fn native_more_rows_than_one_grid_dimension() {
    let ctx = native_ctx();
    // A row per workgroup (the 256-thread register form and the loop; wider ones are slow on a
    // CPU device), and the subgroup form's several rows per workgroup past the first grid
    // dimension too.
    for (rows, n, dtype) in [(70_000usize, 3usize, DType::F32), (2_200_000, 1, DType::F16)] {
        let mut r = rng(&format!("native {rows}x{n}"));
        let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 4.0), &[rows, n], dtype);
        let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], xs).unwrap().view());
        for v in forms(&ctx, n).into_iter().filter(|v| v.wg == 256 && v.chunks == 1 && (rows < 100_000 || v.threads == 0)) {
            let y = poisoned(&ctx, &[rows, n], dtype);
            ctx.softmax_into(&x, &y, Some(v)).unwrap();
            let (atol, rtol) = tol(dtype);
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("native {rows}x{n} {dtype:?} {v:?}"));
        }
    }
}

#[test]
fn native_lora_every_tile_height() {
    let ctx = native_ctx();
    for dtype in [DType::F32, DType::F16] {
        let (rows, k_in, rank, out) = (37usize, 300usize, 12usize, 259usize);
        let mut g = rng(&format!("native lora tiles {dtype:?}"));
        let (x, xs) = upload(&ctx, &random(&mut g, rows * k_in, 1.0), &[rows, k_in], dtype);
        let (a, av) = upload(&ctx, &random(&mut g, k_in * rank, 0.1), &[k_in, rank], dtype);
        let (b, bv) = upload(&ctx, &random(&mut g, rank * out, 1.0), &[rank, out], dtype);
        let (base, basev) = upload(&ctx, &random(&mut g, rows * out, 1.0), &[rows, out], dtype);
        let arr = |v: &[f64], r: usize, c: usize| ndarray::Array2::from_shape_vec((r, c), v.to_vec()).unwrap();
        let baseref = arr(&basev, rows, out);
        let want = wgfuse::reference::lora(
            arr(&xs, rows, k_in).view(),
            arr(&av, k_in, rank).view(),
            arr(&bv, rank, out).view(),
            0.5,
            Some(baseref.view()),
        );
        for tm in [1u32, 2, 3, 4, 7, 8, 16] {
            for blocks in [0u32, 1, 3, 65] {
                let v = Variant { kind: Kind::Plain, wg: 256, threads: blocks, chunks: tm, mode: 0 };
                let y = poisoned(&ctx, &[rows, out], dtype);
                let args = wgfuse::kernels::lora::Args {
                    x: &x,
                    a: &a,
                    b: &b,
                    base: Some(&base),
                    y: &y,
                    scale: 0.5,
                    mode: wgfuse::kernels::lora::Mode::Base,
                    variant: Some(v),
                };
                ctx.lora_with(&args).unwrap();
                let (atol, rtol) = if dtype == DType::F32 { (1e-5, 1e-5) } else { (4e-3, 4e-3) };
                assert_close(
                    &download(&y),
                    want.as_slice().unwrap(),
                    atol,
                    rtol,
                    &format!("native lora {dtype:?} tm {tm} blocks {blocks}"),
                );
            }
        }
    }
}

/// The native skinny form (few rows): every tile height and workgroup size, column blocks cut
/// short, ranks to 128 (32 rank quads), sizes that are multiples of 4 and sizes that are not, all
/// four modes.
#[test]
fn native_lora_skinny_every_form() {
    use wgfuse::kernels::lora::{Args, Mode};
    let ctx = native_ctx();
    let arr = |v: &[f64], r: usize, c: usize| ndarray::Array2::from_shape_vec((r, c), v.to_vec()).unwrap();
    for dtype in [DType::F32, DType::F16] {
        for (rows, k_in, rank, out) in
            [(1usize, 1usize, 1usize, 1usize), (3, 1023, 8, 1025), (5, 300, 128, 259), (9, 64, 13, 36), (6, 256, 16, 64), (3, 64, 128, 36)]
        {
            let what = format!("native skinny {dtype:?} {rows}x{k_in}x{rank}x{out}");
            let mut g = rng(&what);
            let (x, xs) = upload(&ctx, &random(&mut g, rows * k_in, 1.0), &[rows, k_in], dtype);
            let (a, av) = upload(&ctx, &random(&mut g, k_in * rank, 1.0 / (k_in as f64).sqrt()), &[k_in, rank], dtype);
            let (b, bv) = upload(&ctx, &random(&mut g, rank * out, 1.0), &[rank, out], dtype);
            let (base, basev) = upload(&ctx, &random(&mut g, rows * out, 2.0), &[rows, out], dtype);
            let (w, wv) = upload(&ctx, &random(&mut g, k_in * out, 1.0), &[k_in, out], dtype);
            let baseref = arr(&basev, rows, out);
            let (xr, ar, br) = (arr(&xs, rows, k_in), arr(&av, k_in, rank), arr(&bv, rank, out));
            let with_base = wgfuse::reference::lora(xr.view(), ar.view(), br.view(), 0.5, Some(baseref.view()));
            let plain = wgfuse::reference::lora(xr.view(), ar.view(), br.view(), 0.5, None);
            let merged = wgfuse::reference::lora_merge(arr(&wv, k_in, out).view(), ar.view(), br.view(), 0.5);
            let n = (k_in * rank) as f64;
            let (atol, rtol) = if dtype == DType::F32 { (1e-6 * n.sqrt(), 1e-5) } else { (2e-3 + 1e-6 * n.sqrt(), 2e-3) };
            for (tm, wg, blocks) in
                [1u32, 2, 4].into_iter().flat_map(|tm| [(256u32, 1u32), (256, 3), (1024, 1), (1024, 300)].map(|(wg, b)| (tm, wg, b)))
            {
                let v = Some(Variant { kind: Kind::Skinny, wg, threads: blocks, chunks: tm, mode: 0 });
                let form = format!("{what} tm {tm} wg {wg} blocks {blocks}");
                for (mode, want) in [(Mode::Base, &with_base), (Mode::Plain, &plain), (Mode::InPlace, &with_base)] {
                    let y = if mode == Mode::InPlace {
                        upload(&ctx, &basev, &[rows, out], dtype).0
                    } else {
                        poisoned(&ctx, &[rows, out], dtype)
                    };
                    let args = Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: 0.5, mode, variant: v };
                    ctx.lora_with(&args).unwrap();
                    assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{form} {mode:?}"));
                }
                // The merge: W [in, out] + s A B, rows of A in place of x A (small `in` only: its
                // rows are `in`).
                if k_in > 64 {
                    continue;
                }
                let y = poisoned(&ctx, &[k_in, out], dtype);
                let args = Args { x: &a, a: &a, b: &b, base: Some(&w), y: &y, scale: 0.5, mode: Mode::Merge, variant: v };
                ctx.lora_with(&args).unwrap();
                let (matol, mrtol) = if dtype == DType::F32 { (1e-6 * (rank as f64).sqrt(), 1e-5) } else { (2e-3, 2e-3) };
                assert_close(&download(&y), merged.as_slice().unwrap(), matol, mrtol, &format!("{form} merge"));
            }
        }
    }
}

/// The native persistent f16 softmax: 1024 threads, 4 or 8 chunks a thread, more rows than
/// persistent workgroups (each walks several), rows shorter than the slots; f32 and rows that
/// are not a multiple of 4 get a typed error.
#[test]
fn native_softmax_persistent() {
    let ctx = native_ctx();
    for (rows, n, k) in [(300usize, 4100usize, 4u32), (300, 4100, 8), (257, 32000, 8), (3, 8, 4)] {
        let what = format!("native persist {rows}x{n} k{k}");
        let mut g = rng(&what);
        let (x, xs) = upload(&ctx, &random(&mut g, rows * n, 8.0), &[rows, n], DType::F16);
        let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], xs).unwrap().view());
        let y = poisoned(&ctx, &[rows, n], DType::F16);
        let v = Variant { kind: Kind::Persist, wg: 1024, threads: 1024, chunks: k, mode: 0 };
        ctx.softmax_into(&x, &y, Some(v)).unwrap();
        let (atol, rtol) = tol(DType::F16);
        assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &what);
    }
    let v = Some(Variant { kind: Kind::Persist, wg: 1024, threads: 1024, chunks: 8, mode: 0 });
    for (n, dtype) in [(4096usize, DType::F32), (4098, DType::F16)] {
        let x = upload(&ctx, &vec![0.5; 2 * n], &[2, n], dtype).0;
        let y = poisoned(&ctx, &[2, n], dtype);
        assert!(matches!(ctx.softmax_into(&x, &y, v), Err(wgfuse::Error::InvalidArgument { .. })), "{n} {dtype:?}");
    }
    let x = upload(&ctx, &vec![0.5; 300 * 32000], &[300, 32000], DType::F16).0;
    assert_eq!(wgfuse::kernels::softmax::variant_for(&ctx, &x).kind, Kind::Persist);
}
