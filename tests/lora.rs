//! LoRA (with and without base, in place, merge) vs the f64 reference: ranks 1 to 128, one
//! row and many, sizes that are not multiples of 4 or of the workgroup, both dtypes.

mod common;

use common::*;
use ndarray::Array2;
use wgfuse::DType;

struct Case {
    rows: usize,
    k_in: usize,
    rank: usize,
    out: usize,
}

fn arr(v: &[f64], r: usize, c: usize) -> Array2<f64> {
    Array2::from_shape_vec((r, c), v.to_vec()).unwrap()
}

/// x [rows, in], A [in, rank], B [rank, out] and base [rows, out] of one case, uploaded, with
/// their values as the GPU sees them (after the dtype's rounding). `scales` bound each one's
/// uniform values, drawn in that order.
struct Inputs {
    x: wgfuse::Tensor,
    a: wgfuse::Tensor,
    b: wgfuse::Tensor,
    base: wgfuse::Tensor,
    xs: Vec<f64>,
    av: Vec<f64>,
    bv: Vec<f64>,
    basev: Vec<f64>,
}

fn inputs(ctx: &wgfuse::Context, g: &mut impl rand::Rng, [rows, k_in, rank, out]: [usize; 4], dtype: DType, scales: [f64; 4]) -> Inputs {
    let (x, xs) = upload(ctx, &random(g, rows * k_in, scales[0]), &[rows, k_in], dtype);
    let (a, av) = upload(ctx, &random(g, k_in * rank, scales[1]), &[k_in, rank], dtype);
    let (b, bv) = upload(ctx, &random(g, rank * out, scales[2]), &[rank, out], dtype);
    let (base, basev) = upload(ctx, &random(g, rows * out, scales[3]), &[rows, out], dtype);
    Inputs { x, a, b, base, xs, av, bv, basev }
}

fn tols(dtype: DType, k_in: usize, rank: usize) -> (f64, f64) {
    // Sums of in·r products: the error grows with the reduction length.
    let n = (k_in * rank) as f64;
    // f16 outputs also carry their own rounding (2^-11 relative).
    match dtype {
        DType::F32 => (1e-6 * n.sqrt(), 1e-5),
        DType::F16 => (2e-3 + 1e-6 * n.sqrt(), 2e-3),
    }
}

fn check(ctx: &wgfuse::Context, c: &Case, dtype: DType, with_base: bool, what: &str) {
    let mut g = rng(what);
    let (x, xs) = upload(ctx, &random(&mut g, c.rows * c.k_in, 1.0), &[c.rows, c.k_in], dtype);
    let (a, av) = upload(ctx, &random(&mut g, c.k_in * c.rank, 1.0 / (c.k_in as f64).sqrt()), &[c.k_in, c.rank], dtype);
    let (b, bv) = upload(ctx, &random(&mut g, c.rank * c.out, 1.0), &[c.rank, c.out], dtype);
    let (base, basev) = upload(ctx, &random(&mut g, c.rows * c.out, 2.0), &[c.rows, c.out], dtype);
    let scale = 0.75;
    let y = ctx.lora(&x, &a, &b, scale, with_base.then_some(&base)).expect("lora");
    let baseref = arr(&basev, c.rows, c.out);
    let want = wgfuse::reference::lora(
        arr(&xs, c.rows, c.k_in).view(),
        arr(&av, c.k_in, c.rank).view(),
        arr(&bv, c.rank, c.out).view(),
        scale as f64,
        with_base.then(|| baseref.view()),
    );
    let (atol, rtol) = tols(dtype, c.k_in, c.rank);
    assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, what);

    // In place: y0 += s (x A) B, on a copy of base.
    let mut y0 = upload(ctx, &basev, &[c.rows, c.out], dtype).0;
    ctx.lora_add_(&mut y0, &x, &a, &b, scale).expect("lora_add_");
    let want_add = wgfuse::reference::lora(
        arr(&xs, c.rows, c.k_in).view(),
        arr(&av, c.k_in, c.rank).view(),
        arr(&bv, c.rank, c.out).view(),
        scale as f64,
        Some(baseref.view()),
    );
    assert_close(&download(&y0), want_add.as_slice().unwrap(), atol, rtol, &format!("{what} (in place)"));
}

