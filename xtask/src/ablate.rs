//! `cargo xtask ablate`: variants that leave one stage out, to show what holds the kernels that
//! miss their targets: LoRA without its first phase (the merge form runs only `t·B`), RMSNorm
//! without its weight, and small ops chained with and without a dependency between them.
//! `--floor`: the fixed cost of one timed run. `--buffers`: whether a slow copy is a slow time
//! on a shared GPU or a slow buffer. `--weights`: whether RMSNorm's weight is slow by where it lies;
//! `--rms`: or by when it runs. `--ramp`: how the GPU's speed comes back after idle.

use std::time::Duration;

use rand::SeedableRng;
use wgfuse::kernels::{lora, rms_norm, softmax};
use wgfuse::timing::{median, Timer};
use wgfuse::{Context, DType, Tensor};

use crate::util::{err, random as tensor, Res};

fn time(timer: &mut Timer, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> wgfuse::Result<()>) -> Res<f64> {
    timer.warm_up(Duration::from_millis(200), &mut f).map_err(err)?;
    Ok(median(&timer.time(30, &mut f).map_err(err)?))
}

/// Where the fixed cost of one timed run goes: ops of 16 bytes to 64 MiB timed with the pass's
/// own timestamps, and with timestamps inside the pass after an untimed lead-in dispatch.
fn floor(ctx: &Context, rng: &mut rand::rngs::SmallRng) -> Res<()> {
    let mut plain = Timer::new(ctx, 256 << 20).map_err(err)?;
    let mut lead = Timer::new(ctx, 256 << 20).map_err(err)?.with_lead_in().map_err(err)?;
    if !lead.lead_in() {
        return Err("the adapter has no TIMESTAMP_QUERY_INSIDE_PASSES".into());
    }
    let sizes: [&[usize]; 4] = [&[4], &[128, 1024], &[1024, 4096], &[4096, 4096]];
    for shape in sizes {
        let x = tensor(ctx, rng, shape, DType::F32)?;
        let y = tensor(ctx, rng, shape, DType::F32)?;
        let (x2, y2) = (tensor(ctx, rng, shape, DType::F32)?, tensor(ctx, rng, shape, DType::F32)?);
        let copy = |p: &mut wgpu::ComputePass<'_>| wgfuse::kernels::copy::encode(ctx, p, &x, &y);
        let two = |p: &mut wgpu::ComputePass<'_>| {
            wgfuse::kernels::copy::encode(ctx, p, &x, &y)?;
            wgfuse::kernels::copy::encode(ctx, p, &x2, &y2)
        };
        let sm = |p: &mut wgpu::ComputePass<'_>| softmax::encode(ctx, p, &softmax::Args { x: &x, y: &y, variant: None });
        let (c_p, c_l) = (time(&mut plain, copy)?, time(&mut lead, copy)?);
        let (t_p, t_l) = (time(&mut plain, two)?, time(&mut lead, two)?);
        let (s_p, s_l) = (time(&mut plain, sm)?, time(&mut lead, sm)?);
        println!(
            "floor {shape:?} f32: copy {c_p:.2} µs pass timestamps / {c_l:.2} after a lead-in; two independent copies {t_p:.2} / {t_l:.2}; softmax {s_p:.2} / {s_l:.2}"
        );
    }
    let (c0, c1) = (tensor(ctx, rng, &[128, 1024], DType::F32)?, tensor(ctx, rng, &[128, 1024], DType::F32)?);
    let chain = |p: &mut wgpu::ComputePass<'_>| {
        for _ in 0..50 {
            softmax::encode(ctx, p, &softmax::Args { x: &c0, y: &c1, variant: None })?;
            softmax::encode(ctx, p, &softmax::Args { x: &c1, y: &c0, variant: None })?;
        }
        Ok(())
    };
    let (ch_p, ch_l) = (time(&mut plain, chain)?, time(&mut lead, chain)?);
    println!("floor softmax 128x1024 f32, 100 chained: {:.2} µs/op pass timestamps / {:.2} after a lead-in", ch_p / 100.0, ch_l / 100.0);
    // The same chain with the copy kernel in place of the softmax (the same bytes, no
    // reduction), and with 16-byte copies: what a dependent dispatch costs with nothing to do.
    let (t0, t1) = (tensor(ctx, rng, &[4], DType::F32)?, tensor(ctx, rng, &[4], DType::F32)?);
    for (what, a, b) in [("copy 128x1024 f32", &c0, &c1), ("copy of 16 bytes", &t0, &t1)] {
        let copies = |p: &mut wgpu::ComputePass<'_>| {
            for _ in 0..50 {
                wgfuse::kernels::copy::encode(ctx, p, a, b)?;
                wgfuse::kernels::copy::encode(ctx, p, b, a)?;
            }
            Ok(())
        };
        let us = time(&mut plain, copies)?;
        println!("floor {what}, 100 chained (each reads the last one's output): {:.2} µs/op", us / 100.0);
    }
    Ok(())
}

