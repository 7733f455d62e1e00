//! The unfused baselines compute the same functions as the fused kernels (f32).

mod common;

use common::*;
use ndarray::{Array2, ArrayD};
use wgfuse::kernels::unfused;
use wgfuse::DType;

#[test]
fn baselines_match_the_references() {
    let ctx = ctx(false);
    let mut r = rng("unfused");
    for (rows, n) in [(1usize, 1usize), (3, 257), (70, 1000)] {
        let shape = [rows, n];
        let (x, xs) = upload(&ctx, &random(&mut r, rows * n, 5.0), &shape, DType::F32);
        let (res, rs) = upload(&ctx, &random(&mut r, rows * n, 5.0), &shape, DType::F32);
        let (w, ws) = upload(&ctx, &random(&mut r, n, 2.0), &[n], DType::F32);
        let xa = ArrayD::from_shape_vec(shape.to_vec(), xs.clone()).unwrap();
        let ra = ArrayD::from_shape_vec(shape.to_vec(), rs).unwrap();

        let p = unfused::softmax(&ctx, &x).unwrap();
        p.record(&ctx).unwrap();
        assert_eq!(p.dispatches(), 5);
        let want = wgfuse::reference::softmax(xa.view());
        assert_close(&download(&p.outputs()[0]), want.as_slice().unwrap(), 1e-6, 1e-5, "unfused softmax");

        let p = unfused::rms_norm(&ctx, &x, Some(&w), 1e-5).unwrap();
        p.record(&ctx).unwrap();
        let want = wgfuse::reference::rms_norm(xa.view(), Some(&ws), 1e-5);
        assert_close(&download(&p.outputs()[0]), want.as_slice().unwrap(), 1e-5, 1e-4, "unfused rms_norm");

        let p = unfused::add_rms_norm(&ctx, &x, &res, Some(&w), 1e-5).unwrap();
        p.record(&ctx).unwrap();
        let (wy, wh) = wgfuse::reference::add_rms_norm(xa.view(), ra.view(), Some(&ws), 1e-5);
        assert_close(&download(&p.outputs()[0]), wy.as_slice().unwrap(), 1e-5, 1e-4, "unfused add_rms_norm y");
        assert_close(&download(&p.outputs()[1]), wh.as_slice().unwrap(), 1e-5, 1e-5, "unfused add_rms_norm h");
    }
    for (rows, k, rank, out) in [(1usize, 7usize, 1usize, 5usize), (33, 100, 16, 70)] {
        let (x, xs) = upload(&ctx, &random(&mut r, rows * k, 1.0), &[rows, k], DType::F32);
        let (a, as_) = upload(&ctx, &random(&mut r, k * rank, 1.0), &[k, rank], DType::F32);
        let (b, bs) = upload(&ctx, &random(&mut r, rank * out, 1.0), &[rank, out], DType::F32);
        let (base, bases) = upload(&ctx, &random(&mut r, rows * out, 1.0), &[rows, out], DType::F32);
        let arr = |v: &Vec<f64>, r: usize, c: usize| Array2::from_shape_vec((r, c), v.clone()).unwrap();
        for with_base in [false, true] {
            let p = unfused::lora(&ctx, &x, &a, &b, 0.5, with_base.then_some(&base)).unwrap();
            p.record(&ctx).unwrap();
            let bb = arr(&bases, rows, out);
            let want = wgfuse::reference::lora(
                arr(&xs, rows, k).view(),
                arr(&as_, k, rank).view(),
                arr(&bs, rank, out).view(),
                0.5,
                with_base.then(|| bb.view()),
            );
            assert_close(&download(&p.outputs()[0]), want.as_slice().unwrap(), 1e-5, 1e-4, "unfused lora");
        }
    }
    // f16 is refused with a typed error.
    let (h, _) = upload(&ctx, &[1.0, 2.0], &[1, 2], DType::F16);
    assert!(matches!(unfused::softmax(&ctx, &h), Err(wgfuse::Error::DTypeMismatch { .. })));
}
