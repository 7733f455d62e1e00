//! The host path: wall time per op of a loop of 1000 `ctx.softmax` calls on 128×1024 f32 with
//! one `sync()` at the end, for several `max_pending_ops`. "record" is the loop alone (the
//! host), "wall" includes the sync (the GPU finishing); "outputs held" keeps every output
//! alive, so that no op writes the buffer the op before it wrote.
//!
//! ```text
//! cargo run --release --example host_loop
//! ```

use std::time::{Duration, Instant};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(max_pending_ops: usize) -> wgfuse::Result<()> {
    let ctx = wgfuse::Context::with_options(wgfuse::ContextOptions { max_pending_ops, ..Default::default() })?;
    let data: Vec<f32> = (0..128 * 1024).map(|i| ((i * 7919) % 997) as f32 * 0.01).collect();
    let x = ctx.tensor(&data, &[128, 1024])?;
    let loops = 1000;
    // Warm the pool, the caches and the GPU's clocks with the same loop.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(400) {
        for _ in 0..loops {
            drop(ctx.softmax(&x)?);
        }
        ctx.sync()?;
    }
    let (mut record, mut wall, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..loops {
            drop(ctx.softmax(&x)?);
        }
        record.push(t.elapsed().as_secs_f64() * 1e6 / loops as f64);
        ctx.sync()?;
        wall.push(t.elapsed().as_secs_f64() * 1e6 / loops as f64);
    }
    for _ in 0..5 {
        let t = Instant::now();
        let ys = (0..loops).map(|_| ctx.softmax(&x)).collect::<wgfuse::Result<Vec<_>>>()?;
        ctx.sync()?;
        held.push(t.elapsed().as_secs_f64() * 1e6 / loops as f64);
        drop(ys);
    }
    println!(
        "max_pending_ops {max_pending_ops:4}: record {:.2} µs/op, wall {:.2} µs/op, outputs held: wall {:.2} µs/op (medians)",
        median(&mut record),
        median(&mut wall),
        median(&mut held)
    );
    Ok(())
}

fn main() -> wgfuse::Result<()> {
    for m in [512, 128, 32, 8] {
        run(m)?;
    }
    Ok(())
}
