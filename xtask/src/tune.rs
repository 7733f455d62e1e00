//! `cargo xtask tune`: times every variant of the row kernels (threads per row × chunks per
//! thread, registers vs looped) and of LoRA (rows per tile × columns per thread) on the shapes
//! given, so that the variant rule in `kernels::row_variant` / `lora::variant` rests on
//! measurements. Prints one line per variant: GB/s and % of a copy of the same bytes.
//! Options: `--ops`, `--dtypes`, `--shapes`, `--lora-shapes RxINxRANKxOUT,...`, `--warmup-ms`,
//! `--lora-kinds coop,skinny,tiled,fused` (the LoRA forms swept; default all).

use std::time::Duration;

use rand::SeedableRng;
use wgfuse::kernels::{bytes_moved, copy, lora, rms_norm, softmax, Kind, Op, Variant};
use wgfuse::timing::{median, Timer};
use wgfuse::{Context, DType};

use crate::util::{err, random as tensor, Res};

fn time(timer: &mut Timer, warm: Duration, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> wgfuse::Result<()>) -> Res<f64> {
    timer.warm_up(warm, &mut f).map_err(err)?;
    let mut t = timer.time(30, &mut f).map_err(err)?;
    t.sort_by(f64::total_cmp);
    let m = median(&t);
    // A spread over 10% means the clocks moved during the runs: say so next to the number.
    if t[t.len() * 9 / 10] > 1.1 * t[t.len() / 10] {
        eprintln!("  (spread {:.1}..{:.1} µs)", t[t.len() / 10], t[t.len() * 9 / 10]);
    }
    Ok(m)
}

fn row_variants(n: usize, max_wg: u32) -> Vec<Variant> {
    let chunks = if n.is_multiple_of(4) { n / 4 } else { (n + 6) / 4 };
    let mut v = Vec::new();
    for t in [1u32, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] {
        if t > max_wg {
            continue;
        }
        let k = chunks.div_ceil(t as usize) as u32;
        for wg in [256u32, 512, 1024] {
            if wg < t || wg > max_wg || (t < 256 && wg != 256) || (t >= 256 && wg != t) {
                continue;
            }
            if (1..=16).contains(&k) && (k as usize) * (t as usize) < chunks + t as usize {
                v.push(Variant { kind: Kind::Reg, wg, threads: t, chunks: k, mode: 0 });
            }
            if t >= 128 {
                v.push(Variant { kind: Kind::Online, wg, threads: t, chunks: 1, mode: 0 });
            }
        }
    }
    v
}