fn check_merge(ctx: &wgfuse::Context, k_in: usize, rank: usize, out: usize, dtype: DType, what: &str) {
    let mut g = rng(what);
    let (w, wv) = upload(ctx, &random(&mut g, k_in * out, 1.0), &[k_in, out], dtype);
    let (a, av) = upload(ctx, &random(&mut g, k_in * rank, 1.0), &[k_in, rank], dtype);
    let (b, bv) = upload(ctx, &random(&mut g, rank * out, 1.0), &[rank, out], dtype);
    let y = ctx.lora_merge(&w, &a, &b, 0.5).expect("lora_merge");
    let want = wgfuse::reference::lora_merge(arr(&wv, k_in, out).view(), arr(&av, k_in, rank).view(), arr(&bv, rank, out).view(), 0.5);
    let (atol, rtol) = tols(dtype, 1, rank);
    assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, what);
}

#[test]
fn lora_shapes() {
    let cases = [
        Case { rows: 1, k_in: 1, rank: 1, out: 1 },
        Case { rows: 1, k_in: 4096, rank: 16, out: 4096 },
        Case { rows: 3, k_in: 33, rank: 3, out: 17 },
        Case { rows: 5, k_in: 1023, rank: 8, out: 1025 },
        Case { rows: 37, k_in: 512, rank: 128, out: 255 },
        Case { rows: 130, k_in: 257, rank: 7, out: 513 },
        Case { rows: 1029, k_in: 64, rank: 16, out: 1031 },
        Case { rows: 300, k_in: 1030, rank: 40, out: 130 },
        Case { rows: 2050, k_in: 260, rank: 16, out: 132 },
    ];
    for (checks, ctx) in contexts() {
        for dtype in [DType::F32, DType::F16] {
            for (i, c) in cases.iter().enumerate() {
                let what = format!("lora {dtype:?} rows {} in {} r {} out {} checks={checks}", c.rows, c.k_in, c.rank, c.out);
                check(&ctx, c, dtype, i % 2 == 0, &what);
            }
        }
    }
}

#[test]
fn lora_merge_shapes() {
    for (checks, ctx) in contexts() {
        for dtype in [DType::F32, DType::F16] {
            for (k_in, rank, out) in [(1, 1, 1), (33, 4, 65), (256, 128, 130), (1025, 16, 1024)] {
                check_merge(&ctx, k_in, rank, out, dtype, &format!("lora_merge {dtype:?} {k_in}x{rank}x{out} checks={checks}"));
            }
        }
    }
}

