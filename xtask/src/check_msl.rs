//! `cargo xtask check-msl`: the MSL kernels without a Mac. Compiles every `.metal` file with
//! clang++ against our Metal-stdlib shim (`xtask/msl-shim/metal_stdlib`) and runs each kernel
//! on the CPU (`xtask/msl-shim/launcher.cpp`: threadgroups one at a time, their threads
//! concurrently with real barriers, simdgroups of 32), on the cases of the WGSL and SPIR-V
//! tests, against the same f64 references and tolerances, with outputs poisoned (NaN) first.
//! The immediates and grids are the ones the native backend computes (a 2-D grid whose first
//! dimension is capped at 4, so the group index over two dimensions is exercised too).
//!
//! This verifies the kernels' logic, indexing and synchronisation, not Apple's compiler: the
//! MSL is not compiled or run on Apple hardware here.

use std::path::{Path, PathBuf};
use std::process::Command;

use half::f16;
use ndarray::{Array2, ArrayD};
use rand::{Rng, SeedableRng};
use wgfuse::kernels::{lora, native_row_forms, native_row_launch, native_row_variant, Kind, Op, PipelineKey, Variant};
use wgfuse::Backend;
use wgfuse::DType;

const SIMD: u32 = 32;
const MAX_GRID_X: u32 = 4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The source the emulator compiles: every `.metal` file, kernel-scope `threadgroup`
/// declarations made function statics (one threadgroup runs at a time).
fn emulated_source() -> Result<String, String> {
    let mut src = String::new();
    for f in ["rows.h.metal", "softmax.metal", "rms_norm.metal", "lora.metal"] {
        let text = std::fs::read_to_string(root().join("shaders/msl").join(f)).map_err(|e| format!("{f}: {e}"))?;
        for line in text.lines() {
            let indent = line.len() - line.trim_start().len();
            if line.trim_start().starts_with("threadgroup ") {
                src.push_str(&format!("{}static {}\n", &line[..indent], &line.trim_start()["threadgroup ".len()..]));
            } else {
                src.push_str(line);
                src.push('\n');
            }
        }
    }
    Ok(src)
}

