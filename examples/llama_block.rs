//! A Llama-style chain on the GPU: residual add + RMSNorm, LoRA-adapted q and k projections,
//! attention scores and their softmax; every stage checked against the f64 references, and
//! the whole chain timed.
//!
//! The base projections and the score product use `kernels::unfused::matmul` (wgfuse fuses
//! the ops around GEMMs; an engine brings its own GEMM). k is transposed on the host, since
//! wgfuse has no transpose op.

use std::time::Instant;

use ndarray::{Array2, ArrayD};
use wgfuse::kernels::unfused::matmul;
use wgfuse::{Context, Tensor};

fn rand(seed: &mut u64, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn up(ctx: &Context, v: &[f64], shape: &[usize]) -> wgfuse::Result<Tensor> {
    ctx.tensor(&v.iter().map(|&x| x as f32).collect::<Vec<_>>(), shape)
}

fn a2(v: &[f64], r: usize, c: usize) -> Array2<f64> {
    Array2::from_shape_vec((r, c), v.to_vec()).expect("shape")
}

fn check(what: &str, got: &Tensor, want: &[f64], tol: f64) -> wgfuse::Result<()> {
    let g = got.to_vec::<f32>()?;
    let err = g.iter().zip(want).map(|(a, b)| ((*a as f64) - b).abs() / (1.0 + b.abs())).fold(0.0, f64::max);
    println!("{what:<28} max rel error {err:.1e}");
    assert!(err < tol, "{what}: {err}");
    Ok(())
}

fn main() -> wgfuse::Result<()> {
    let ctx = Context::new()?;
    println!("{}\n", ctx.info());
    let (seq, d, rank) = (128usize, 512usize, 16usize);
    let scale = 2.0f32;
    let mut s = 0x9E3779B97F4A7C15u64;
    let x = rand(&mut s, seq * d, 1.0);
    let res = rand(&mut s, seq * d, 1.0);
    let wn = rand(&mut s, d, 1.0);
    // Projections scaled by 1/sqrt(d) for q, so that q·kᵀ is already the attention logit.
    let wq: Vec<f64> = rand(&mut s, d * d, 1.0 / (d as f64).sqrt()).iter().map(|v| v / (d as f64).sqrt()).collect();
    let wk = rand(&mut s, d * d, 1.0 / (d as f64).sqrt());
    let (aq, bq) = (rand(&mut s, d * rank, 0.05), rand(&mut s, rank * d, 0.05));
    let (ak, bk) = (rand(&mut s, d * rank, 0.05), rand(&mut s, rank * d, 0.05));

    let gx = up(&ctx, &x, &[seq, d])?;
    let gres = up(&ctx, &res, &[seq, d])?;
    let gwn = up(&ctx, &wn, &[d])?;
    let (gwq, gwk) = (up(&ctx, &wq, &[d, d])?, up(&ctx, &wk, &[d, d])?);
    let (gaq, gbq, gak, gbk) =
        (up(&ctx, &aq, &[d, rank])?, up(&ctx, &bq, &[rank, d])?, up(&ctx, &ak, &[d, rank])?, up(&ctx, &bk, &[rank, d])?);

    let t0 = Instant::now();
    let (y, h) = ctx.add_rms_norm(&gx, &gres, Some(&gwn), 1e-5)?;
    let mut q = matmul(&ctx, &y, &gwq)?;
    ctx.lora_add_(&mut q, &y, &gaq, &gbq, scale)?;
    let mut k = matmul(&ctx, &y, &gwk)?;
    ctx.lora_add_(&mut k, &y, &gak, &gbk, scale)?;
    let kh = k.to_vec::<f32>()?; // submits the chain so far
    let kt: Vec<f32> = (0..d * seq).map(|i| kh[(i % seq) * d + i / seq]).collect();
    let gkt = ctx.tensor(&kt, &[d, seq])?;
    let scores = matmul(&ctx, &q, &gkt)?;
    let p = ctx.softmax(&scores)?;
    ctx.sync()?;
    println!("chain (add_rms_norm, 2 × (matmul + lora_add_), scores, softmax): {:.2} ms wall\n", t0.elapsed().as_secs_f64() * 1e3);

    // References.
    let xa = ArrayD::from_shape_vec(vec![seq, d], x).expect("shape");
    let ra = ArrayD::from_shape_vec(vec![seq, d], res).expect("shape");
    let (ry, rh) = wgfuse::reference::add_rms_norm(xa.view(), ra.view(), Some(&wn), 1e-5);
    check("h = x + residual", &h, rh.as_slice().expect("contiguous"), 1e-6)?;
    check("y = rms_norm(h)", &y, ry.as_slice().expect("contiguous"), 1e-5)?;
    // The reference chain starts from the GPU's y (f32), so each check measures its own stage.
    let yv: Vec<f64> = y.to_vec::<f32>()?.into_iter().map(f64::from).collect();
    let ya = a2(&yv, seq, d);
    let rq = wgfuse::reference::lora(
        ya.view(),
        a2(&aq, d, rank).view(),
        a2(&bq, rank, d).view(),
        scale as f64,
        Some(ya.dot(&a2(&wq, d, d)).view()),
    );
    let rk = wgfuse::reference::lora(
        ya.view(),
        a2(&ak, d, rank).view(),
        a2(&bk, rank, d).view(),
        scale as f64,
        Some(ya.dot(&a2(&wk, d, d)).view()),
    );
    check("q = y·Wq + s·(y·Aq)·Bq", &q, rq.as_slice().expect("contiguous"), 1e-4)?;
    check("k = y·Wk + s·(y·Ak)·Bk", &k, rk.as_slice().expect("contiguous"), 1e-4)?;
    let qv: Vec<f64> = q.to_vec::<f32>()?.into_iter().map(f64::from).collect();
    let kv: Vec<f64> = kh.iter().map(|&v| v as f64).collect();
    let rs = a2(&qv, seq, d).dot(&a2(&kv, seq, d).t());
    check("scores = q·kᵀ", &scores, rs.as_slice().expect("contiguous"), 1e-4)?;
    let sv: Vec<f64> = scores.to_vec::<f32>()?.into_iter().map(f64::from).collect();
    let rp = wgfuse::reference::softmax(ArrayD::from_shape_vec(vec![seq, seq], sv).expect("shape").view());
    check("p = softmax(scores)", &p, rp.as_slice().expect("contiguous"), 1e-5)?;
    Ok(())
}
