//! `cargo xtask compare-backends`: fused WGSL vs native vs the unfused baseline vs the CPU
//! reference, per op × dtype × shape, on the chosen adapter.
//!
//! Every GPU number is the median of timestamp-query runs, after ≥ 200 ms of warm-up of the
//! same work (≥ 600 ms when the GPU has idled, as while a case's inputs are made: see
//! `wgfuse::timing::RESUME_WARM_UP`; not in `--quick`), with the L2 flushed (256 MiB
//! overwritten) before each run. The bound of a row is a copy kernel over the same number of
//! bytes, timed the same way in the same run.
//! On a shared GPU a case whose copy ran under 60% of the fastest copy so far (a slow phase;
//! the 1 GiB headline copy is timed first) is timed again on the same inputs, up to
//! `--retries` times (2), keeping the attempt whose copy ran fastest (the headline copy
//! likewise, at the end); the report names those cases.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use half::f16;
use ndarray::{Array2, ArrayD};
use rand::{Rng, SeedableRng};
use wgfuse::kernels::{copy, lora, rms_norm, softmax, unfused};
use wgfuse::timing::{median, Clock, Recorder, Timer};
use wgfuse::{Backend, Context, ContextOptions, DType, Tensor};

use crate::util::{err, Res};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum OpName {
    Softmax,
    RmsNorm,
    AddRmsNorm,
    Lora,
}

impl OpName {
    fn parse(s: &str) -> Res<OpName> {
        match s {
            "softmax" => Ok(OpName::Softmax),
            "rms_norm" => Ok(OpName::RmsNorm),
            "add_rms_norm" => Ok(OpName::AddRmsNorm),
            "lora" => Ok(OpName::Lora),
            o => Err(format!("unknown op {o:?} (softmax, rms_norm, add_rms_norm, lora)")),
        }
    }
    fn name(self) -> &'static str {
        match self {
            OpName::Softmax => "softmax",
            OpName::RmsNorm => "rms_norm",
            OpName::AddRmsNorm => "add_rms_norm",
            OpName::Lora => "lora",
        }
    }
    /// Numbers in a shape: rows x n, or rows x in x r x out.
    fn op(self) -> wgfuse::kernels::Op {
        match self {
            OpName::Softmax => wgfuse::kernels::Op::Softmax,
            OpName::RmsNorm => wgfuse::kernels::Op::RmsNorm,
            OpName::AddRmsNorm => wgfuse::kernels::Op::AddRmsNorm,
            OpName::Lora => wgfuse::kernels::Op::Lora,
        }
    }
    fn arity(self) -> usize {
        if self == OpName::Lora {
            4
        } else {
            2
        }
    }
}

struct Opts {
    ops: Vec<OpName>,
    dtypes: Vec<DType>,
    shapes: Option<Vec<Vec<usize>>>,
    quick: bool,
    json: Option<String>,
    plot: Option<String>,
    runs: usize,
    warmup: Duration,
    flush_mb: u64,
    backends: Vec<Backend>,
    host: bool,
    lead_in: bool,
    retries: usize,
}

