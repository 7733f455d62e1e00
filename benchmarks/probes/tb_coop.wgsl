// t·B with base add on cooperative matrices with f16 accumulators: y = base + t B over 4096 x
// 4096 f16, rank 16: a 16 x 16 tile of y is one product, started from the tile of base.
// Run with: cargo xtask probe tb_coop.wgsl --mib 64 --half --dump 1024 (WGFUSE_COOPERATIVE_MATRIX=1).
// base: src (f16, first 32 MiB); y: dst; B: small[0 .. 16 x 4096]; t: small[65536 ..] (4096 x 16).
// Workgroup g: row tile g / 8 (16 rows), columns 512 (g % 8) ..; subgroup s: its 4 tiles of 16
// columns from 64 s, their base loads issued before the products.
// tb_h: base and y through f16 pointers (tb_coop_v.wgsl: through vec4<f16> pointers).
//
// dispatch tb_h 2048 64
// dispatch tb_h 2048 64

enable f16;
enable wgpu_cooperative_matrix;

@group(0) @binding(0) var<storage, read> bh: array<f16>;
@group(0) @binding(1) var<storage, read_write> yh: array<f16>;
@group(0) @binding(2) var<storage, read> sh: array<f16>;
const N: u32 = 4096u;
const T0: u32 = 65536u;

@compute @workgroup_size(256)
fn tb_h(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_id) sgid: u32) {
    let m0 = (wid.x / 8u) * 16u;
    let c0 = (wid.x % 8u) * 512u + sgid * 64u;
    let t = coopLoadT<coop_mat16x16<f16, A>>(&sh[T0 + m0 * 16u], 16u);
    let y0 = coopLoadT<coop_mat16x16<f16, C>>(&bh[m0 * N + c0], N);
    let y1 = coopLoadT<coop_mat16x16<f16, C>>(&bh[m0 * N + c0 + 16u], N);
    let y2 = coopLoadT<coop_mat16x16<f16, C>>(&bh[m0 * N + c0 + 32u], N);
    let y3 = coopLoadT<coop_mat16x16<f16, C>>(&bh[m0 * N + c0 + 48u], N);
    let b0 = coopLoadT<coop_mat16x16<f16, B>>(&sh[c0], N);
    let b1 = coopLoadT<coop_mat16x16<f16, B>>(&sh[c0 + 16u], N);
    let b2 = coopLoadT<coop_mat16x16<f16, B>>(&sh[c0 + 32u], N);
    let b3 = coopLoadT<coop_mat16x16<f16, B>>(&sh[c0 + 48u], N);
    coopStoreT(coopMultiplyAdd(t, b0, y0), &yh[m0 * N + c0], N);
    coopStoreT(coopMultiplyAdd(t, b1, y1), &yh[m0 * N + c0 + 16u], N);
    coopStoreT(coopMultiplyAdd(t, b2, y2), &yh[m0 * N + c0 + 32u], N);
    coopStoreT(coopMultiplyAdd(t, b3, y3), &yh[m0 * N + c0 + 48u], N);
}