fn build(dir: &Path) -> Result<PathBuf, String> {
    std::fs::write(dir.join("kernels.inc"), emulated_source()?).map_err(|e| e.to_string())?;
    std::fs::copy(root().join("xtask/msl-shim/metal_stdlib"), dir.join("metal_stdlib")).map_err(|e| e.to_string())?;
    let exe = dir.join("msl-emulator");
    let out = Command::new("clang++")
        .args(["-std=c++20", "-O2", "-pthread", "-fno-strict-aliasing", "-Wall", "-Wno-unknown-attributes", "-Werror", "-I"])
        .arg(dir)
        .arg(root().join("xtask/msl-shim/launcher.cpp"))
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| format!("running clang++ ({e}); install it: apt-get install clang"))?;
    if !out.status.success() {
        return Err(format!("clang++ failed:\n{}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(exe)
}

/// One host buffer as the GPU holds it: f32 or f16 bytes, padded to whole 4-element chunks.
fn bytes(v: &[f64], dtype: DType) -> Vec<u8> {
    let padded = v.len().div_ceil(4) * 4;
    let mut out = Vec::with_capacity(padded * dtype.size());
    for i in 0..padded {
        let x = v.get(i).copied().unwrap_or(0.0);
        match dtype {
            DType::F32 => out.extend_from_slice(&(x as f32).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&f16::from_f64(x).to_le_bytes()),
        }
    }
    out
}

fn values(b: &[u8], len: usize, dtype: DType) -> Vec<f64> {
    (0..len)
        .map(|i| match dtype {
            DType::F32 => f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as f64,
            DType::F16 => f16::from_le_bytes([b[2 * i], b[2 * i + 1]]).to_f64(),
        })
        .collect()
}

fn rounded(v: &[f64], dtype: DType) -> Vec<f64> {
    values(&bytes(v, dtype), v.len(), dtype)
}

fn poison(len: usize, dtype: DType) -> Vec<u8> {
    bytes(&vec![f64::NAN; len], dtype)
}

struct Emulator {
    exe: PathBuf,
    dir: PathBuf,
    jobs: usize,
}

impl Emulator {
    /// Runs `name` over `groups` threadgroups of `threads`; returns the buffers afterwards.
    fn run(&mut self, name: &str, threads: u32, groups: u64, params: [u32; 8], bufs: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, String> {
        let gx = (groups as u32).clamp(1, MAX_GRID_X);
        let gy = (groups as u32).div_ceil(gx).max(1);
        let mut job = Vec::new();
        job.extend_from_slice(&(name.len() as u32).to_le_bytes());
        job.extend_from_slice(name.as_bytes());
        for v in [threads, gx, gy].iter().chain(params.iter()) {
            job.extend_from_slice(&v.to_le_bytes());
        }
        job.extend_from_slice(&(bufs.len() as u32).to_le_bytes());
        for b in &bufs {
            job.extend_from_slice(&(b.len() as u64).to_le_bytes());
            job.extend_from_slice(b);
        }
        let (jp, op) = (self.dir.join("job.bin"), self.dir.join("out.bin"));
        std::fs::write(&jp, job).map_err(|e| e.to_string())?;
        let out = Command::new(&self.exe).arg(&jp).arg(&op).output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("emulator failed on {name}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        self.jobs += 1;
        let data = std::fs::read(&op).map_err(|e| e.to_string())?;
        let n = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let mut at = 4;
        let mut res = Vec::with_capacity(n);
        for _ in 0..n {
            let len = u64::from_le_bytes(data[at..at + 8].try_into().map_err(|_| "short output")?) as usize;
            res.push(data[at + 8..at + 8 + len].to_vec());
            at += 8 + len;
        }
        Ok(res)
    }
}

fn close(got: &[f64], want: &[f64], atol: f64, rtol: f64, what: &str) -> Result<(), String> {
    let mut bad = 0;
    let mut worst = None;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let ok = if g.is_nan() || w.is_nan() {
            g.is_nan() && w.is_nan()
        } else if g.is_infinite() || w.is_infinite() {
            g == w
        } else {
            (g - w).abs() <= atol + rtol * w.abs()
        };
        if !ok {
            bad += 1;
            worst.get_or_insert((i, g, w));
        }
    }
    match worst {
        None if got.len() == want.len() => Ok(()),
        None => Err(format!("{what}: length {} vs {}", got.len(), want.len())),
        Some((i, g, w)) => Err(format!("{what}: {bad} of {} off (atol {atol}, rtol {rtol}); first at {i}: got {g}, want {w}", got.len())),
    }
}

/// The native kernel (MSL entry point) that runs `op` in form `v`.
fn kernel(op: Op, v: &Variant, dtype: DType) -> String {
    PipelineKey::new(op, *v, dtype, Backend::Native).entry_point()
}

/// Every native row form that holds rows of `n`, the one the backend picks first.
fn forms(rows: usize, n: usize) -> Vec<Variant> {
    let mut all = vec![native_row_variant(rows, n, SIMD, 1024)];
    for v in native_row_forms(n, SIMD, 1024) {
        if !all.contains(&v) {
            all.push(v);
        }
    }
    all
}

/// The native backend's immediates and workgroups for simdgroups of 32, with eps and weight.
fn row_params(rows: usize, n: usize, v: &Variant, eps: f32, weight: bool) -> ([u32; 8], u64) {
    let (mut params, groups) = native_row_launch(rows, n, v, SIMD);
    params[2] = eps.to_bits();
    params[5] = u32::from(weight);
    (params, groups)
}

fn row_case(emu: &mut Emulator, rows: usize, n: usize, dtype: DType, x: &[f64], what: &str) -> Result<(), String> {
    let mut g = rand::rngs::StdRng::seed_from_u64((rows * 7919 + n) as u64);
    let x = rounded(x, dtype);
    let r = rounded(&(0..rows * n).map(|_| g.gen_range(-4.0..4.0)).collect::<Vec<f64>>(), dtype);
    let w = rounded(&(0..n).map(|_| g.gen_range(-2.0..2.0)).collect::<Vec<f64>>(), dtype);
    let shape = vec![rows, n];
    let arr = |v: &[f64]| ArrayD::from_shape_vec(shape.clone(), v.to_vec()).map_err(|e| e.to_string());
    let want_sm = wgfuse::reference::softmax(arr(&x)?.view());
    let want_rms = wgfuse::reference::rms_norm(arr(&x)?.view(), Some(&w), 1e-5);
    let h = rounded(&x.iter().zip(&r).map(|(a, b)| a + b).collect::<Vec<_>>(), dtype);
    let want_add = wgfuse::reference::rms_norm(arr(&h)?.view(), None, 1e-5);
    let (atol, rtol) = if dtype == DType::F32 { (1e-6, 1e-4) } else { (2e-3, 1e-2) };
    let (ratol, rrtol) = if dtype == DType::F32 { (1e-5, 1e-4) } else { (4e-3, 1e-2) };
    let len = rows * n;
    for v in forms(rows, n) {
        let threads = v.wg;
        let (p, groups) = row_params(rows, n, &v, 0.0, false);
        let out = emu.run(&kernel(Op::Softmax, &v, dtype), threads, groups, p, vec![bytes(&x, dtype), poison(len, dtype)])?;
        close(&values(&out[1], len, dtype), want_sm.as_slice().unwrap_or(&[]), atol, rtol, &format!("softmax {what} {v:?}"))?;

        let (p, groups) = row_params(rows, n, &v, 1e-5, true);
        let out =
            emu.run(&kernel(Op::RmsNorm, &v, dtype), threads, groups, p, vec![bytes(&x, dtype), bytes(&w, dtype), poison(len, dtype)])?;
        close(&values(&out[2], len, dtype), want_rms.as_slice().unwrap_or(&[]), ratol, rrtol, &format!("rms_norm {what} {v:?}"))?;

        let (p, groups) = row_params(rows, n, &v, 1e-5, false);
        let bufs = vec![bytes(&x, dtype), bytes(&x, dtype), bytes(&r, dtype), poison(len, dtype), poison(len, dtype)];
        let out = emu.run(&kernel(Op::AddRmsNorm, &v, dtype), threads, groups, p, bufs)?;
        close(&values(&out[4], len, dtype), &h, 0.0, 1e-6, &format!("add_rms_norm h {what} {v:?}"))?;
        close(&values(&out[3], len, dtype), want_add.as_slice().unwrap_or(&[]), ratol, rrtol, &format!("add_rms_norm y {what} {v:?}"))?;
    }
    Ok(())
}

/// The persistent f16 softmax kernels over `rows` rows of `n` (a multiple of 4) with `groups`
/// threadgroups, fewer than the rows so that each walks several.
fn persist_case(emu: &mut Emulator, rows: usize, n: usize, groups: u64) -> Result<(), String> {
    let mut g = rand::rngs::StdRng::seed_from_u64((rows * 31 + n) as u64);
    let x = rounded(&(0..rows * n).map(|_| g.gen_range(-8.0..8.0)).collect::<Vec<f64>>(), DType::F16);
    let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![rows, n], x.clone()).map_err(|e| e.to_string())?.view());
    for k in [4u32, 8] {
        let v = Variant { kind: Kind::Persist, wg: 1024, threads: 1024, chunks: k, mode: 0 };
        let (params, _) = native_row_launch(rows, n, &v, SIMD);
        let out =
            emu.run(&kernel(Op::Softmax, &v, DType::F16), 1024, groups, params, vec![bytes(&x, DType::F16), poison(rows * n, DType::F16)])?;
        close(
            &values(&out[1], rows * n, DType::F16),
            want.as_slice().unwrap_or(&[]),
            2e-3,
            1e-2,
            &format!("softmax persist k{k} {rows}x{n}"),
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn lora_case(emu: &mut Emulator, rows: usize, k_in: usize, rank: usize, out: usize, dtype: DType, mode: u32) -> Result<(), String> {
    let mut g = rand::rngs::StdRng::seed_from_u64((rows * 31 + k_in * 7 + rank * 3 + out) as u64 + mode as u64);
    let mut rand = |n: usize, s: f64| rounded(&(0..n).map(|_| g.gen_range(-s..s)).collect::<Vec<f64>>(), dtype);
    let merge = mode == 3;
    let m = if merge { k_in } else { rows };
    let x = rand(m * k_in, 1.0);
    let a = rand(k_in * rank, if merge { 1.0 } else { 1.0 / (k_in as f64).sqrt() });
    let b = rand(rank * out, 1.0);
    let base = rand(m * out, 2.0);
    let scale = 0.75f32;
    let mat = |v: &[f64], r: usize, c: usize| Array2::from_shape_vec((r, c), v.to_vec()).map_err(|e| e.to_string());
    let want = if merge {
        wgfuse::reference::lora_merge(mat(&base, m, out)?.view(), mat(&a, k_in, rank)?.view(), mat(&b, rank, out)?.view(), scale as f64)
    } else {
        let base_m = mat(&base, m, out)?;
        let with_base = (mode == 1 || mode == 2).then(|| base_m.view());
        wgfuse::reference::lora(mat(&x, m, k_in)?.view(), mat(&a, k_in, rank)?.view(), mat(&b, rank, out)?.view(), scale as f64, with_base)
    };
    // The rule's pick, the tiled kernel, and for small cases every skinny kernel.
    let mut forms = vec![lora::native_variant(m, k_in, out), Variant { kind: Kind::Plain, wg: 256, threads: 3, chunks: 4, mode: 0 }];
    if m * out <= 40 * 260 {
        forms.extend(
            [1, 2, 4].into_iter().flat_map(|tm| [256, 1024].map(|wg| Variant { kind: Kind::Skinny, wg, threads: 3, chunks: tm, mode: 0 })),
        );
    }
    let n = if merge { rank } else { k_in * rank };
    let (atol, rtol) = match dtype {
        DType::F32 => (1e-6 * (n as f64).sqrt(), 1e-5),
        DType::F16 => (2e-3 + 1e-6 * (n as f64).sqrt(), 2e-3),
    };
    for v in forms {
        let v = Variant { mode, ..v };
        let (params, groups) = lora::native_launch([m, k_in, rank, out], scale, &v);
        let y0 = if mode == 2 { bytes(&base, dtype) } else { poison(m * out, dtype) };
        let x_buf = if merge { bytes(&a, dtype) } else { bytes(&x, dtype) };
        let base_buf = if mode == 1 || merge { bytes(&base, dtype) } else { x_buf.clone() };
        let name = kernel(Op::Lora, &v, dtype);
        let res = emu.run(&name, v.wg, groups, params, vec![x_buf, bytes(&a, dtype), bytes(&b, dtype), base_buf, y0])?;
        let what = format!("lora {name} mode {mode} rows {m} in {k_in} r {rank} out {out} (tile {}, {} blocks)", v.chunks, v.threads);
        close(&values(&res[4], m * out, dtype), want.as_slice().unwrap_or(&[]), atol, rtol, &what)?;
    }
    Ok(())
}

pub fn run(_args: &[String]) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("wgfuse-msl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = build(&dir)?;
    let mut emu = Emulator { exe, dir: dir.clone(), jobs: 0 };
    let started = std::time::Instant::now();
    let mut g = rand::rngs::StdRng::seed_from_u64(std::env::var("WGFUSE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(7));
    for dtype in [DType::F32, DType::F16] {
        for n in [1usize, 3, 31, 33, 255, 257, 1023, 1025, 4097, 50257] {
            let rows = if n > 4096 { 3 } else { 7 };
            let x: Vec<f64> = (0..rows * n).map(|_| g.gen_range(-8.0..8.0)).collect();
            row_case(&mut emu, rows, n, dtype, &x, &format!("{dtype:?} {rows}x{n}"))?;
        }
        // Rows past one threadgroup's worth of rows per simdgroup, and awkward counts.
        let x: Vec<f64> = (0..70 * 20).map(|_| g.gen_range(-8.0..8.0)).collect();
        row_case(&mut emu, 70, 20, dtype, &x, &format!("{dtype:?} 70x20"))?;
        // torch semantics of special values (as tests/softmax.rs).
        let inf = f64::INFINITY;
        let special = [
            [1e30, -1e30, 0.0, 1e30, 5.0],
            [-inf, 1.0, 2.0, -inf, 0.0],
            [-inf, -inf, -inf, -inf, -inf],
            [inf, 1.0, 2.0, 3.0, 4.0],
            [f64::NAN, 1.0, 2.0, 3.0, 4.0],
            [-3e4, -2e4, 6e4, 6e4, 0.0],
        ]
        .concat();
        let x = rounded(&special, dtype);
        let want = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![6, 5], x.clone()).map_err(|e| e.to_string())?.view());
        for v in forms(6, 5) {
            let (p, groups) = row_params(6, 5, &v, 0.0, false);
            let out = emu.run(&kernel(Op::Softmax, &v, dtype), v.wg, groups, p, vec![bytes(&x, dtype), poison(30, dtype)])?;
            let (atol, rtol) = if dtype == DType::F32 { (1e-6, 1e-4) } else { (2e-3, 1e-2) };
            close(&values(&out[1], 30, dtype), want.as_slice().unwrap_or(&[]), atol, rtol, &format!("softmax extremes {dtype:?} {v:?}"))?;
        }
        if dtype == DType::F16 {
            persist_case(&mut emu, 7, 4100, 3)?;
            persist_case(&mut emu, 2, 8, 5)?;
        }
        for (rows, k_in, rank, out) in
            [(1, 1, 1, 1), (1, 4096, 16, 4096), (3, 33, 3, 17), (5, 1023, 8, 1025), (37, 512, 128, 255), (130, 257, 7, 513), (6, 64, 8, 36)]
        {
            for mode in 0..4 {
                lora_case(&mut emu, rows, k_in, rank, out, dtype, mode)?;
            }
        }
        println!("{dtype:?}: ok ({} kernel runs so far, {:.1} s)", emu.jobs, started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("MSL kernels match the references on the CPU emulation ({} runs)", emu.jobs);
    Ok(())
}
