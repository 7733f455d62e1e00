//! Helpers shared by the xtask commands.

use rand::Rng;
use wgfuse::{Context, DType, Tensor};

/// A task's result: errors are messages for the terminal.
pub type Res<T> = Result<T, String>;

/// Any error as its message.
pub fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A tensor of `shape` with values uniform in [-1, 1) (never zeros).
pub fn random(ctx: &Context, rng: &mut impl Rng, shape: &[usize], dtype: DType) -> Res<Tensor> {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    match dtype {
        DType::F32 => ctx.tensor(&v, shape).map_err(err),
        DType::F16 => ctx.tensor(&v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>(), shape).map_err(err),
    }
}
