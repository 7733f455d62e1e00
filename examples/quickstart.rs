//! The README example: RMSNorm then softmax, chained on the GPU, read back once.

use wgfuse::{Context, Result};

fn main() -> Result<()> {
    let ctx = Context::new()?; // best adapter (see below)
    let x = ctx.tensor(&vec![0.5f32; 4 * 4096], &[4, 4096])?;
    let w = ctx.tensor(&vec![1.0f32; 4096], &[4096])?;
    let h = ctx.rms_norm(&x, Some(&w), 1e-5)?; // recorded lazily...
    let p = ctx.softmax(&h)?; // ...chained in one pass...
    let host: Vec<f32> = p.to_vec()?; // ...submitted when read
    println!("{}", host.iter().sum::<f32>()); // 4 rows of probabilities: 4.0
    Ok(())
}
