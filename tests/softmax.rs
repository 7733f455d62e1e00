//! Fused softmax vs the f64 reference, on awkward sizes, both dtypes, shader checks on and off.

mod common;

use common::*;
use ndarray::ArrayD;
use wgfuse::DType;

const SIZES: [usize; 14] = [1, 3, 31, 32, 33, 255, 256, 257, 1000, 1023, 1024, 1025, 4097, 50257];

fn check(ctx: &wgfuse::Context, rows: usize, n: usize, dtype: DType, scale: f64, what: &str) {
    let mut r = rng(what);
    let data = random(&mut r, rows * n, scale);
    let (x, seen) = upload(ctx, &data, &[rows, n], dtype);
    let y = ctx.softmax(&x).expect("softmax");
    let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], seen).unwrap().view());
    let (atol, rtol) = tol(dtype);
    assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, what);
}

#[test]
fn softmax_sizes() {
    for (checks, ctx) in contexts() {
        for dtype in [DType::F32, DType::F16] {
            for n in SIZES {
                let rows = if n > 4096 { 3 } else { 7 };
                check(&ctx, rows, n, dtype, 8.0, &format!("softmax {dtype:?} {rows}x{n} checks={checks}"));
            }
        }
    }
}

#[test]
fn softmax_extreme_values_match_torch() {
    let inf = f64::INFINITY;
    let rows: Vec<Vec<f64>> = vec![
        vec![1e30, -1e30, 0.0, 1e30, 5.0],  // huge magnitudes: the max is subtracted first
        vec![-inf, 1.0, 2.0, -inf, 0.0],    // -inf elements give 0
        vec![-inf, -inf, -inf, -inf, -inf], // all -inf: NaN (as torch)
        vec![inf, 1.0, 2.0, 3.0, 4.0],      // +inf: NaN (inf - inf)
        vec![f64::NAN, 1.0, 2.0, 3.0, 4.0], // NaN anywhere: NaN row
        vec![-3e4, -2e4, 6e4, 6e4, 0.0],    // near f16 max
    ];
    for (checks, ctx) in contexts() {
        for dtype in [DType::F32, DType::F16] {
            let mut data: Vec<f64> = rows.concat();
            if dtype == DType::F16 {
                // f16 tops out at 65504: 1e30 becomes inf, as torch's .half() does.
                data.iter_mut().for_each(|v| *v = half::f16::from_f64(*v).to_f64());
            }
            let (x, seen) = upload(&ctx, &data, &[rows.len(), 5], dtype);
            let got = download(&ctx.softmax(&x).unwrap());
            let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows.len(), 5], seen).unwrap().view());
            let (atol, rtol) = tol(dtype);
            assert_close(&got, want.as_slice().unwrap(), atol, rtol, &format!("extremes {dtype:?} checks={checks}"));
        }
    }
    // The same through the looped (online) variant, which combines partial maxima.
    let ctx = ctx(false);
    let n = 40_000;
    let mut data = vec![0.0f64; 3 * n];
    data[..n].fill(-inf);
    data[n + 7] = inf;
    data[2 * n + 39_999] = 1e30;
    data[2 * n..3 * n - 1].iter_mut().enumerate().for_each(|(i, v)| *v = if i % 2 == 0 { -inf } else { -1e30 });
    let (x, seen) = upload(&ctx, &data, &[3, n], DType::F32);
    let got = download(&ctx.softmax(&x).unwrap());
    let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![3, n], seen).unwrap().view());
    assert_close(&got, want.as_slice().unwrap(), 1e-6, 1e-5, "extremes, online variant");
}

#[test]
fn softmax_more_rows_than_one_grid_dimension() {
    let ctx = ctx(false);
    // Several rows per workgroup.
    check(&ctx, 70_000, 3, DType::F32, 4.0, "softmax 70000x3");
    check(&ctx, 66_000, 33, DType::F16, 4.0, "softmax 66000x33 f16");
    // One row per workgroup: 70000 workgroups, more than a grid dimension holds.
    let mut r = rng("softmax 70000x5 one row per workgroup");
    let data = random(&mut r, 70_000 * 5, 4.0);
    let (x, seen) = upload(&ctx, &data, &[70_000, 5], DType::F32);
    let y = ctx.tensor(&vec![f32::NAN; 70_000 * 5], &[70_000, 5]).unwrap();
    let v = wgfuse::kernels::Variant { kind: wgfuse::kernels::Kind::Reg, wg: 256, threads: 256, chunks: 1, mode: 0 };
    ctx.softmax_into(&x, &y, Some(v)).unwrap();
    let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![70_000, 5], seen).unwrap().view());
    assert_close(&download(&y), want.as_slice().unwrap(), 1e-6, 1e-5, "70000 workgroups");
}

