// x·A on cooperative matrices (f16 in, f32 out) over x 4096 x 4096 f16, rank 16: t (unscaled)
// into scratch as the tiled form's first dispatch writes it ((slice * rows + m) * r + j).
// Run with: cargo xtask probe xa_coop.wgsl --mib 32 --half --dump 262144
// (WGFUSE_COOPERATIVE_MATRIX=1). x: src; A: small; scratch: dst.
//
// - xa_g:    tiles loaded straight from device memory through an f16 pointer (lora_coop.wgsl's x·A).
// - xa_g_sN: xa_g over N k slices (N times the workgroups); xa_g1_s8: one subgroup a workgroup.
// - xa_gv:   the same through a vec4<f16> pointer (8-byte elements: the driver may load wider).
// - xa_sN_rR: x and A staged through shared memory (pairs of 8-byte loads), the next chunk's loads in
//            flight over this chunk's products; R rows a workgroup, N k slices.
//
// params 4096 4096 16 4096 0.5 1 0 1
// constants WG=256
// bind 5:dst,8:src,9:small,10:src,11:small
// dispatch xa_g 256 32
// dispatch xa_g_s2 512 32
// dispatch xa_g_s4 1024 32
// dispatch xa_g_s8 2048 32
// dispatch xa_g1_s8 2048 32
// dispatch xa_gv 256 32
// dispatch xa_s1_r16 256 32
// dispatch xa_s2_r16 512 32
// dispatch xa_s1_r32 128 32
// dispatch xa_s2_r32 256 32
// dispatch xa_s4_r32 512 32
// dispatch xa_g 256 32

enable f16;
enable wgpu_cooperative_matrix;

struct Params {
    rows: u32,
    k_in: u32,
    rank: u32,
    n_out: u32,
    scale: f32,
    col_blocks: u32,
    per_pass: u32,
    slices: u32,
}

var<immediate> p: Params;

override WG: u32 = 256u;

@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(8) var<storage, read> xh: array<f16>;
@group(0) @binding(9) var<storage, read> ah: array<f16>;

// Per subgroup: its 16 x 16 partial tile, summed at the end.
var<workgroup> cst: array<f32, 2048>;

// ---- straight from device memory ----

fn out16(acc: coop_mat16x16<f32, C>, m0: u32, sgid: u32, nsg: u32, lid: u32) {
    coopStoreT(acc, &cst[sgid * 256u], 16u);
    workgroupBarrier();
    for (var i = lid; i < 256u; i += WG) {
        var s = 0.0;
        for (var q = 0u; q < nsg; q++) {
            s += cst[q * 256u + i];
        }
        scratch[(m0 + i / 16u) * p.rank + i % 16u] = s;
    }
}

@compute @workgroup_size(WG)
fn xa_g(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32,
        @builtin(num_subgroups) nsg: u32) {
    let m0 = wid.x * 16u;
    let steps = p.k_in / 16u;
    let xrow = m0 * p.k_in;
    let r = p.rank;
    var c = coop_mat16x16<f32, C>();
    var st = sgid;
    while (st + 3u * nsg < steps) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u], p.k_in);
        let x1 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + nsg) * 16u], p.k_in);
        let x2 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 2u * nsg) * 16u], p.k_in);
        let x3 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 3u * nsg) * 16u], p.k_in);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&ah[st * 16u * r], r);
        let a1 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + nsg) * 16u * r], r);
        let a2 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 2u * nsg) * 16u * r], r);
        let a3 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 3u * nsg) * 16u * r], r);
        c = coopMultiplyAdd(x0, a0, c);
        c = coopMultiplyAdd(x1, a1, c);
        c = coopMultiplyAdd(x2, a2, c);
        c = coopMultiplyAdd(x3, a3, c);
        st += 4u * nsg;
    }
    out16(c, m0, sgid, nsg, lid);
}

@group(0) @binding(10) var<storage, read> xv: array<vec4<f16>>;
@group(0) @binding(11) var<storage, read> av: array<vec4<f16>>;

@compute @workgroup_size(WG)
fn xa_gv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32,
         @builtin(num_subgroups) nsg: u32) {
    let m0 = wid.x * 16u;
    let steps = p.k_in / 16u;
    let xrow = m0 * p.k_in;
    let r = p.rank;
    let xs = p.k_in / 4u;
    let as4 = r / 4u;
    var c = coop_mat16x16<f32, C>();
    var st = sgid;
    while (st + 3u * nsg < steps) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xv[(xrow + st * 16u) / 4u], xs);
        let x1 = coopLoadT<coop_mat16x16<f16, A>>(&xv[(xrow + (st + nsg) * 16u) / 4u], xs);
        let x2 = coopLoadT<coop_mat16x16<f16, A>>(&xv[(xrow + (st + 2u * nsg) * 16u) / 4u], xs);
        let x3 = coopLoadT<coop_mat16x16<f16, A>>(&xv[(xrow + (st + 3u * nsg) * 16u) / 4u], xs);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&av[st * 4u * r], as4);
        let a1 = coopLoadT<coop_mat16x16<f16, B>>(&av[(st + nsg) * 4u * r], as4);
        let a2 = coopLoadT<coop_mat16x16<f16, B>>(&av[(st + 2u * nsg) * 4u * r], as4);
        let a3 = coopLoadT<coop_mat16x16<f16, B>>(&av[(st + 3u * nsg) * 4u * r], as4);
        c = coopMultiplyAdd(x0, a0, c);
        c = coopMultiplyAdd(x1, a1, c);
        c = coopMultiplyAdd(x2, a2, c);
        c = coopMultiplyAdd(x3, a3, c);
        st += 4u * nsg;
    }
    out16(c, m0, sgid, nsg, lid);
}

