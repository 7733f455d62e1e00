//! RMSNorm and add + RMSNorm vs the f64 reference: awkward sizes, both dtypes, with and
//! without weight, large magnitudes, shader checks on and off.

mod common;

use common::*;
use ndarray::ArrayD;
use wgfuse::DType;

const SIZES: [usize; 14] = [1, 3, 31, 32, 33, 255, 256, 257, 1000, 1023, 1024, 1025, 4097, 50257];

fn round(v: &[f64], dtype: DType) -> Vec<f64> {
    match dtype {
        DType::F32 => v.iter().map(|&x| x as f32 as f64).collect(),
        DType::F16 => v.iter().map(|&x| half::f16::from_f64(x).to_f64()).collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn check(ctx: &wgfuse::Context, rows: usize, n: usize, dtype: DType, scale: f64, weighted: bool, add: bool, what: &str) {
    let mut r = rng(what);
    let shape = [rows, n];
    let (x, xs) = upload(ctx, &random(&mut r, rows * n, scale), &shape, dtype);
    let (w, ws) = upload(ctx, &random(&mut r, n, 2.0), &[n], dtype);
    let weight = weighted.then_some(&w);
    let wref = weighted.then_some(ws.as_slice());
    let eps = 1e-5;
    let (atol, rtol) = match dtype {
        DType::F32 => (1e-5, 1e-4),
        DType::F16 => (4e-3, 1e-2),
    };
    if add {
        let (res, rs) = upload(ctx, &random(&mut r, rows * n, scale), &shape, dtype);
        let (y, h) = ctx.add_rms_norm(&x, &res, weight, eps).expect("add_rms_norm");
        let hs: Vec<f64> = xs.iter().zip(&rs).map(|(a, b)| a + b).collect();
        let hs = round(&hs, dtype);
        let want_y = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), hs.clone()).unwrap().view(), wref, eps as f64);
        assert_close(&download(&h), &hs, 0.0, 1e-6, &format!("{what} (h)"));
        assert_close(&download(&y), want_y.as_slice().unwrap(), atol, rtol, &format!("{what} (y)"));
    } else {
        let y = ctx.rms_norm(&x, weight, eps).expect("rms_norm");
        let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), xs).unwrap().view(), wref, eps as f64);
        assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, what);
    }
}

#[test]
fn rms_norm_sizes() {
    for (checks, ctx) in contexts() {
        for dtype in [DType::F32, DType::F16] {
            for n in SIZES {
                let rows = if n > 4096 { 3 } else { 5 };
                let weighted = n % 2 == 1 || n == 256;
                check(&ctx, rows, n, dtype, 4.0, weighted, false, &format!("rms_norm {dtype:?} {rows}x{n} w={weighted} checks={checks}"));
                check(
                    &ctx,
                    rows,
                    n,
                    dtype,
                    4.0,
                    !weighted,
                    true,
                    &format!("add_rms_norm {dtype:?} {rows}x{n} w={} checks={checks}", !weighted),
                );
            }
        }
    }
}

#[test]
fn rms_norm_large_magnitudes() {
    let ctx = ctx(false);
    // f32 holds 1e15 squared (1e30) comfortably; f16 inputs near its max (6e4) square to 4e9,
    // which only the f32 accumulation holds.
    check(&ctx, 4, 1000, DType::F32, 1e15, true, false, "rms_norm f32 huge");
    check(&ctx, 4, 1000, DType::F16, 6e4, true, false, "rms_norm f16 near max");
    check(&ctx, 4, 1000, DType::F16, 3e4, false, true, "add_rms_norm f16 near max");
}

#[test]
fn rms_norm_many_rows() {
    let ctx = ctx(false);
    // More rows than one grid dimension holds, with several rows per workgroup.
    check(&ctx, 70_000, 3, DType::F32, 2.0, true, false, "rms_norm 70000x3");
    check(&ctx, 66_000, 33, DType::F16, 2.0, true, true, "add_rms_norm 66000x33");
}

