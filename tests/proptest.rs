//! Property tests: every op against its reference on random shapes, dtypes and value ranges.
//! Case counts are kept small so the suite fits CI's software GPU; `PROPTEST_CASES` raises them.

mod common;

use std::sync::OnceLock;

use common::*;
use ndarray::{Array2, ArrayD};
use proptest::prelude::*;
use wgfuse::{Context, DType};

fn shared() -> &'static Context {
    static CTX: OnceLock<Context> = OnceLock::new();
    CTX.get_or_init(|| ctx(false))
}

fn dtype() -> impl Strategy<Value = DType> {
    prop_oneof![Just(DType::F32), Just(DType::F16)]
}

/// Magnitudes from tiny to large (for f16, up to what it holds).
fn scale(d: DType) -> impl Strategy<Value = f64> {
    let max = if d == DType::F16 { 3.0e4 } else { 1.0e6 };
    prop_oneof![Just(1e-3), Just(1.0), Just(30.0), Just(max)]
}

fn data(len: usize, s: f64) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-1.0f64..1.0, len).prop_map(move |v| v.into_iter().map(|x| x * s).collect())
}

fn cfg() -> ProptestConfig {
    ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(24), ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(cfg())]

    #[test]
    fn softmax_matches_reference((rows, n, d, v) in (1usize..40, 1usize..2100, dtype())
        .prop_flat_map(|(r, n, d)| (Just(r), Just(n), Just(d), scale(d).prop_flat_map(move |s| data(r * n, s)))))
    {
        let ctx = shared();
        let (x, seen) = upload(ctx, &v, &[rows, n], d);
        let got = download(&ctx.softmax(&x).unwrap());
        let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], seen).unwrap().view());
        let (atol, rtol) = tol(d);
        assert_close(&got, want.as_slice().unwrap(), atol, rtol, "softmax");
    }

    #[test]
    fn rms_norm_matches_reference((rows, n, d, v, add) in (1usize..40, 1usize..2100, dtype(), any::<bool>())
        .prop_flat_map(|(r, n, d, add)| (Just(r), Just(n), Just(d), scale(d).prop_flat_map(move |s| data(2 * r * n + n, s)), Just(add))))
    {
        let ctx = shared();
        let len = rows * n;
        let (x, xs) = upload(ctx, &v[..len], &[rows, n], d);
        let wv: Vec<f64> = v[2 * len..].iter().map(|w| 1.0 + w / (1.0 + w.abs())).collect();
        let (w, ws) = upload(ctx, &wv, &[n], d);
        let (atol, rtol) = if d == DType::F32 { (1e-5, 1e-4) } else { (4e-3, 1e-2) };
        if add {
            let (r, rs) = upload(ctx, &v[len..2 * len], &[rows, n], d);
            let (y, h) = ctx.add_rms_norm(&x, &r, Some(&w), 1e-5).unwrap();
            let hs: Vec<f64> = xs.iter().zip(&rs).map(|(a, b)| a + b).collect();
            let hs: Vec<f64> = match d {
                DType::F32 => hs.iter().map(|&v| v as f32 as f64).collect(),
                DType::F16 => hs.iter().map(|&v| half::f16::from_f64(v).to_f64()).collect(),
            };
            let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(vec![rows, n], hs.clone()).unwrap().view(), Some(&ws), 1e-5);
            assert_close(&download(&h), &hs, 0.0, 1e-6, "add_rms_norm h");
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, "add_rms_norm y");
        } else {
            let y = ctx.rms_norm(&x, Some(&w), 1e-5).unwrap();
            let want = wgfuse::reference::rms_norm(ArrayD::from_shape_vec(vec![rows, n], xs).unwrap().view(), Some(&ws), 1e-5);
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, "rms_norm");
        }
    }

    #[test]
    fn lora_matches_reference((rows, k, r, o, d, v) in (1usize..70, 1usize..300, 1usize..=128, 1usize..300, dtype())
        .prop_flat_map(|(rows, k, r, o, d)| (Just(rows), Just(k), Just(r), Just(o), Just(d), data(rows * k + k * r + r * o + rows * o, 1.0))))
    {
        let ctx = shared();
        let mut at = 0;
        let mut take = |n: usize| { at += n; &v[at - n..at] };
        let (x, xs) = upload(ctx, take(rows * k), &[rows, k], d);
        let av: Vec<f64> = take(k * r).iter().map(|a| a / (k as f64).sqrt()).collect();
        let (a, as_) = upload(ctx, &av, &[k, r], d);
        let (b, bs) = upload(ctx, take(r * o), &[r, o], d);
        let (base, bases) = upload(ctx, take(rows * o), &[rows, o], d);
        let y = ctx.lora(&x, &a, &b, 0.5, Some(&base)).unwrap();
        let arr = |v: &[f64], r: usize, c: usize| Array2::from_shape_vec((r, c), v.to_vec()).unwrap();
        let bb = arr(&bases, rows, o);
        let want = wgfuse::reference::lora(arr(&xs, rows, k).view(), arr(&as_, k, r).view(), arr(&bs, r, o).view(), 0.5, Some(bb.view()));
        let n = (k * r) as f64;
        let (atol, rtol) = if d == DType::F32 { (1e-6 * n.sqrt(), 1e-5) } else { (2e-3 + 1e-6 * n.sqrt(), 2e-3) };
        assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, "lora");
    }
}