#[test]
fn lora_every_variant() {
    use wgfuse::kernels::{lora, Kind, Variant};
    let ctx = ctx(false);
    let shapes = [(2100usize, 40usize, 5usize, 36usize), (17, 9, 1, 1030), (33, 64, 128, 8), (70, 1030, 20, 37)];
    for ((rows, k_in, rank, out), dtype) in shapes.into_iter().flat_map(|s| [(s, DType::F32), (s, DType::F16)]) {
        let what = format!("variants {rows}x{k_in}x{rank}x{out} {dtype:?}");
        let mut g = rng(&what);
        let Inputs { x, a, b, base, xs, av, bv, basev } = inputs(&ctx, &mut g, [rows, k_in, rank, out], dtype, [1.0, 0.3, 1.0, 1.0]);
        let baseref = arr(&basev, rows, out);
        let want = wgfuse::reference::lora(
            arr(&xs, rows, k_in).view(),
            arr(&av, k_in, rank).view(),
            arr(&bv, rank, out).view(),
            -1.5,
            Some(baseref.view()),
        );
        for (kind, wg, tm, passes) in [4u32, 8, 16]
            .into_iter()
            .flat_map(|tm| [1u32, 2, 3, 64].map(|p| (tm, p)))
            .flat_map(|(tm, p)| [(Kind::Plain, tm, p), (Kind::Down, tm, p)])
            .chain([1u32, 2, 3, 7, 64].map(|kt| (Kind::Project, kt, 32)))
            .map(|(kind, tm, passes)| (kind, 256, tm, passes))
            .chain(
                [1u32, 2, 4]
                    .into_iter()
                    .flat_map(|tm| [(256u32, 1u32), (256, 3), (1024, 1), (1024, 64)].map(|(wg, cb)| (Kind::Skinny, wg, tm, cb))),
            )
        {
            {
                let v = Variant { kind, wg, threads: passes, chunks: tm, mode: 0 };
                let y = upload(&ctx, &vec![f64::NAN; rows * out], &[rows, out], dtype).0;
                let args =
                    lora::Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: -1.5, mode: lora::Mode::Base, variant: Some(v) };
                ctx.lora_with(&args).unwrap();
                let (atol, rtol) = tols(dtype, k_in, rank);
                assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{what} {}", v.describe()));
            }
        }
    }
}

/// The tiled form's wide x·A (16 k lanes of 8 k; f16 reads x 16 bytes at a time): k slices of
/// 1 to 32 tiles, row tiles cut short, ranks past 16 (two passes over x), `in` past a tile,
/// f32 `in` not a multiple of 4, row groups of 4 rows and of 2 (`MODE_XA_ROWS2`, also with 32
/// lanes); f16 with an `in` that is not a multiple of 8 gets a typed error.
#[test]
fn lora_wide_x_a() {
    use wgfuse::kernels::{lora, Kind, Variant};
    let ctx = ctx(false);
    let shapes = [(2100usize, 40usize, 5usize, 36usize), (33, 64, 128, 8), (130, 1032, 40, 520), (70, 4096, 16, 260)];
    let f32_only = [(90usize, 1030usize, 16usize, 33usize), (65, 37, 3, 12)];
    let cases = shapes.into_iter().flat_map(|s| [(s, DType::F16), (s, DType::F32)]).chain(f32_only.map(|s| (s, DType::F32)));
    for ((rows, k_in, rank, out), dtype) in cases {
        let what = format!("wide x·A {rows}x{k_in}x{rank}x{out} {dtype:?}");
        let mut g = rng(&what);
        let scales = [1.0, 1.0 / (k_in as f64).sqrt(), 1.0, 1.0];
        let Inputs { x, a, b, base, xs, av, bv, basev } = inputs(&ctx, &mut g, [rows, k_in, rank, out], dtype, scales);
        let want = wgfuse::reference::lora(
            arr(&xs, rows, k_in).view(),
            arr(&av, k_in, rank).view(),
            arr(&bv, rank, out).view(),
            0.5,
            Some(arr(&basev, rows, out).view()),
        );
        let (atol, rtol) = tols(dtype, k_in, rank);
        // Both row-group heights (4 rows, and 2 with MODE_XA_ROWS2), and the 32-lane form's 2 rows.
        let forms = [1u32, 2, 3, 32].into_iter().flat_map(|kt| [(16, kt, 0), (16, kt, lora::MODE_XA_ROWS2)]);
        for (lanes, kt, mode) in forms.chain([(32, 1, lora::MODE_XA_ROWS2), (32, 3, lora::MODE_XA_ROWS2)]) {
            let v = Variant { kind: Kind::Project, wg: 256, threads: lanes, chunks: kt, mode };
            let y = upload(&ctx, &vec![f64::NAN; rows * out], &[rows, out], dtype).0;
            let args = lora::Args { x: &x, a: &a, b: &b, base: Some(&base), y: &y, scale: 0.5, mode: lora::Mode::Base, variant: Some(v) };
            ctx.lora_with(&args).unwrap();
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{what} {}", v.describe()));
        }
    }
    let v = Variant { kind: Kind::Project, wg: 256, threads: 16, chunks: 1, mode: 0 };
    for k_in in [60usize, 1030] {
        let dtype = DType::F16;
        let (x, _) = upload(&ctx, &vec![1.0; 600 * k_in], &[600, k_in], dtype);
        let (a, _) = upload(&ctx, &vec![1.0; k_in * 4], &[k_in, 4], dtype);
        let (b, _) = upload(&ctx, &vec![1.0; 4 * 8], &[4, 8], dtype);
        let (y, _) = upload(&ctx, &vec![0.0; 600 * 8], &[600, 8], dtype);
        let args = lora::Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: lora::Mode::Plain, variant: Some(v) };
        assert!(matches!(ctx.lora_with(&args), Err(wgfuse::Error::InvalidArgument { .. })), "{dtype:?} in {k_in}");
    }
}