/// Whether a slow copy is a slow time or a slow buffer: 12 pairs of 64 MiB buffers, each
/// pair's copy timed (interleaved with the others, L2 flushed before each run) in 3 rounds.
/// A slow time slows every pair of a round; a slow buffer slows the same pair in every round.
fn buffers(ctx: &Context, rng: &mut rand::rngs::SmallRng) -> Res<()> {
    let n = 16usize << 20; // f32 elements: 64 MiB
    let pairs: Vec<(Tensor, Tensor)> =
        (0..12).map(|_| Ok((tensor(ctx, rng, &[n], DType::F32)?, tensor(ctx, rng, &[n], DType::F32)?))).collect::<Res<_>>()?;
    let mut timer = Timer::new(ctx, 256 << 20).map_err(err)?;
    let mut fs: Vec<Box<wgfuse::timing::Recorder<'_>>> = pairs
        .iter()
        .map(|(x, y)| Box::new(move |p: &mut wgpu::ComputePass<'_>| wgfuse::kernels::copy::encode(ctx, p, x, y)) as Box<_>)
        .collect();
    for (round, meds) in interleaved_rounds(&mut timer, &mut fs)?.iter().enumerate() {
        println!("buffers round {round}: copy 64 MiB -> 64 MiB, µs per pair: {}", fmt_us(meds));
    }
    Ok(())
}

/// Warms up on every closure of `fs` together (300 ms), then times them interleaved in 3
/// rounds of 10 runs: each round's medians in µs, one a closure.
fn interleaved_rounds(timer: &mut Timer, fs: &mut [Box<wgfuse::timing::Recorder<'_>>]) -> Res<Vec<Vec<f64>>> {
    timer
        .warm_up(Duration::from_millis(300), |p| {
            for f in fs.iter_mut() {
                f(p)?;
            }
            Ok(())
        })
        .map_err(err)?;
    (0..3)
        .map(|_| {
            let mut refs: Vec<&mut wgfuse::timing::Recorder<'_>> = fs.iter_mut().map(|f| f.as_mut()).collect();
            let times = timer.time_interleaved(10, &mut refs).map_err(err)?;
            Ok(times.iter().map(|t| median(t)).collect())
        })
        .collect()
}

/// RMSNorm over `x` into `y`, eps 1e-5, the library's variant: the form every timing here uses.
fn rms<'a>(x: &'a Tensor, weight: Option<&'a Tensor>, y: &'a Tensor) -> rms_norm::Args<'a> {
    rms_norm::Args { x, residual: None, weight, y, h: None, eps: 1e-5, variant: None }
}

fn fmt_us(v: &[f64]) -> String {
    v.iter().map(|t| format!("{t:.1}")).collect::<Vec<_>>().join(" ")
}

/// Whether RMSNorm's weight is slow by where it lies: per shape, the same op with six weights
/// (four buffers of their own, one inside a 64 MiB buffer, one that is the first row of x) and
/// without one, interleaved in 3 rounds after the L2 flush. A slow weight buffer is slow in
/// every round; a slow time slows every weight of a round.
fn weights(ctx: &Context, rng: &mut rand::rngs::SmallRng) -> Res<()> {
    for (rows, n, dtype) in [(4096, 32000, DType::F16), (4096, 32000, DType::F32), (4096, 8192, DType::F16), (4096, 4096, DType::F16)] {
        let x = tensor(ctx, rng, &[rows, n], dtype)?;
        let y = tensor(ctx, rng, &[rows, n], dtype)?;
        let mut ws: Vec<Tensor> = (0..4).map(|_| tensor(ctx, rng, &[n], dtype)).collect::<Res<_>>()?;
        let big = tensor(ctx, rng, &[(64 << 20) / dtype.size()], dtype)?;
        ws.push(ctx.tensor_from_buffer(big.buffer(), big.offset() + (32 << 20), &[n], dtype).map_err(err)?);
        ws.push(ctx.tensor_from_buffer(x.buffer(), x.offset(), &[n], dtype).map_err(err)?);
        let mut fs: Vec<Box<wgfuse::timing::Recorder<'_>>> = ws
            .iter()
            .map(|w| {
                let a = rms(&x, Some(w), &y);
                Box::new(move |p: &mut wgpu::ComputePass<'_>| rms_norm::encode(ctx, p, &a)) as Box<_>
            })
            .collect();
        let none = rms(&x, None, &y);
        fs.push(Box::new(move |p: &mut wgpu::ComputePass<'_>| rms_norm::encode(ctx, p, &none)));
        let mut timer = Timer::new(ctx, 256 << 20).map_err(err)?;
        for (round, meds) in interleaved_rounds(&mut timer, &mut fs)?.iter().enumerate() {
            println!(
                "weights rms_norm {} {rows}x{n} round {round}: µs with w0..w3 (own buffers), w4 (in a 64 MiB buffer), w5 (x's first row), none: {}",
                dtype.name(),
                fmt_us(meds)
            );
        }
    }
    Ok(())
}

/// RMSNorm over 4096 x 32000 in the order the default ablate times it (each dtype's tensors
/// made, timed with a weight, without, and with it again, then dropped), twice: whether a slow
/// run with the weight follows the tensors' making and freeing, or the weight.
fn rms_sequence(ctx: &Context, timer: &mut Timer, rng: &mut rand::rngs::SmallRng) -> Res<()> {
    for pass in 0..2 {
        for dtype in [DType::F32, DType::F16] {
            let made = std::time::Instant::now();
            let x = tensor(ctx, rng, &[4096, 32000], dtype)?;
            let w = tensor(ctx, rng, &[32000], dtype)?;
            let y = tensor(ctx, rng, &[4096, 32000], dtype)?;
            ctx.sync().map_err(err)?;
            let with_w = rms(&x, Some(&w), &y);
            let no_w = rms(&x, None, &y);
            let t_w = time(timer, |p| rms_norm::encode(ctx, p, &with_w))?;
            let t_nw = time(timer, |p| rms_norm::encode(ctx, p, &no_w))?;
            let t_w2 = time(timer, |p| rms_norm::encode(ctx, p, &with_w))?;
            std::thread::sleep(Duration::from_secs(1));
            let t_w3 = time(timer, |p| rms_norm::encode(ctx, p, &with_w))?;
            println!(
                "rms sequence {pass} {}: with weight {t_w:.1} µs, without {t_nw:.1}, with again {t_w2:.1}, after 1 s idle {t_w3:.1} ({:.1} s after the tensors were made)",
                dtype.name(),
                made.elapsed().as_secs_f64()
            );
        }
    }
    Ok(())
}

/// How the GPU comes back from idle: after `idle` seconds with nothing to do, RMSNorm f16
/// 4096 x 32000 with a weight is timed in groups of 5 runs (L2 flushed before each) for 1.5 s,
/// with no warm-up; each line is the time since the first group and the group's median.
fn ramp(ctx: &Context, rng: &mut rand::rngs::SmallRng) -> Res<()> {
    let dtype = DType::F16;
    let x = tensor(ctx, rng, &[4096, 32000], dtype)?;
    let w = tensor(ctx, rng, &[32000], dtype)?;
    let y = tensor(ctx, rng, &[4096, 32000], dtype)?;
    let a = rms(&x, Some(&w), &y);
    let mut timer = Timer::new(ctx, 256 << 20).map_err(err)?;
    timer.time(1, |p| rms_norm::encode(ctx, p, &a)).map_err(err)?;
    for idle in [3u64, 3, 1, 0] {
        std::thread::sleep(Duration::from_secs(idle));
        let t0 = std::time::Instant::now();
        let mut line = Vec::new();
        while t0.elapsed() < Duration::from_millis(1500) {
            let at = t0.elapsed().as_secs_f64() * 1e3;
            let us = median(&timer.time(5, |p| rms_norm::encode(ctx, p, &a)).map_err(err)?);
            line.push(format!("{at:.0}:{us:.0}"));
        }
        println!("ramp after {idle} s idle, rms_norm f16 4096x32000 (ms since start: µs a run): {}", line.join(" "));
    }
    Ok(())
}

pub fn run(args: &[String]) -> Res<()> {
    let ctx = Context::new().map_err(err)?;
    println!("{}", ctx.info());
    let mut timer = Timer::new(&ctx, 256 << 20).map_err(err)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
    if args.iter().any(|a| a == "--floor") {
        return floor(&ctx, &mut rng);
    }
    if args.iter().any(|a| a == "--buffers") {
        return buffers(&ctx, &mut rng);
    }
    if args.iter().any(|a| a == "--ramp") {
        return ramp(&ctx, &mut rng);
    }
    if args.iter().any(|a| a == "--rms") {
        return rms_sequence(&ctx, &mut timer, &mut rng);
    }
    if args.iter().any(|a| a == "--weights") {
        return weights(&ctx, &mut rng);
    }
    for dtype in [DType::F32, DType::F16] {
        let (m, k, r, o) = (4096, 4096, 16, 4096);
        let x = tensor(&ctx, &mut rng, &[m, k], dtype)?;
        let a = tensor(&ctx, &mut rng, &[k, r], dtype)?;
        let b = tensor(&ctx, &mut rng, &[r, o], dtype)?;
        let base = tensor(&ctx, &mut rng, &[m, o], dtype)?;
        let y = tensor(&ctx, &mut rng, &[m, o], dtype)?;
        let full = lora::Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: 0.5, mode: lora::Mode::Base, variant: None };
        // Merge form on the same shapes: W = base [4096, 4096], A = a rows as t: phase 2 only.
        let a_rows = tensor(&ctx, &mut rng, &[m, r], dtype)?;
        let phase2 =
            lora::Args { x: &a_rows, a: &a_rows, b: &b, base: Some(&base), y: &y, scale: 0.5, mode: lora::Mode::Merge, variant: None };
        let t_full = time(&mut timer, |p| lora::encode(&ctx, p, &full))?;
        let t_p2 = time(&mut timer, |p| lora::encode(&ctx, p, &phase2))?;
        println!(
            "lora {} 4096x4096 r16 ->4096: both phases {t_full:.1} µs, phase 2 only (merge form) {t_p2:.1} µs, phase 1 ≈ {:.1} µs",
            dtype.name(),
            t_full - t_p2
        );
    }
    for dtype in [DType::F32, DType::F16] {
        let (rows, n) = (4096, 32000);
        let x = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
        let w = tensor(&ctx, &mut rng, &[n], dtype)?;
        let y = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
        let with_w = rms(&x, Some(&w), &y);
        let no_w = rms(&x, None, &y);
        let t_w = time(&mut timer, |p| rms_norm::encode(&ctx, p, &with_w))?;
        let t_nw = time(&mut timer, |p| rms_norm::encode(&ctx, p, &no_w))?;
        let t_sm = time(&mut timer, |p| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: None }))?;
        println!("rms_norm {} 4096x32000: with weight {t_w:.1} µs, without {t_nw:.1} µs; softmax same shape {t_sm:.1} µs", dtype.name());
    }
    // 100 small ops in one pass: each writing the same output (a barrier between every two) or
    // each its own output (no dependency, no barrier).
    let x = tensor(&ctx, &mut rng, &[128, 1024], DType::F32)?;
    let outs: Vec<Tensor> = (0..100).map(|_| tensor(&ctx, &mut rng, &[128, 1024], DType::F32)).collect::<Res<_>>()?;
    let same = time(&mut timer, |p| {
        for _ in 0..100 {
            softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &outs[0], variant: None })?;
        }
        Ok(())
    })?;
    let own = time(&mut timer, |p| {
        for y in &outs {
            softmax::encode(&ctx, p, &softmax::Args { x: &x, y, variant: None })?;
        }
        Ok(())
    })?;
    println!(
        "softmax 128x1024 f32, 100 in one pass: {:.2} µs/op writing one output, {:.2} µs/op writing 100 outputs",
        same / 100.0,
        own / 100.0
    );
    // A dependent chain (each op reads the output of the one before, two buffers in turn), per
    // threads a row: fewer threads a row means fewer barriers inside the kernel.
    let (c0, c1) = (tensor(&ctx, &mut rng, &[128, 1024], DType::F32)?, tensor(&ctx, &mut rng, &[128, 1024], DType::F32)?);
    for (t, k) in [(32u32, 8u32), (64, 4), (128, 2), (256, 1)] {
        let v = wgfuse::kernels::Variant { kind: wgfuse::kernels::Kind::Reg, wg: 256, threads: t, chunks: k, mode: 0 };
        let us = time(&mut timer, |p| {
            for _ in 0..50 {
                softmax::encode(&ctx, p, &softmax::Args { x: &c0, y: &c1, variant: Some(v) })?;
                softmax::encode(&ctx, p, &softmax::Args { x: &c1, y: &c0, variant: Some(v) })?;
            }
            Ok(())
        })?;
        println!("softmax 128x1024 f32, 100 chained (each reads the last one's output), {}: {:.2} µs/op", v.describe(), us / 100.0);
    }
    // The floor of one timed run: an empty pass, and a 16-byte copy, each after the L2 flush.
    let empty = time(&mut timer, |_| Ok(()))?;
    let (a, b) = (tensor(&ctx, &mut rng, &[4], DType::F32)?, tensor(&ctx, &mut rng, &[4], DType::F32)?);
    let tiny = time(&mut timer, |p| wgfuse::kernels::copy::encode(&ctx, p, &a, &b))?;
    let mut quiet = Timer::new(&ctx, 0).map_err(err)?;
    let tiny_warm = time(&mut quiet, |p| wgfuse::kernels::copy::encode(&ctx, p, &a, &b))?;
    println!("timing floor: empty pass {empty:.2} µs, 16-byte copy {tiny:.2} µs after the L2 flush, {tiny_warm:.2} µs without it");
    Ok(())
}