const HELP: &str = "cargo xtask compare-backends [--ops softmax,rms_norm,add_rms_norm,lora] [--dtypes f32,f16]
    [--shapes 4096x4096,1x4096x16x4096] [--quick] [--json FILE] [--plot FILE.svg] [--runs N]
    [--warmup-ms MS] [--flush-mb MB] [--backends wgsl,native] [--no-host] [--lead-in] [--retries N]
  --backends: the native kernels run when `native` is listed (the default); the fused WGSL
    kernels, the unfused baseline and the copy bound always run (every ratio's baseline).";

impl Opts {
    fn parse(args: &[String]) -> Res<Opts> {
        let mut o = Opts {
            ops: vec![OpName::Softmax, OpName::RmsNorm, OpName::AddRmsNorm, OpName::Lora],
            dtypes: vec![DType::F32, DType::F16],
            shapes: None,
            quick: false,
            json: None,
            plot: None,
            runs: 50,
            warmup: Duration::from_millis(200),
            flush_mb: 256,
            backends: vec![Backend::Wgsl, Backend::Native],
            host: true,
            lead_in: false,
            retries: 2,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or_else(|| format!("{a} needs a value\n{HELP}"));
            match a.as_str() {
                "--ops" => o.ops = val()?.split(',').map(OpName::parse).collect::<Res<_>>()?,
                "--dtypes" => {
                    o.dtypes = val()?
                        .split(',')
                        .map(|d| match d {
                            "f32" => Ok(DType::F32),
                            "f16" => Ok(DType::F16),
                            o => Err(format!("unknown dtype {o:?}")),
                        })
                        .collect::<Res<_>>()?
                }
                "--shapes" => {
                    o.shapes = Some(
                        val()?
                            .split(',')
                            .map(|s| s.split('x').map(|d| d.parse::<usize>().map_err(err)).collect::<Res<Vec<_>>>())
                            .collect::<Res<_>>()?,
                    )
                }
                "--quick" => o.quick = true,
                "--json" => o.json = Some(val()?),
                "--plot" => o.plot = Some(val()?),
                "--runs" => o.runs = val()?.parse().map_err(err)?,
                "--warmup-ms" => o.warmup = Duration::from_millis(val()?.parse().map_err(err)?),
                "--flush-mb" => o.flush_mb = val()?.parse().map_err(err)?,
                "--no-host" => o.host = false,
                "--lead-in" => o.lead_in = true,
                "--retries" => o.retries = val()?.parse().map_err(err)?,
                "--backends" => {
                    o.backends = val()?
                        .split(',')
                        .map(|b| match b {
                            "wgsl" => Ok(Backend::Wgsl),
                            "native" => Ok(Backend::Native),
                            o => Err(format!("unknown backend {o:?}")),
                        })
                        .collect::<Res<_>>()?
                }
                "-h" | "--help" => return Err(HELP.into()),
                other => return Err(format!("unknown option {other:?}\n{HELP}")),
            }
        }
        if o.quick {
            o.runs = o.runs.min(10);
            o.warmup = o.warmup.min(Duration::from_millis(200));
            o.flush_mb = o.flush_mb.min(16);
        }
        Ok(o)
    }

    fn shapes(&self, op: OpName) -> Vec<Vec<usize>> {
        if let Some(s) = &self.shapes {
            return s.iter().filter(|s| s.len() == op.arity()).cloned().collect();
        }
        match (op, self.quick) {
            (OpName::Lora, true) => vec![vec![64, 256, 8, 256], vec![1, 1024, 16, 1024]],
            (OpName::Lora, false) => vec![vec![512, 512, 8, 512], vec![1, 4096, 16, 4096], vec![4096, 4096, 16, 4096]],
            (_, true) => vec![vec![64, 1000], vec![256, 4096], vec![3, 50257]],
            (_, false) => vec![vec![128, 1024], vec![4096, 4096], vec![4096, 8192], vec![16384, 4096], vec![4096, 32000]],
        }
    }
}

/// One measured row of the report.
struct Row {
    op: &'static str,
    dtype: DType,
    shape: String,
    backend: String,
    variant: String,
    us: f64,
    bytes: u64,
    bound_us: Option<f64>,
    max_err: Option<f64>,
    speedup: Option<f64>,
    /// How many times the case was measured (more than once when its copy ran in a slow phase).
    attempts: usize,
}

impl Row {
    fn gbs(&self) -> f64 {
        gbs(self.bytes, self.us)
    }
    fn pct_bound(&self) -> Option<f64> {
        self.bound_us.map(|b| 100.0 * b / self.us)
    }
}

/// Inputs of one case, on the GPU and (as the GPU sees them) on the host.
struct Inputs {
    t: Vec<Tensor>,
    host: Vec<Vec<f64>>,
}

fn random_tensor(ctx: &Context, rng: &mut impl Rng, shape: &[usize], dtype: DType, scale: f64) -> Res<(Tensor, Vec<f64>)> {
    let len: usize = shape.iter().product();
    let v: Vec<f64> = (0..len).map(|_| rng.gen_range(-scale..scale)).collect();
    match dtype {
        DType::F32 => {
            let h: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            Ok((ctx.tensor(&h, shape).map_err(err)?, h.iter().map(|&x| x as f64).collect()))
        }
        DType::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f64(x)).collect();
            Ok((ctx.tensor(&h, shape).map_err(err)?, h.iter().map(|x| x.to_f64()).collect()))
        }
    }
}