// ---- staged through shared memory ----
// A chunk is KC = 256 k: x as RT rows x KC (row stride KC + 8 halves: rows start 16 bytes
// apart in the banks), A as KC rows x 16 ranks (row stride 24 halves).

const KC: u32 = 256u;
const XS: u32 = 66u;  // (KC + 8) / 4: x's row stride in vec4<f16>
const AS: u32 = 6u;   // (16 + 8) / 4: A's row stride in vec4<f16>

var<workgroup> xs_t: array<vec4<f16>, 2112>; // 32 x 66
var<workgroup> as_t: array<vec4<f16>, 1536>; // 256 x 6

// 8 halves (16 bytes), as two vec4<f16> loads of neighbouring elements.
struct H8 {
    lo: vec4<f16>,
    hi: vec4<f16>,
}

// Chunk i of the x tile at k0: row i / 32, halves 8 (i % 32) ..
fn x_ld(m0: u32, k0: u32, i: u32) -> H8 {
    let m = m0 + i / 32u;
    let k = k0 + 8u * (i % 32u);
    if (m >= p.rows || k >= p.k_in) {
        return H8(vec4<f16>(0.0h), vec4<f16>(0.0h));
    }
    let e = (m * p.k_in + k) / 4u;
    return H8(xv[e], xv[e + 1u]);
}

fn x_st(i: u32, w: H8) {
    let at = (i / 32u) * XS + 2u * (i % 32u);
    xs_t[at] = w.lo;
    xs_t[at + 1u] = w.hi;
}

// Chunk i of the A tile at k0 (rank 16): row i / 2, ranks 8 (i % 2) ..
fn a_ld(k0: u32, i: u32) -> H8 {
    let k = k0 + i / 2u;
    if (k >= p.k_in) {
        return H8(vec4<f16>(0.0h), vec4<f16>(0.0h));
    }
    let e = (k * 16u + 8u * (i % 2u)) / 4u;
    return H8(av[e], av[e + 1u]);
}

fn a_st(i: u32, w: H8) {
    let at = (i / 2u) * AS + 2u * (i % 2u);
    as_t[at] = w.lo;
    as_t[at + 1u] = w.hi;
}

// RT rows a workgroup (16 or 32), `slices` k slices (the params' slices are unused here); 8 subgroups: subgroup s takes row tile
// s % (RT / 16) and every (8 / (RT / 16))-th k step of 16 from s / (RT / 16).
fn xa_staged(RT: u32, slices: u32, g: u32, lid: u32, sgid: u32) {
    let tile = g / slices;
    let sl = g % slices;
    let m0 = tile * RT;
    let kper = (p.k_in / slices + KC - 1u) / KC * KC;
    let kb = sl * kper;
    let ke = min(p.k_in, kb + kper);
    let mts = RT / 16u;
    let mt = sgid % mts;
    let s0 = sgid / mts;
    let sstep = 8u / mts;
    // Loads of the first chunk.
    var x0 = x_ld(m0, kb, lid);
    var x1 = x_ld(m0, kb, lid + 256u);
    var x2 = H8(vec4<f16>(0.0h), vec4<f16>(0.0h));
    var x3 = x2;
    if (RT == 32u) {
        x2 = x_ld(m0, kb, lid + 512u);
        x3 = x_ld(m0, kb, lid + 768u);
    }
    var a0 = a_ld(kb, lid);
    var a1 = a_ld(kb, lid + 256u);
    var c = coop_mat16x16<f32, C>();
    for (var k0 = kb; k0 < ke; k0 += KC) {
        workgroupBarrier();
        x_st(lid, x0);
        x_st(lid + 256u, x1);
        if (RT == 32u) {
            x_st(lid + 512u, x2);
            x_st(lid + 768u, x3);
        }
        a_st(lid, a0);
        a_st(lid + 256u, a1);
        workgroupBarrier();
        let kn = k0 + KC;
        if (kn < ke) {
            x0 = x_ld(m0, kn, lid);
            x1 = x_ld(m0, kn, lid + 256u);
            if (RT == 32u) {
                x2 = x_ld(m0, kn, lid + 512u);
                x3 = x_ld(m0, kn, lid + 768u);
            }
            a0 = a_ld(kn, lid);
            a1 = a_ld(kn, lid + 256u);
        }
        for (var st = s0; st < 16u; st += sstep) {
            let xm = coopLoadT<coop_mat16x16<f16, A>>(&xs_t[mt * 16u * XS + st * 4u], XS);
            let am = coopLoadT<coop_mat16x16<f16, B>>(&as_t[st * 16u * AS], AS);
            c = coopMultiplyAdd(xm, am, c);
        }
    }
    coopStoreT(c, &cst[sgid * 256u], 16u);
    workgroupBarrier();
    for (var i = lid; i < RT * 16u; i += WG) {
        let m = i / 16u;
        let j = i % 16u;
        let mtile = m / 16u;
        var s = 0.0;
        for (var q = mtile; q < 8u; q += mts) {
            s += cst[q * 256u + (m % 16u) * 16u + j];
        }
        if (m0 + m < p.rows) {
            scratch[(sl * p.rows + m0 + m) * 16u + j] = s;
        }
    }
}