#[test]
fn lora_merge_every_t_b_variant() {
    // The t·B dispatch alone (the merge), forced to each number of 16-row blocks a workgroup:
    // partial last tiles and blocks, unaligned `out`, ranks past the 16 held in registers, and
    // the largest tile t's shared memory holds at each rank.
    use wgfuse::kernels::{lora, Kind, Variant};
    let ctx = ctx(false);
    for ((k_in, rank, out), dtype) in [(300usize, 16usize, 1030usize), (37, 5, 36), (70, 20, 64), (33, 128, 8), (1, 1, 1)]
        .into_iter()
        .flat_map(|s| [(s, DType::F32), (s, DType::F16)])
    {
        let what = format!("merge t·B {k_in}x{rank}x{out} {dtype:?}");
        let mut g = rng(&what);
        let (w, wv) = upload(&ctx, &random(&mut g, k_in * out, 1.0), &[k_in, out], dtype);
        let (a, av) = upload(&ctx, &random(&mut g, k_in * rank, 1.0), &[k_in, rank], dtype);
        let (b, bv) = upload(&ctx, &random(&mut g, rank * out, 1.0), &[rank, out], dtype);
        let want = wgfuse::reference::lora_merge(arr(&wv, k_in, out).view(), arr(&av, k_in, rank).view(), arr(&bv, rank, out).view(), 0.5);
        let fit = (64 / rank.div_ceil(4)).min(16) as u32;
        for (width, blocks) in
            [1u32, 2, 3, 16].into_iter().filter(|&k| k <= fit).chain([fit]).flat_map(|k| lora::EXPAND_WIDTHS.map(|w| (w, k)))
        {
            let v = Variant { kind: Kind::Expand, wg: 256, threads: width, chunks: blocks, mode: 0 };
            let y = upload(&ctx, &vec![f64::NAN; k_in * out], &[k_in, out], dtype).0;
            let args = lora::Args { x: &a, a: &a, b: &b, base: Some(&w), y: &y, scale: 0.5, mode: lora::Mode::Merge, variant: Some(v) };
            ctx.lora_with(&args).unwrap();
            let (atol, rtol) = tols(dtype, 1, rank);
            assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{what} {}", v.describe()));
        }
        // One block more than t's tile holds, a width not offered, or the t·B dispatch without
        // the merge: typed errors.
        let y = upload(&ctx, &vec![0.0; k_in * out], &[k_in, out], dtype).0;
        let over = Variant { kind: Kind::Expand, wg: 256, threads: 64, chunks: fit + 1, mode: 0 };
        let args = lora::Args { x: &a, a: &a, b: &b, base: Some(&w), y: &y, scale: 0.5, mode: lora::Mode::Merge, variant: Some(over) };
        assert!(matches!(ctx.lora_with(&args), Err(wgfuse::Error::InvalidArgument { .. })), "{what}: {fit} + 1 blocks");
        let args = lora::Args { variant: Some(Variant { threads: 32, chunks: 1, ..over }), ..args };
        assert!(matches!(ctx.lora_with(&args), Err(wgfuse::Error::InvalidArgument { .. })), "{what}: 32 column chunks");
        let x = upload(&ctx, &vec![1.0; k_in * k_in], &[k_in, k_in], dtype).0;
        let args = lora::Args { x: &x, mode: lora::Mode::Base, variant: Some(Variant { chunks: 1, ..over }), ..args };
        assert!(matches!(ctx.lora_with(&args), Err(wgfuse::Error::InvalidArgument { .. })), "{what}: t·B without the merge");
    }
}