fn make_inputs(ctx: &Context, op: OpName, s: &[usize], dtype: DType, seed: u64) -> Res<Inputs> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let shapes: Vec<(Vec<usize>, f64)> = match op {
        OpName::Softmax => vec![(s.to_vec(), 8.0)],
        OpName::RmsNorm => vec![(s.to_vec(), 4.0), (vec![s[1]], 2.0)],
        OpName::AddRmsNorm => vec![(s.to_vec(), 4.0), (s.to_vec(), 4.0), (vec![s[1]], 2.0)],
        OpName::Lora => {
            vec![(vec![s[0], s[1]], 1.0), (vec![s[1], s[2]], 1.0 / (s[1] as f64).sqrt()), (vec![s[2], s[3]], 1.0), (vec![s[0], s[3]], 1.0)]
        }
    };
    let mut t = Vec::new();
    let mut host = Vec::new();
    for (shape, scale) in shapes {
        let (a, b) = random_tensor(ctx, &mut rng, &shape, dtype, scale)?;
        t.push(a);
        host.push(b);
    }
    Ok(Inputs { t, host })
}

fn reference(op: OpName, s: &[usize], h: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let arr = |v: &Vec<f64>, shape: Vec<usize>| ArrayD::from_shape_vec(shape, v.clone()).expect("shape");
    let a2 = |v: &Vec<f64>, r: usize, c: usize| Array2::from_shape_vec((r, c), v.clone()).expect("shape");
    match op {
        OpName::Softmax => vec![wgfuse::reference::softmax(arr(&h[0], s.to_vec()).view()).into_raw_vec_and_offset().0],
        OpName::RmsNorm => vec![wgfuse::reference::rms_norm(arr(&h[0], s.to_vec()).view(), Some(&h[1]), 1e-5).into_raw_vec_and_offset().0],
        OpName::AddRmsNorm => {
            let (y, hh) = wgfuse::reference::add_rms_norm(arr(&h[0], s.to_vec()).view(), arr(&h[1], s.to_vec()).view(), Some(&h[2]), 1e-5);
            vec![y.into_raw_vec_and_offset().0, hh.into_raw_vec_and_offset().0]
        }
        OpName::Lora => {
            let base = a2(&h[3], s[0], s[3]);
            vec![
                wgfuse::reference::lora(
                    a2(&h[0], s[0], s[1]).view(),
                    a2(&h[1], s[1], s[2]).view(),
                    a2(&h[2], s[2], s[3]).view(),
                    0.5,
                    Some(base.view()),
                )
                .into_raw_vec_and_offset()
                .0,
            ]
        }
    }
}

/// Rows the reference is computed on: all of them for small tensors, else 256 spread evenly
/// (the CPU reference of a 4096x32000 softmax alone takes seconds).
fn sample_rows(rows: usize, elems: usize) -> Vec<usize> {
    if elems <= 1 << 22 || rows <= 256 {
        (0..rows).collect()
    } else {
        (0..256).map(|i| i * (rows - 1) / 255).collect()
    }
}

fn take_rows(v: &[f64], idx: &[usize], n: usize) -> Vec<f64> {
    idx.iter().flat_map(|&r| v[r * n..(r + 1) * n].iter().copied()).collect()
}

/// The op's inputs restricted to the sampled rows (weights and adapters whole), and the shape.
fn sampled(op: OpName, s: &[usize], h: &[Vec<f64>], idx: &[usize]) -> (Vec<usize>, Vec<Vec<f64>>) {
    let mut s2 = s.to_vec();
    s2[0] = idx.len();
    let h2 = match op {
        OpName::Softmax => vec![take_rows(&h[0], idx, s[1])],
        OpName::RmsNorm => vec![take_rows(&h[0], idx, s[1]), h[1].clone()],
        OpName::AddRmsNorm => vec![take_rows(&h[0], idx, s[1]), take_rows(&h[1], idx, s[1]), h[2].clone()],
        OpName::Lora => vec![take_rows(&h[0], idx, s[1]), h[1].clone(), h[2].clone(), take_rows(&h[3], idx, s[3])],
    };
    (s2, h2)
}

/// Largest |got - want| over every output, on the sampled rows (NaN counts as infinite).
fn max_err(got: &[Tensor], want: &[Vec<f64>], idx: &[usize]) -> Res<f64> {
    let mut m = 0.0f64;
    for (g, w) in got.iter().zip(want) {
        let n = g.last_dim();
        let g = take_rows(&g.to_vec_f32().map_err(err)?.into_iter().map(f64::from).collect::<Vec<_>>(), idx, n);
        for (a, b) in g.iter().zip(w) {
            let d = (a - b).abs();
            m = m.max(if d.is_nan() { f64::INFINITY } else { d });
        }
    }
    Ok(m)
}