@compute @workgroup_size(WG)
fn xa_s1_r16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32) {
    xa_staged(16u, 1u, wid.x, lid, sgid);
}

@compute @workgroup_size(WG)
fn xa_s2_r16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32) {
    xa_staged(16u, 2u, wid.x, lid, sgid);
}

@compute @workgroup_size(WG)
fn xa_s1_r32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32) {
    xa_staged(32u, 1u, wid.x, lid, sgid);
}

@compute @workgroup_size(WG)
fn xa_s2_r32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32) {
    xa_staged(32u, 2u, wid.x, lid, sgid);
}

@compute @workgroup_size(WG)
fn xa_s4_r32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32) {
    xa_staged(32u, 4u, wid.x, lid, sgid);
}

// xa_g over k slices: workgroup g takes rows 16 (g / slices) .. and k slice g % slices, its
// partial t into slice g % slices of scratch.
fn xa_direct(slices: u32, g: u32, lid: u32, sgid: u32, nsg: u32) {
    let m0 = (g / slices) * 16u;
    let sl = g % slices;
    let steps = p.k_in / 16u / slices;
    let xrow = m0 * p.k_in + sl * steps * 16u;
    let arow = sl * steps * 16u * p.rank;
    let r = p.rank;
    var c = coop_mat16x16<f32, C>();
    var st = sgid;
    while (st + 3u * nsg < steps) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u], p.k_in);
        let x1 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + nsg) * 16u], p.k_in);
        let x2 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 2u * nsg) * 16u], p.k_in);
        let x3 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 3u * nsg) * 16u], p.k_in);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + st * 16u * r], r);
        let a1 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + nsg) * 16u * r], r);
        let a2 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + 2u * nsg) * 16u * r], r);
        let a3 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + 3u * nsg) * 16u * r], r);
        c = coopMultiplyAdd(x0, a0, c);
        c = coopMultiplyAdd(x1, a1, c);
        c = coopMultiplyAdd(x2, a2, c);
        c = coopMultiplyAdd(x3, a3, c);
        st += 4u * nsg;
    }
    coopStoreT(c, &cst[sgid * 256u], 16u);
    workgroupBarrier();
    for (var i = lid; i < 256u; i += WG) {
        var s = 0.0;
        for (var q = 0u; q < nsg; q++) {
            s += cst[q * 256u + i];
        }
        scratch[(sl * p.rows + m0 + i / 16u) * p.rank + i % 16u] = s;
    }
}

@compute @workgroup_size(WG)
fn xa_g_s2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32,
           @builtin(num_subgroups) nsg: u32) {
    xa_direct(2u, wid.x, lid, sgid, nsg);
}

@compute @workgroup_size(WG)
fn xa_g_s4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32,
           @builtin(num_subgroups) nsg: u32) {
    xa_direct(4u, wid.x, lid, sgid, nsg);
}

@compute @workgroup_size(WG)
fn xa_g_s8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_id) sgid: u32,
           @builtin(num_subgroups) nsg: u32) {
    xa_direct(8u, wid.x, lid, sgid, nsg);
}

// One subgroup a workgroup (no partial sums to meet): rows 16 (g / slices) .., k slice g % slices.
@compute @workgroup_size(32)
fn xa_g1_s8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let slices = 8u;
    let g = wid.x;
    let m0 = (g / slices) * 16u;
    let sl = g % slices;
    let steps = p.k_in / 16u / slices;
    let xrow = m0 * p.k_in + sl * steps * 16u;
    let arow = sl * steps * 16u * p.rank;
    let r = p.rank;
    var c = coop_mat16x16<f32, C>();
    for (var st = 0u; st < steps; st += 4u) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u], p.k_in);
        let x1 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u + 16u], p.k_in);
        let x2 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u + 32u], p.k_in);
        let x3 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u + 48u], p.k_in);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + st * 16u * r], r);
        let a1 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + 1u) * 16u * r], r);
        let a2 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + 2u) * 16u * r], r);
        let a3 = coopLoadT<coop_mat16x16<f16, B>>(&ah[arow + (st + 3u) * 16u * r], r);
        c = coopMultiplyAdd(x0, a0, c);
        c = coopMultiplyAdd(x1, a1, c);
        c = coopMultiplyAdd(x2, a2, c);
        c = coopMultiplyAdd(x3, a3, c);
    }
    coopStoreT(c, &scratch[(sl * p.rows + m0) * r], r);
}
