//! Fused softmax vs the f64 reference, on awkward sizes, both dtypes, shader checks on and off.

mod common;

use common::*;
use ndarray::ArrayD;
use wgfuse::{DType, Error};

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