/// A fused op with pre-made outputs, recordable into any pass.
struct Fused<'a> {
    op: OpName,
    ctx: &'a Context,
    inp: &'a Inputs,
    out: &'a [Tensor],
}

impl Fused<'_> {
    fn encode(&self, pass: &mut wgpu::ComputePass<'_>) -> wgfuse::Result<()> {
        let (t, o) = (&self.inp.t, &self.out);
        match self.op {
            OpName::Softmax => softmax::encode(self.ctx, pass, &softmax::Args { x: &t[0], y: &o[0], variant: None }),
            OpName::RmsNorm => rms_norm::encode(
                self.ctx,
                pass,
                &rms_norm::Args { x: &t[0], residual: None, weight: Some(&t[1]), y: &o[0], h: None, eps: 1e-5, variant: None },
            ),
            OpName::AddRmsNorm => rms_norm::encode(
                self.ctx,
                pass,
                &rms_norm::Args {
                    x: &t[0],
                    residual: Some(&t[1]),
                    weight: Some(&t[2]),
                    y: &o[0],
                    h: Some(&o[1]),
                    eps: 1e-5,
                    variant: None,
                },
            ),
            OpName::Lora => lora::encode(
                self.ctx,
                pass,
                &lora::Args {
                    x: &t[0],
                    a: &t[1],
                    b: &t[2],
                    base: Some(&t[3]),
                    y: &o[0],
                    scale: 0.5,
                    mode: lora::Mode::Base,
                    variant: None,
                },
            ),
        }
    }

    fn variant(&self) -> String {
        let t = &self.inp.t;
        match self.op {
            OpName::Lora => {
                let s = t[0].shape();
                let v = lora::variant_on(self.ctx, s[0], s[1], t[2].shape()[1], t[0].dtype());
                match self.ctx.backend() {
                    Backend::Native => format!("tile{} col-blocks{}", v.chunks, v.threads),
                    Backend::Wgsl => v.describe(),
                }
            }
            OpName::RmsNorm => rms_norm::variant_for(self.ctx, &t[0], false).describe(),
            OpName::AddRmsNorm => rms_norm::variant_for(self.ctx, &t[0], true).describe(),
            _ => softmax::variant_for(self.ctx, &t[0]).describe(),
        }
    }
}

fn fused_outputs(ctx: &Context, op: OpName, inp: &Inputs) -> Res<Vec<Tensor>> {
    let t = &inp.t;
    let out = match op {
        OpName::Softmax => vec![ctx.softmax(&t[0]).map_err(err)?],
        OpName::RmsNorm => vec![ctx.rms_norm(&t[0], Some(&t[1]), 1e-5).map_err(err)?],
        OpName::AddRmsNorm => {
            let (y, h) = ctx.add_rms_norm(&t[0], &t[1], Some(&t[2]), 1e-5).map_err(err)?;
            vec![y, h]
        }
        OpName::Lora => vec![ctx.lora(&t[0], &t[1], &t[2], 0.5, Some(&t[3])).map_err(err)?],
    };
    Ok(out)
}

fn unfused_plan(ctx: &Context, op: OpName, inp: &Inputs) -> wgfuse::Result<unfused::Unfused> {
    let t = &inp.t;
    match op {
        OpName::Softmax => unfused::softmax(ctx, &t[0]),
        OpName::RmsNorm => unfused::rms_norm(ctx, &t[0], Some(&t[1]), 1e-5),
        OpName::AddRmsNorm => unfused::add_rms_norm(ctx, &t[0], &t[1], Some(&t[2]), 1e-5),
        OpName::Lora => unfused::lora(ctx, &t[0], &t[1], &t[2], 0.5, Some(&t[3])),
    }
}