#[test]
fn lora_large_magnitudes() {
    // Inputs around 1e3 (f32) and 1e2 (f16, whose products must stay under 65504): the relative
    // error stays at the dtype's rounding.
    let ctx = ctx(false);
    for (dtype, s) in [(DType::F32, 1e3), (DType::F16, 3e1)] {
        let (rows, k_in, rank, out) = (9usize, 130usize, 8usize, 66usize);
        let what = format!("lora large {dtype:?}");
        let mut g = rng(&what);
        let (x, xs) = upload(&ctx, &random(&mut g, rows * k_in, s), &[rows, k_in], dtype);
        let (a, av) = upload(&ctx, &random(&mut g, k_in * rank, s / (k_in as f64)), &[k_in, rank], dtype);
        let (b, bv) = upload(&ctx, &random(&mut g, rank * out, 1.0), &[rank, out], dtype);
        let y = ctx.lora(&x, &a, &b, 1.0, None).unwrap();
        let want = wgfuse::reference::lora(arr(&xs, rows, k_in).view(), arr(&av, k_in, rank).view(), arr(&bv, rank, out).view(), 1.0, None);
        let peak = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let rtol = if dtype == DType::F32 { 1e-5 } else { 2e-3 };
        assert_close(&download(&y), want.as_slice().unwrap(), rtol * peak, rtol, &what);
    }
}

#[test]
fn low_level_split_form_does_not_lend_its_scratch_to_the_pool() {
    // A caller records the split form into its own pass, keeps the pass unsubmitted, and runs
    // simple-layer ops meanwhile; submitting the pass later must not rewrite their outputs.
    use wgfuse::kernels::{lora, Kind, Variant};
    let ctx = ctx(false);
    let (rows, k_in, rank, out) = (1usize, 2048usize, 16usize, 64usize);
    let split = Variant { kind: Kind::Down, wg: 256, threads: 1, chunks: 4, mode: 0 };
    let mut g = rng("scratch");
    let (x, _) = upload(&ctx, &random(&mut g, rows * k_in, 1.0), &[rows, k_in], DType::F32);
    let (a, _) = upload(&ctx, &random(&mut g, k_in * rank, 0.05), &[k_in, rank], DType::F32);
    let (b, _) = upload(&ctx, &random(&mut g, rank * out, 1.0), &[rank, out], DType::F32);
    let y = ctx.tensor(&vec![0.0f32; rows * out], &[rows, out]).unwrap();
    let mut enc = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        let args = lora::Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: lora::Mode::Plain, variant: Some(split) };
        lora::encode(&ctx, &mut pass, &args).unwrap();
    }
    // Simple-layer outputs of every size class the scratch could have been (16 KiB-ish).
    let keep: Vec<_> = (1..64)
        .map(|i| {
            let t = ctx.tensor(&vec![1.0f32; 64 * i], &[i, 64]).unwrap();
            let s = ctx.softmax(&t).unwrap();
            (s.to_vec::<f32>().unwrap(), s)
        })
        .collect();
    ctx.queue().submit([enc.finish()]);
    for (before, t) in &keep {
        assert_eq!(&t.to_vec::<f32>().unwrap(), before, "a simple-layer output changed");
    }
}