pub fn run(args: &[String]) -> Res<()> {
    let mut ops = vec!["softmax".to_string(), "rms_norm".into(), "add_rms_norm".into(), "lora".into()];
    let mut shapes: Vec<Vec<usize>> = vec![vec![128, 1024], vec![4096, 4096], vec![4096, 8192], vec![16384, 4096], vec![4096, 32000]];
    let mut lora_shapes: Vec<Vec<usize>> = vec![vec![512, 512, 8, 512], vec![1, 4096, 16, 4096], vec![4096, 4096, 16, 4096]];
    let mut dtypes = vec![DType::F32, DType::F16];
    let mut warm = Duration::from_millis(100);
    let mut lora_kinds = vec!["coop".to_string(), "skinny".into(), "tiled".into(), "fused".into()];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let parse = |s: &str| -> Res<Vec<Vec<usize>>> {
            s.split(',').map(|x| x.split('x').map(|d| d.parse::<usize>().map_err(err)).collect()).collect()
        };
        match a.as_str() {
            "--ops" => ops = v.split(',').map(String::from).collect(),
            "--shapes" => shapes = parse(v)?,
            "--lora-shapes" => lora_shapes = parse(v)?,
            "--dtypes" => dtypes = v.split(',').map(|d| if d == "f16" { DType::F16 } else { DType::F32 }).collect(),
            "--warmup-ms" => warm = Duration::from_millis(v.parse().map_err(err)?),
            "--lora-kinds" => lora_kinds = v.split(',').map(String::from).collect(),
            o => return Err(format!("unknown option {o}")),
        }
    }
    // Cooperative matrices where the adapter has them, so that LoRA's Kind::Coop is swept too.
    let ctx = Context::with_options(wgfuse::ContextOptions { cooperative_matrix: true, ..Default::default() }).map_err(err)?;
    println!("{}", ctx.info());
    let max_wg = ctx.info().limits.max_compute_invocations_per_workgroup;
    let mut timer = Timer::new(&ctx, 256 << 20).map_err(err)?;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(5);
    for op in &ops {
        for &dtype in &dtypes {
            let list = if op == "lora" { &lora_shapes } else { &shapes };
            for s in list {
                if op == "lora" {
                    let (m, k, r, o) = (s[0], s[1], s[2], s[3]);
                    let x = tensor(&ctx, &mut rng, &[m, k], dtype)?;
                    let a = tensor(&ctx, &mut rng, &[k, r], dtype)?;
                    let b = tensor(&ctx, &mut rng, &[r, o], dtype)?;
                    let base = tensor(&ctx, &mut rng, &[m, o], dtype)?;
                    let y = tensor(&ctx, &mut rng, &[m, o], dtype)?;
                    let bytes = bytes_moved(Op::Lora, &[m, k, r, o], dtype);
                    let bound = copy_time(&ctx, &mut timer, warm, bytes)?;
                    // k lanes of x·A: 32, and 16 (the wide form) but for f16 with in not a multiple of 8.
                    let lanes: &[u32] = if dtype == DType::F32 || k % 8 == 0 { &[32, 16] } else { &[32] };
                    let tiled = [1u32, 2, 4, 6, 8, 16, 32].into_iter().flat_map(|kt| {
                        lanes.iter().flat_map(move |&l| {
                            [1, 1 | lora::MODE_XA_ROWS2].map(|mode| Variant { kind: Kind::Project, wg: 256, threads: l, chunks: kt, mode })
                        })
                    });
                    let fused = [4u32, 8, 16].into_iter().flat_map(|tm| {
                        let passes = (o.div_ceil(4) as u32).div_ceil(256 / (tm / 4));
                        [1u32, 2, 4, 8, 16, 32, 64].into_iter().filter(move |&per| per <= passes).flat_map(move |per| {
                            [Kind::Plain, Kind::Down].map(|kind| Variant { kind, wg: 256, threads: per, chunks: tm, mode: 1 })
                        })
                    });
                    let chunks_out = o.div_ceil(4) as u32;
                    let skinny = [1u32, 2, 4].into_iter().filter(move |&tm| m <= 2048 && (tm as usize) <= m.next_power_of_two()).flat_map(
                        move |tm| {
                            [256u32, 1024].into_iter().flat_map(move |wg| {
                                [1u32, 4, 16, 32, 64, 128, 256].into_iter().filter(move |&cb| cb <= chunks_out).map(move |cb| Variant {
                                    kind: Kind::Skinny,
                                    wg,
                                    threads: cb,
                                    chunks: tm,
                                    mode: 1,
                                })
                            })
                        },
                    );
                    let coop = lora::coop_fits(&ctx, m, k, r, o, dtype).then(|| Variant { mode: 1, ..lora::coop_variant(&ctx) });
                    let pick = lora::variant_for(m, k, o, dtype);
                    let kind = |name: &str| lora_kinds.iter().any(|k| k == name);
                    let mut skinny: Vec<Variant> = if kind("skinny") { skinny.collect() } else { Vec::new() };
                    // The rule's skinny pick, where the sweep's block counts miss it.
                    if kind("skinny") && pick.kind == Kind::Skinny && !skinny.contains(&Variant { mode: 1, ..pick }) {
                        skinny.push(Variant { mode: 1, ..pick });
                    }
                    let variants = coop
                        .filter(|_| kind("coop"))
                        .into_iter()
                        .chain(skinny)
                        .chain(tiled.filter(|_| kind("tiled")))
                        .chain(fused.filter(|_| kind("fused")));
                    for v in variants {
                        let args = lora::Args {
                            x: &x,
                            a: &a,
                            b: &b,
                            base: Some(&base),
                            y: &y,
                            scale: 0.5,
                            mode: lora::Mode::Base,
                            variant: Some(v),
                        };
                        let us = time(&mut timer, warm, |p| lora::encode(&ctx, p, &args))?;
                        println!(
                            "lora {} {}: {:<14} {:9.2} µs {:7.0} GB/s {:6.1}% of copy{}",
                            dtype.name(),
                            s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x"),
                            v.describe(),
                            us,
                            bytes as f64 / (us * 1e3),
                            100.0 * bound / us,
                            if (Variant { mode: v.mode & lora::MODE_XA_ROWS2, ..v })
                                == (Variant { mode: pick.mode & lora::MODE_XA_ROWS2, ..pick })
                            {
                                "  <- rule"
                            } else {
                                ""
                            }
                        );
                    }
                    // The t·B dispatch alone (the merge W + s·A·B with A [rows, r]), per width
                    // (column chunks) and number of 16-row blocks a workgroup; its bound is the
                    // copy of W. Part of the tiled form.
                    if !kind("tiled") {
                        continue;
                    }
                    let t_rows = tensor(&ctx, &mut rng, &[m, r], dtype)?;
                    let merge_bound = copy_time(&ctx, &mut timer, warm, (2 * m * o * dtype.size()) as u64)?;
                    let fit = lora::expand_fit(r);
                    for (width, blocks) in
                        [1u32, 2, 4, 8, 16].into_iter().filter(|&k| k <= fit).flat_map(|k| lora::EXPAND_WIDTHS.map(|w| (w, k)))
                    {
                        let v = Variant { kind: Kind::Expand, wg: 256, threads: width, chunks: blocks, mode: 3 };
                        let args = lora::Args {
                            x: &t_rows,
                            a: &t_rows,
                            b: &b,
                            base: Some(&base),
                            y: &y,
                            scale: 0.5,
                            mode: lora::Mode::Merge,
                            variant: Some(v),
                        };
                        let us = time(&mut timer, warm, |p| lora::encode(&ctx, p, &args))?;
                        println!(
                            "lora-merge {} {m}x{r}x{o}: {:<14} {:9.2} µs {:6.1}% of copy",
                            dtype.name(),
                            v.describe(),
                            us,
                            100.0 * merge_bound / us
                        );
                    }
                    continue;
                }
                let (rows, n) = (s[0], s[1]);
                let x = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
                let r = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
                let w = tensor(&ctx, &mut rng, &[n], dtype)?;
                let y = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
                let h = tensor(&ctx, &mut rng, &[rows, n], dtype)?;
                let kind = Op::from_name(op.as_str()).ok_or(format!("unknown op {op}"))?;
                let bytes = bytes_moved(kind, &[rows, n], dtype);
                let bound = copy_time(&ctx, &mut timer, warm, bytes)?;
                let pick = match op.as_str() {
                    "softmax" => softmax::wgsl_variant(rows, n, dtype, max_wg),
                    o => rms_norm::wgsl_variant(rows, n, dtype, max_wg, o == "add_rms_norm"),
                };
                for v in row_variants(n, max_wg) {
                    let us = match op.as_str() {
                        "softmax" => {
                            time(&mut timer, warm, |p| softmax::encode(&ctx, p, &softmax::Args { x: &x, y: &y, variant: Some(v) }))?
                        }
                        "rms_norm" => {
                            let a = rms_norm::Args { x: &x, residual: None, weight: Some(&w), y: &y, h: None, eps: 1e-5, variant: Some(v) };
                            time(&mut timer, warm, |p| rms_norm::encode(&ctx, p, &a))?
                        }
                        _ => {
                            let a = rms_norm::Args {
                                x: &x,
                                residual: Some(&r),
                                weight: Some(&w),
                                y: &y,
                                h: Some(&h),
                                eps: 1e-5,
                                variant: Some(v),
                            };
                            time(&mut timer, warm, |p| rms_norm::encode(&ctx, p, &a))?
                        }
                    };
                    println!(
                        "{op} {} {rows}x{n}: {:<20} {:9.2} µs {:7.0} GB/s {:6.1}% of copy{}",
                        dtype.name(),
                        v.describe(),
                        us,
                        bytes as f64 / (us * 1e3),
                        100.0 * bound / us,
                        if v == pick { "  <- rule" } else { "" }
                    );
                }
            }
        }
    }
    Ok(())
}

fn copy_time(ctx: &Context, timer: &mut Timer, warm: Duration, bytes: u64) -> Res<f64> {
    let n = (bytes / 2).div_ceil(4) as usize;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
    let x = tensor(ctx, &mut rng, &[n], DType::F32)?;
    let y = tensor(ctx, &mut rng, &[n], DType::F32)?;
    time(timer, warm, |p| copy::encode(ctx, p, &x, &y))
}