fn measure(timer: &mut Timer, o: &Opts, mut f: impl FnMut(&mut wgpu::ComputePass<'_>) -> wgfuse::Result<()>) -> Res<f64> {
    timer.warm_up(o.warmup, &mut f).map_err(err)?;
    Ok(median(&timer.time(o.runs, &mut f).map_err(err)?))
}

/// Source and destination of a copy of `bytes` (half read, half written): the bound for an op
/// moving `bytes`.
fn copy_tensors(ctx: &Context, bytes: u64) -> Res<(Tensor, Tensor)> {
    let n = (bytes / 2).div_ceil(4) as usize;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    Ok((random_tensor(ctx, &mut rng, &[n], DType::F32, 1.0)?.0, random_tensor(ctx, &mut rng, &[n], DType::F32, 1.0)?.0))
}

/// Times a copy of `bytes`.
fn copy_bound(ctx: &Context, timer: &mut Timer, o: &Opts, bytes: u64) -> Res<f64> {
    let (x, y) = copy_tensors(ctx, bytes)?;
    measure(timer, o, |pass| copy::encode(ctx, pass, &x, &y))
}

fn shape_str(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

pub fn run(args: &[String]) -> Res<()> {
    let o = Opts::parse(args)?;
    let base_opts = ContextOptions::default();
    let ctx = Context::with_options(base_opts.clone()).map_err(err)?;
    println!("{}", ctx.info());
    let native = if o.backends.contains(&Backend::Native) {
        match ctx.with_backend(Backend::Native) {
            Ok(c) => Some(c),
            Err(e) => {
                println!("native backend skipped: {e}");
                None
            }
        }
    } else {
        None
    };
    let mut timer = Timer::new(&ctx, o.flush_mb << 20).map_err(err)?;
    if o.quick {
        timer = timer.with_resume(Duration::ZERO);
    }
    if o.lead_in {
        timer = timer.with_lead_in().map_err(err)?;
        println!("timed runs start after an untimed lead-in dispatch (timestamps inside the pass): {}", timer.lead_in());
    }
    if timer.clock() == Clock::Wall {
        println!("no TIMESTAMP_QUERY: times are wall clock around submit + wait");
    }
    let mut cases = Vec::new();
    for &op in &o.ops {
        for &dtype in &o.dtypes {
            for s in o.shapes(op) {
                cases.push((op, dtype, s));
            }
        }
    }
    let bar = indicatif::ProgressBar::new(cases.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").map_err(err)?);
    // The headline bound: one copy over 1 GiB (64 MiB in quick mode).
    let big = if o.quick { 64u64 << 20 } else { 1u64 << 30 };
    bar.set_message("copy headline");
    let mut big_us = copy_bound(&ctx, &mut timer, &o, 2 * big)?;
    let mut results: Vec<Vec<Row>> = Vec::with_capacity(cases.len());
    // The GPU is shared: in a slow phase a copy runs at a fraction of its speed, and with it
    // every kernel timed interleaved with it. The ratios to the copy hold, the times do not.
    // A case whose copy runs under SLOW of the fastest copy so far (the headline's at first) is
    // timed again on the same inputs, keeping the attempt with the fastest copy.
    let mut fastest = gbs(2 * big, big_us);
    for (i, (op, dtype, s)) in cases.iter().enumerate() {
        bar.set_message(format!("{} {} {}", op.name(), dtype.name(), shape_str(s)));
        let case = Case::prepare(&ctx, native.as_ref(), i, *op, *dtype, s)?;
        if let Some(line) = case.cpu_note() {
            note(&bar, line);
        }
        let mut rows = case.time(&mut timer, &o)?;
        let mut attempts = 1;
        while attempts <= o.retries && big_copy_gbs(&rows).is_some_and(|g| g < SLOW * fastest) {
            let again = case.time(&mut timer, &o)?;
            let (old, new) = (copy_us(&rows), copy_us(&again));
            note(
                &bar,
                format!("{} {} {}: copy ran slow ({old:.1} µs), measured again: {new:.1} µs", op.name(), dtype.name(), shape_str(s)),
            );
            if new < old {
                rows = again;
            }
            attempts += 1;
        }
        for r in rows.iter_mut() {
            r.attempts = attempts;
        }
        fastest = big_copy_gbs(&rows).map_or(fastest, |g| fastest.max(g));
        results.push(rows);
        bar.inc(1);
    }
    for _ in 0..o.retries {
        if gbs(2 * big, big_us) >= SLOW * fastest {
            break;
        }
        note(&bar, format!("headline copy ran slow ({:.0} GB/s, a row's copy {fastest:.0}): measured again", gbs(2 * big, big_us)));
        big_us = big_us.min(copy_bound(&ctx, &mut timer, &o, 2 * big)?);
    }
    let rows: Vec<Row> = results.into_iter().flatten().collect();
    bar.finish_and_clear();

    let mut host_rows = Vec::new();
    if o.host {
        host_rows = host_path(&ctx, &mut timer, &o)?;
    }

    let table = render(&ctx, &rows, big, big_us, &host_rows);
    println!("{table}");
    if let Some(path) = &o.json {
        write_json(path, &ctx, &rows, big, big_us, &host_rows)?;
        println!("wrote {path}");
    }
    if let Some(path) = &o.plot {
        plot(path, &rows, big, big_us)?;
        println!("wrote {path}");
    }
    Ok(())
}

/// Prints a line above the progress bar (also when the bar is hidden: stdout not a terminal).
fn note(bar: &indicatif::ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}

/// A copy whose GB/s is under this fraction of the fastest in the run ran in a slow phase.
const SLOW: f64 = 0.6;

/// GB/s of `bytes` moved in `us` microseconds.
fn gbs(bytes: u64, us: f64) -> f64 {
    bytes as f64 / (us * 1e3)
}

/// The time of a case's copy (its bound).
fn copy_us(rows: &[Row]) -> f64 {
    rows.iter().find(|r| r.backend == "copy").map_or(f64::INFINITY, |r| r.us)
}

/// GB/s of a case's copy when it moves ≥ 16 MiB (smaller copies are bound by fixed costs).
fn big_copy_gbs(rows: &[Row]) -> Option<f64> {
    rows.iter().find(|r| r.backend == "copy" && r.bytes >= 16 << 20).map(|r| r.gbs())
}

/// One case, made once: its inputs (for each backend's Context), the errors of every
/// candidate against the f64 reference on sampled rows, the copy of the same bytes and the
/// unfused plan. [`Case::time`] times them, as often as a slow phase needs.
struct Case<'a> {
    ctx: &'a Context,
    op: OpName,
    dtype: DType,
    shape: String,
    bytes: u64,
    /// The reference's time, and what it computed (every row, or a sample).
    cpu: (f64, String, bool),
    inp: Inputs,
    copy: (Tensor, Tensor),
    plan: Option<unfused::Unfused>,
    /// Per fused backend: name, Context, its own inputs (None: `inp`), outputs.
    fused: Vec<(&'static str, &'a Context, Option<Inputs>, Vec<Tensor>)>,
    /// Max errors: the unfused plan's first (when there is one), then each fused backend's.
    errors: Vec<f64>,
}

impl<'a> Case<'a> {
    fn prepare(ctx: &'a Context, native: Option<&'a Context>, i: usize, op: OpName, dtype: DType, s: &[usize]) -> Res<Case<'a>> {
        let inp = make_inputs(ctx, op, s, dtype, 1000 + i as u64)?;
        let idx = sample_rows(s[0], inp.host[0].len());
        let (s_ref, h_ref) = sampled(op, s, &inp.host, &idx);
        let t0 = Instant::now();
        let want = reference(op, &s_ref, &h_ref);
        let cpu_us = t0.elapsed().as_secs_f64() * 1e6;
        let every_row = idx.len() == s[0];
        let cpu_what = if every_row { "f64 reference".to_string() } else { format!("f64 reference, {} of {} rows", idx.len(), s[0]) };
        let bytes = wgfuse::kernels::bytes_moved(op.op(), s, dtype);
        let copy = copy_tensors(ctx, bytes)?;
        let plan = if dtype == DType::F32 { Some(unfused_plan(ctx, op, &inp).map_err(err)?) } else { None };
        let mut errors = Vec::new();
        if let Some(p) = &plan {
            p.record(ctx).map_err(err)?;
            errors.push(max_err(p.outputs(), &want, &idx)?);
        }
        let mut fused = Vec::new();
        for (name, c) in [("wgsl", Some(ctx)), ("native", native)] {
            let Some(c) = c else { continue };
            let own = if std::ptr::eq(c, ctx) { None } else { Some(make_inputs(c, op, s, dtype, 1000 + i as u64)?) };
            let out = fused_outputs(c, op, own.as_ref().unwrap_or(&inp))?;
            errors.push(max_err(&out, &want, &idx)?);
            fused.push((name, c, own, out));
        }
        Ok(Case { ctx, op, dtype, shape: shape_str(s), bytes, cpu: (cpu_us, cpu_what, every_row), inp, copy, plan, fused, errors })
    }

    /// The reference's time when it ran on a sample of rows (not comparable, so not a row).
    fn cpu_note(&self) -> Option<String> {
        let (us, what, every_row) = &self.cpu;
        (!every_row).then(|| format!("{} {} {}: {what} took {us:.0} µs", self.op.name(), self.dtype.name(), self.shape))
    }

    /// The copy of the same bytes, the unfused baseline and each fused backend, timed
    /// interleaved (they share clocks and neighbours, so their ratios are trustworthy).
    fn time(&self, timer: &mut Timer, o: &Opts) -> Res<Vec<Row>> {
        let ctx = self.ctx;
        let runners: Vec<Fused<'_>> =
            self.fused.iter().map(|(_, c, own, out)| Fused { op: self.op, ctx: c, inp: own.as_ref().unwrap_or(&self.inp), out }).collect();
        let (cx, cy) = &self.copy;
        let mut copy_f = |pass: &mut wgpu::ComputePass<'_>| copy::encode(ctx, pass, cx, cy);
        let mut unfused_f = |pass: &mut wgpu::ComputePass<'_>| match &self.plan {
            Some(p) => p.encode(ctx, pass),
            None => Ok(()),
        };
        let mut fused_fs: Vec<Box<Recorder<'_>>> =
            runners.iter().map(|f| Box::new(move |pass: &mut wgpu::ComputePass<'_>| f.encode(pass)) as Box<_>).collect();
        let mut fs: Vec<&mut Recorder<'_>> = vec![&mut copy_f];
        if self.plan.is_some() {
            fs.push(&mut unfused_f);
        }
        for f in fused_fs.iter_mut() {
            fs.push(f.as_mut());
        }
        timer
            .warm_up(o.warmup, |pass| {
                for f in fs.iter_mut() {
                    f(pass)?;
                }
                Ok(())
            })
            .map_err(err)?;
        let times = timer.time_interleaved(o.runs, &mut fs).map_err(err)?;
        let med: Vec<f64> = times.iter().map(|t| median(t)).collect();
        let bound = med[0];
        let mk = |backend: &str, variant: String, us: f64, bound_us: Option<f64>, max_err: Option<f64>| Row {
            op: self.op.name(),
            dtype: self.dtype,
            shape: self.shape.clone(),
            backend: backend.to_string(),
            variant,
            us,
            bytes: self.bytes,
            bound_us,
            max_err,
            speedup: None,
            attempts: 1,
        };
        let mut rows = vec![mk("copy", "bound".into(), bound, Some(bound), None)];
        let mut unfused_us = None;
        if let Some(p) = &self.plan {
            rows.push(mk("unfused", format!("{} dispatches", p.dispatches()), med[1], Some(bound), Some(self.errors[0])));
            unfused_us = Some(med[1]);
        }
        let first = usize::from(self.plan.is_some());
        for (j, ((name, ..), f)) in self.fused.iter().zip(&runners).enumerate() {
            let us = med[1 + first + j];
            let mut r = mk(name, f.variant(), us, Some(bound), Some(self.errors[first + j]));
            r.speedup = unfused_us.map(|u| u / us);
            rows.push(r);
        }
        let (cpu_us, what, every_row) = &self.cpu;
        if *every_row {
            rows.push(mk("cpu", what.clone(), *cpu_us, None, Some(0.0)));
        }
        Ok(rows)
    }
}

/// The small-op and host-path numbers: GPU time per chained softmax 128x1024, and the wall
/// time of a loop of `ctx.softmax` calls with one sync at the end.
fn host_path(ctx: &Context, timer: &mut Timer, o: &Opts) -> Res<Vec<(String, f64)>> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(99);
    let (x, _) = random_tensor(ctx, &mut rng, &[128, 1024], DType::F32, 8.0)?;
    let y = ctx.softmax(&x).map_err(err)?;
    let chain = 100;
    let per_run = measure(timer, o, |pass| {
        for _ in 0..chain {
            softmax::encode(ctx, pass, &softmax::Args { x: &x, y: &y, variant: None })?;
        }
        Ok(())
    })?;
    let mut out = vec![(format!("softmax 128x1024 f32, {chain} chained in one pass: GPU µs per op"), per_run / chain as f64)];
    let loops = 1000;
    // Warm the pool, caches and clocks with the same loop first.
    let t0 = Instant::now();
    while t0.elapsed() < o.warmup {
        for _ in 0..loops {
            drop(ctx.softmax(&x).map_err(err)?);
        }
        ctx.sync().map_err(err)?;
    }
    let mut walls = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..loops {
            drop(ctx.softmax(&x).map_err(err)?);
        }
        ctx.sync().map_err(err)?;
        walls.push(t.elapsed().as_secs_f64() * 1e6 / loops as f64);
    }
    out.push((format!("loop of {loops} ctx.softmax(128x1024 f32) + one sync: wall µs per op (median of 5)"), median(&walls)));
    Ok(out)
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "—".into())
}