#[test]
fn softmax_f16_persistent_rows() {
    // The persistent variant (f16, aligned rows): fewer rows than its workgroups, a few rows
    // a workgroup (300 rows over 128) with the next row loaded ahead, the default pick at 32000
    // columns, extreme values in the rows it walks, and typed errors where it does not apply.
    use wgfuse::kernels::{Kind, Variant, PERSIST_GROUPS};
    let ctx = ctx(false);
    let inf = f64::INFINITY;
    for (rows, n) in [(1usize, 4usize), (3, 1024), (300, 4), (300, 1028), (129, 4096), (2 * PERSIST_GROUPS as usize + 3, 32000)] {
        let what = format!("persistent f16 {rows}x{n}");
        let mut r = rng(&what);
        let mut data = random(&mut r, rows * n, 6.0);
        if rows > 2 {
            data[n + 1] = inf; // a NaN row
            data[2 * n..3 * n].fill(-inf); // a NaN row
            data[rows * n - 1] = -inf; // a 0
        }
        let (x, seen) = upload(&ctx, &data, &[rows, n], DType::F16);
        let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], seen).unwrap().view());
        let (atol, rtol) = tol(DType::F16);
        for t in [32u32, 256, 1024] {
            let k = (n / 4).div_ceil(t as usize) as u32;
            if k > 16 {
                continue;
            }
            let v = Variant { kind: Kind::Persist, wg: t, threads: t, chunks: k, mode: 0 };
            let y = poisoned(&ctx, &[rows, n], DType::F16);
            ctx.softmax_into(&x, &y, Some(v)).unwrap();
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{what} {}", v.describe()));
        }
        if n == 32000 {
            assert_eq!(wgfuse::kernels::softmax::variant_for(&ctx, &x).kind, Kind::Persist, "{what}: the default pick");
            assert_close(&download(&ctx.softmax(&x).unwrap()), want.as_slice().unwrap(), atol, rtol, &format!("{what} default"));
        }
    }
    let v = Variant { kind: Kind::Persist, wg: 256, threads: 256, chunks: 1, mode: 0 };
    for (shape, dtype) in [([2usize, 1024usize], DType::F32), ([2, 1022], DType::F16), ([2, 2048], DType::F16)] {
        let x = upload(&ctx, &vec![0.0; shape[0] * shape[1]], &shape, dtype).0;
        let y = poisoned(&ctx, &shape, dtype);
        let got = ctx.softmax_into(&x, &y, Some(v));
        assert!(matches!(got, Err(wgfuse::Error::InvalidArgument { .. })), "{shape:?} {dtype:?}: {got:?}");
    }
}

#[test]
fn softmax_every_variant_on_every_row_length() {
    // Forces each variant kind at several widths on the same inputs: 4-aligned rows (whose
    // kernels leave out the partial-chunk code) and not, both dtypes, NaN-poisoned outputs.
    let ctx = ctx(false);
    for dtype in [DType::F32, DType::F16] {
        for n in [1usize, 4, 5, 33, 256, 257, 1024, 1025, 4096] {
            let mut r = rng(&format!("variants {dtype:?} n={n}"));
            let data = random(&mut r, 9 * n, 6.0);
            let (x, seen) = upload(&ctx, &data, &[9, n], dtype);
            let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![9, n], seen).unwrap().view());
            for v in row_variants(n) {
                let y = poisoned(&ctx, &[9, n], dtype);
                ctx.softmax_into(&x, &y, Some(v)).unwrap();
                let (atol, rtol) = tol(dtype);
                assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{dtype:?} n={n} {}", v.describe()));
            }
        }
    }
}

#[test]
fn softmax_low_level_encode_into_a_user_pass() {
    let ctx = ctx(true);
    let mut r = rng("encode");
    let data = random(&mut r, 4 * 300, 3.0);
    let (x, seen) = upload(&ctx, &data, &[4, 300], DType::F32);
    let y = ctx.tensor(&vec![f32::NAN; 1200], &[4, 300]).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        wgfuse::kernels::softmax::encode(&ctx, &mut pass, &wgfuse::kernels::softmax::Args { x: &x, y: &y, variant: None }).unwrap();
    }
    ctx.queue().submit([enc.finish()]);
    let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![4, 300], seen).unwrap().view());
    assert_close(&download(&y), want.as_slice().unwrap(), 1e-6, 1e-5, "encode");
}