#[test]
fn lora_cooperative_matrix_form() {
    // Kind::Coop (LoRA on cooperative matrices, asked for in the options). Where the device
    // has 16x16x16 f16 -> f32 matrices: forced on shapes of one to four 16-row tiles, ranks 16
    // to 128, k steps that do not fill the eight-step trips, column tiles that do not fill the
    // four-tile trips, with
    // base, without and in place. Elsewhere (lavapipe): a typed error. Both: shapes it cannot
    // run give typed errors, and no default rule picks it.
    use wgfuse::kernels::{lora, Kind, Variant};
    let opts = wgfuse::ContextOptions { cooperative_matrix: true, ..Default::default() };
    let ctx = wgfuse::Context::with_options(opts).expect("a GPU adapter (tests fail without one)");
    let dtype = DType::F16;
    let coop = ctx.info().coop_f16();
    println!("cooperative matrices (16x16x16 f16 -> f32): {coop}");
    let wg = 8 * ctx.info().subgroup_sizes().0;
    for (rows, k_in, rank, out) in
        [(16usize, 16usize, 16usize, 16usize), (48, 272, 32, 1040), (32, 4096, 16, 112), (64, 160, 64, 48), (16, 48, 128, 16)]
    {
        let what = format!("coop {rows}x{k_in}x{rank}x{out}");
        let mut g = rng(&what);
        let scales = [1.0, 1.0 / (k_in as f64).sqrt(), 1.0, 2.0];
        let Inputs { x, a, b, base, xs, av, bv, basev } = inputs(&ctx, &mut g, [rows, k_in, rank, out], dtype, scales);
        let baseref = arr(&basev, rows, out);
        for mode in [lora::Mode::Base, lora::Mode::Plain, lora::Mode::InPlace] {
            let v = Variant { kind: Kind::Coop, wg, threads: 0, chunks: 0, mode: 0 };
            let y = match mode {
                lora::Mode::InPlace => upload(&ctx, &basev, &[rows, out], dtype).0,
                _ => poisoned(&ctx, &[rows, out], dtype),
            };
            let base_arg = (mode == lora::Mode::Base).then_some(&base);
            let args = lora::Args { x: &x, a: &a, b: &b, base: base_arg, y: &y, scale: -0.5, mode, variant: Some(v) };
            match ctx.lora_with(&args) {
                Ok(()) if coop => {
                    let with_base = (mode != lora::Mode::Plain).then(|| baseref.view());
                    let want = wgfuse::reference::lora(
                        arr(&xs, rows, k_in).view(),
                        arr(&av, k_in, rank).view(),
                        arr(&bv, rank, out).view(),
                        -0.5,
                        with_base,
                    );
                    let (atol, rtol) = tols(dtype, k_in, rank);
                    assert_close(&download(&y), want.as_slice().unwrap(), atol, rtol, &format!("{what} {mode:?} {}", v.describe()));
                }
                Err(wgfuse::Error::MissingFeature { .. }) if !coop => {}
                other => panic!("{what}: coop device {coop}: {other:?}"),
            }
        }
    }
    // A partial row tile: a typed error.
    let (x, _) = upload(&ctx, &vec![0.5; 24 * 32], &[24, 32], dtype);
    let (a, _) = upload(&ctx, &vec![0.5; 32 * 16], &[32, 16], dtype);
    let (b, _) = upload(&ctx, &vec![0.5; 16 * 8], &[16, 8], dtype);
    let y = poisoned(&ctx, &[24, 8], dtype);
    let v = Variant { kind: Kind::Coop, wg, threads: 0, chunks: 1, mode: 0 };
    let args = lora::Args { x: &x, a: &a, b: &b, base: None, y: &y, scale: 1.0, mode: lora::Mode::Plain, variant: Some(v) };
    let got = ctx.lora_with(&args);
    assert!(matches!(got, Err(wgfuse::Error::InvalidArgument { .. } | wgfuse::Error::MissingFeature { .. })), "24 rows: {got:?}");
    for rows in [2048usize, 4096] {
        let v = lora::variant_for(rows, 4096, 4096, dtype);
        assert_ne!(v.kind, Kind::Coop, "{rows} rows: {}", v.describe());
    }
}