fn render(ctx: &Context, rows: &[Row], big: u64, big_us: f64, host: &[(String, f64)]) -> String {
    let mut s = String::new();
    let a = &ctx.info().adapter;
    let _ = writeln!(s, "device: {} ({:?}, driver {} {})", a.name, a.backend, a.driver, a.driver_info);
    let _ = writeln!(s, "headline copy: {} MiB read + written in {:.1} µs = {:.0} GB/s\n", big >> 20, big_us, gbs(2 * big, big_us));
    let again: Vec<String> = rows
        .iter()
        .filter(|r| r.backend == "copy" && r.attempts > 1)
        .map(|r| format!("{} {} {} ({})", r.op, r.dtype.name(), r.shape, r.attempts))
        .collect();
    if !again.is_empty() {
        let _ = writeln!(s, "measured again after a copy ran in a slow phase (attempts; the fastest copy's kept): {}\n", again.join(", "));
    }
    let _ = writeln!(
        s,
        "| op | dtype | shape | backend | variant | GPU µs | GB/s | % of copy | max err | vs unfused |\n|---|---|---|---|---|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {} | {} | {} |",
            r.op,
            r.dtype.name(),
            r.shape,
            r.backend,
            r.variant,
            r.us,
            r.gbs(),
            fmt_opt(r.pct_bound(), |p| format!("{p:.1}%")),
            fmt_opt(r.max_err, |e| format!("{e:.1e}")),
            fmt_opt(r.speedup, |x| format!("{x:.2}×")),
        );
    }
    for (what, v) in host {
        let _ = writeln!(s, "\n{what}: {v:.2}");
    }
    s
}