#[test]
fn rms_norm_every_variant_on_every_row_length() {
    // Forces each variant kind at several widths, 4-aligned rows (whose kernels leave out the
    // partial-chunk code) and not, with and without weight and residual, into NaN outputs.
    use wgfuse::kernels::rms_norm::Args;
    let ctx = ctx(false);
    for dtype in [DType::F32, DType::F16] {
        for n in [1usize, 4, 5, 33, 256, 257, 1024, 1025, 4096] {
            let rows = 9;
            let mut r = rng(&format!("rms_norm variants {dtype:?} n={n}"));
            let shape = [rows, n];
            let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
            let (res, rs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
            let (w, ws) = upload(&ctx, &random(&mut r, n, 2.0), &[n], dtype);
            let hs = round(&xs.iter().zip(&rs).map(|(a, b)| a + b).collect::<Vec<_>>(), dtype);
            let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), xs).unwrap().view(), Some(&ws), 1e-5);
            let want_add = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), hs.clone()).unwrap().view(), Some(&ws), 1e-5);
            let (atol, rtol) = match dtype {
                DType::F32 => (1e-5, 1e-4),
                DType::F16 => (4e-3, 1e-2),
            };
            for v in row_variants(n) {
                let what = format!("{dtype:?} n={n} {}", v.describe());
                let y = poisoned(&ctx, &shape, dtype);
                ctx.rms_norm_with(&Args { x: &x, weight: Some(&w), residual: None, y: &y, h: None, eps: 1e-5, variant: Some(v) }).unwrap();
                assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &what);
                let (y, h) = (poisoned(&ctx, &shape, dtype), poisoned(&ctx, &shape, dtype));
                ctx.rms_norm_with(&Args { x: &x, weight: Some(&w), residual: Some(&res), y: &y, h: Some(&h), eps: 1e-5, variant: Some(v) })
                    .unwrap();
                assert_close(&download(&h), &hs, 0.0, 1e-6, &format!("{what} (h)"));
                assert_close(&download(&y), want_add.as_slice().unwrap(), atol, rtol, &format!("{what} (y)"));
            }
        }
    }
}

#[test]
fn rms_norm_f16_persistent_rows() {
    // The persistent variant (f16, aligned rows), RMSNorm and add + RMSNorm, with and without
    // weight: fewer rows than its workgroups, several rows a workgroup (300 rows over 128) with
    // the next row's x and r loaded ahead, the default pick at 32000 columns, and typed errors
    // where it does not apply.
    use wgfuse::kernels::{rms_norm::Args, Kind, Variant, PERSIST_GROUPS};
    let ctx = ctx(false);
    let dtype = DType::F16;
    let (atol, rtol) = (4e-3, 1e-2);
    for (rows, n) in [(1usize, 4usize), (3, 1024), (300, 4), (300, 1028), (129, 4096), (2 * PERSIST_GROUPS as usize + 3, 32000)] {
        let what = format!("persistent f16 {rows}x{n}");
        let mut r = rng(&what);
        let shape = [rows, n];
        let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
        let (res, rs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
        let (w, ws) = upload(&ctx, &random(&mut r, n, 2.0), &[n], dtype);
        let hs = round(&xs.iter().zip(&rs).map(|(a, b)| a + b).collect::<Vec<_>>(), dtype);
        let weighted = n % 8 == 4;
        let wref = weighted.then_some(ws.as_slice());
        let weight = weighted.then_some(&w);
        let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), xs).unwrap().view(), wref, 1e-5);
        let want_add = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), hs.clone()).unwrap().view(), wref, 1e-5);
        for t in [32u32, 256, 1024] {
            let k = (n / 4).div_ceil(t as usize) as u32;
            if k > 16 {
                continue;
            }
            let v = Variant { kind: Kind::Persist, wg: t, threads: t, chunks: k, mode: 0 };
            let what = format!("{what} w={weighted} {}", v.describe());
            let y = poisoned(&ctx, &shape, dtype);
            ctx.rms_norm_with(&Args { x: &x, weight, residual: None, y: &y, h: None, eps: 1e-5, variant: Some(v) }).unwrap();
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &what);
            let (y, h) = (poisoned(&ctx, &shape, dtype), poisoned(&ctx, &shape, dtype));
            ctx.rms_norm_with(&Args { x: &x, weight, residual: Some(&res), y: &y, h: Some(&h), eps: 1e-5, variant: Some(v) }).unwrap();
            assert_close(&download(&h), &hs, 0.0, 1e-6, &format!("{what} (h)"));
            assert_close(&download(&y), want_add.as_slice().unwrap(), atol, rtol, &format!("{what} (y)"));
        }
        if n == 32000 {
            assert_eq!(wgfuse::kernels::wgsl_row_variant(rows, n, dtype, 1024).kind, Kind::Persist, "{what}: the default pick");
            assert_close(
                &download(&ctx.rms_norm(&x, weight, 1e-5).unwrap()),
                want.as_slice().unwrap(),
                atol,
                rtol,
                &format!("{what} default"),
            );
            let (y, h) = ctx.add_rms_norm(&x, &res, weight, 1e-5).unwrap();
            assert_close(&download(&h), &hs, 0.0, 1e-6, &format!("{what} default (h)"));
            assert_close(&download(&y), want_add.as_slice().unwrap(), atol, rtol, &format!("{what} default (y)"));
        }
    }
    let v = Variant { kind: Kind::Persist, wg: 256, threads: 256, chunks: 1, mode: 0 };
    for (shape, dtype) in [([2usize, 1024usize], DType::F32), ([2, 1022], DType::F16), ([2, 2048], DType::F16)] {
        let x = upload(&ctx, &vec![0.0; shape[0] * shape[1]], &shape, dtype).0;
        let y = poisoned(&ctx, &shape, dtype);
        let got = ctx.rms_norm_with(&Args { x: &x, weight: None, residual: None, y: &y, h: None, eps: 1e-5, variant: Some(v) });
        assert!(matches!(got, Err(wgfuse::Error::InvalidArgument { .. })), "{shape:?} {dtype:?}: {got:?}");
    }
}

