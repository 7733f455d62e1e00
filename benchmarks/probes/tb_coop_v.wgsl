// tb_coop.wgsl's t·B through vec4<f16> pointers (8-byte elements); bindings 3, 4, 5 as 0, 1, 2.
// bind 3:src,4:dst,5:small
// dispatch tb_v 2048 64
// dispatch tb_v 2048 64

enable f16;
enable wgpu_cooperative_matrix;

@group(0) @binding(3) var<storage, read> bv: array<vec4<f16>>;
@group(0) @binding(4) var<storage, read_write> yv: array<vec4<f16>>;
@group(0) @binding(5) var<storage, read> sv: array<vec4<f16>>;

const N: u32 = 4096u;
const T0: u32 = 65536u;

@compute @workgroup_size(256)
fn tb_v(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_id) sgid: u32) {
    let m0 = (wid.x / 8u) * 16u;
    let c0 = (wid.x % 8u) * 512u + sgid * 64u;
    let n4 = N / 4u;
    let e = (m0 * N + c0) / 4u;
    let t = coopLoadT<coop_mat16x16<f16, A>>(&sv[(T0 + m0 * 16u) / 4u], 4u);
    let y0 = coopLoadT<coop_mat16x16<f16, C>>(&bv[e], n4);
    let y1 = coopLoadT<coop_mat16x16<f16, C>>(&bv[e + 4u], n4);
    let y2 = coopLoadT<coop_mat16x16<f16, C>>(&bv[e + 8u], n4);
    let y3 = coopLoadT<coop_mat16x16<f16, C>>(&bv[e + 12u], n4);
    let b0 = coopLoadT<coop_mat16x16<f16, B>>(&sv[c0 / 4u], n4);
    let b1 = coopLoadT<coop_mat16x16<f16, B>>(&sv[c0 / 4u + 4u], n4);
    let b2 = coopLoadT<coop_mat16x16<f16, B>>(&sv[c0 / 4u + 8u], n4);
    let b3 = coopLoadT<coop_mat16x16<f16, B>>(&sv[c0 / 4u + 12u], n4);
    coopStoreT(coopMultiplyAdd(t, b0, y0), &yv[e], n4);
    coopStoreT(coopMultiplyAdd(t, b1, y1), &yv[e + 4u], n4);
    coopStoreT(coopMultiplyAdd(t, b2, y2), &yv[e + 8u], n4);
    coopStoreT(coopMultiplyAdd(t, b3, y3), &yv[e + 12u], n4);
}