fn write_json(path: &str, ctx: &Context, rows: &[Row], big: u64, big_us: f64, host: &[(String, f64)]) -> Res<()> {
    let a = &ctx.info().adapter;
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "op": r.op, "dtype": r.dtype.name(), "shape": r.shape, "backend": r.backend,
                "variant": r.variant, "gpu_us": r.us, "bytes": r.bytes, "gbs": r.gbs(),
                "pct_of_copy": r.pct_bound(), "max_err": r.max_err, "speedup_vs_unfused": r.speedup,
                "attempts": r.attempts,
            })
        })
        .collect();
    let v = serde_json::json!({
        "device": a.name, "backend": format!("{:?}", a.backend), "driver": a.driver, "driver_info": a.driver_info,
        "headline_copy": { "bytes": 2 * big, "gpu_us": big_us, "gbs": gbs(2 * big, big_us) },
        "rows": items,
        "host": host.iter().map(|(k, v)| serde_json::json!({ "what": k, "value": v })).collect::<Vec<_>>(),
    });
    std::fs::write(path, serde_json::to_string_pretty(&v).map_err(err)?).map_err(err)
}

/// GB/s against bytes moved, one series per (op, dtype, backend), with the copy line.
fn plot(path: &str, rows: &[Row], big: u64, big_us: f64) -> Res<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1100, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let xmin = rows.iter().map(|r| r.bytes as f64).fold(f64::INFINITY, f64::min).max(1.0) / 1.5;
    let xmax = rows.iter().map(|r| r.bytes as f64).fold(2.0 * big as f64, f64::max) * 1.5;
    let gpu: Vec<&Row> = rows.iter().filter(|r| r.backend != "cpu").collect();
    let ymax = gpu.iter().map(|r| r.gbs()).fold(gbs(2 * big, big_us), f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption("wgfuse: GB/s vs bytes moved (copy = bound)", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((xmin..xmax).log_scale(), 0.0..ymax)
        .map_err(err)?;
    chart.configure_mesh().x_desc("bytes moved").y_desc("GB/s").draw().map_err(err)?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in &gpu {
        let name = if r.backend == "copy" { "copy (bound)".to_string() } else { format!("{} {} {}", r.op, r.dtype.name(), r.backend) };
        let point = (r.bytes as f64, r.gbs());
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(point),
            None => series.push((name, vec![point])),
        }
    }
    series.iter_mut().for_each(|(_, v)| v.sort_by(|a, b| a.0.total_cmp(&b.0)));
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let style = if name.starts_with("copy") { ShapeStyle::from(&BLACK).stroke_width(3) } else { color.stroke_width(2) };
        chart
            .draw_series(LineSeries::new(pts.clone(), style))
            .map_err(err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, style.filled()))).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