#[test]
fn add_rms_norm_f16_y_is_the_norm_of_the_rounded_h() {
    // f16 add + RMSNorm: y is the norm of h as stored (x + r rounded to f16), in every variant
    // and on every kernel set: within f16's own rounding of y (2^-11 relative) of the reference
    // computed from the rounded h. The norm of the unrounded sum differs from it by up to twice
    // that.
    use wgfuse::kernels::{rms_norm::Args, Kind, Variant};
    let dtype = DType::F16;
    let (rows, n) = (64usize, 4096usize);
    let shape = [rows, n];
    let forced = [
        Some(Variant { kind: Kind::Reg, wg: 1024, threads: 1024, chunks: 1, mode: 0 }),
        Some(Variant { kind: Kind::Online, wg: 256, threads: 256, chunks: 1, mode: 0 }),
        Some(Variant { kind: Kind::Persist, wg: 1024, threads: 1024, chunks: 1, mode: 0 }),
    ];
    for (name, ctx) in contexts() {
        let mut r = rng("rounded h");
        let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
        let (res, rs) = upload(&ctx, &random(&mut r, rows * n, 3.0), &shape, dtype);
        let (w, ws) = upload(&ctx, &random(&mut r, n, 2.0), &[n], dtype);
        let hs = round(&xs.iter().zip(&rs).map(|(a, b)| a + b).collect::<Vec<_>>(), dtype);
        let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(shape.to_vec(), hs).unwrap().view(), Some(&ws), 1e-5);
        // The native kernels have their own forms; their default pick runs here.
        let variants: &[Option<Variant>] = if name == "native" { &[None] } else { &[None, forced[0], forced[1], forced[2]] };
        for &v in variants {
            let (y, h) = (poisoned(&ctx, &shape, dtype), poisoned(&ctx, &shape, dtype));
            ctx.rms_norm_with(&Args { x: &x, weight: Some(&w), residual: Some(&res), y: &y, h: Some(&h), eps: 1e-5, variant: v }).unwrap();
            let what = format!("{name} {}", v.map_or("default".to_string(), |v| v.describe()));
            assert_close(&download(&y), want.as_slice().unwrap(), 1e-6, 5.0e-4, &what);
        }
    }
}

#[test]
fn add_rms_norm_f32_rows_of_1024_threads() {
    // add + RMSNorm in f32 widens rows to 1024 threads where they still cover the row exactly
    // (4096 columns: one chunk a thread, 8192: two), with and without a weight; RMSNorm alone and
    // f16 keep the shared rule.
    let ctx = ctx(false);
    for (rows, n) in [(5usize, 4096usize), (3, 8192), (2, 4100)] {
        let x = upload(&ctx, &vec![0.0; rows * n], &[rows, n], DType::F32).0;
        let v = wgfuse::kernels::rms_norm::variant_for(&ctx, &x, true);
        let want = if n % 4096 == 0 { (1024, (n / 4096) as u32) } else { (v.threads, v.chunks) };
        assert_eq!((v.threads, v.chunks), want, "{rows}x{n}: {v:?}");
        if n % 4096 == 0 {
            assert_eq!(wgfuse::kernels::rms_norm::variant_for(&ctx, &x, false).threads, (n / 16) as u32, "rms_norm {rows}x{n}");
        }
        for weighted in [true, false] {
            check(&ctx, rows, n, DType::F32, 4.0, weighted, true, &format!("add_rms_norm f32 {rows}x{n} w={weighted} {}", v.describe()));
        }
    }
    let x16 = upload(&ctx, &vec![0.0; 4 * 4096], &[4, 4096], DType::F16).0;
    assert_eq!(wgfuse::kernels::rms_norm::variant_for(&ctx, &x16, true).threads, 256, "f16 keeps 256 threads");
}
