// LoRA on cooperative matrices (the tensor cores of GPUs that expose them), one dispatch
// (Kind::Coop): y = base + s (x A) B for f16 tensors, f32 accumulation, 16 x 16 x 16 products
// at subgroup scope.
//
// Bindings: 8 x, 9 A, 10 B (f16, as halves: the buffers lora.wgsl reads as packed words),
// 11 base, 12 y (8 halves a vec4<u32>). Sizes as lora.wgsl's (rows, in, r, out, scale).
// MODE (lora.wgsl's): 0 y = s (x A) B; 1 y = base + s (x A) B; 2 y += s (x A) B.
// The host runs it only where every tile is whole: rows, in, r and out multiples of 16.
//
// Work split: workgroup g takes rows 16g .. 16g + 16, in 8 subgroups (WG is 8 times the
// smallest subgroup size).
// Phase 1, t = x A: the subgroups take the k steps of 16 in turn (subgroup s: steps s, s + S,
// ...), eight steps a trip with all sixteen tile loads issued before the products. Their 16 x
// 16 partial sums meet in shared memory, are added in a fixed order, scaled by s and rounded
// to f16 into `th` (16 x r), 16 ranks at a time.
// Phase 2, y = base + t B: the subgroups take the 16-column tiles in turn, four at a time. A
// tile's product (f32) goes through the subgroup's slice of `stage`; each lane then adds 8
// halves of base (loaded before the products) and stores 8 halves of y.

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

@group(0) @binding(31) var<uniform> p: Params;

override WG: u32 = 256u;
// Every LoRA pipeline sets the same constants; these two only fill the set here.
override T: u32 = 0u;
override K: u32 = 0u;
override MODE: u32 = 1u;

@group(0) @binding(8) var<storage, read> xh: array<f16>;
@group(0) @binding(9) var<storage, read> ah: array<f16>;
@group(0) @binding(10) var<storage, read> bh: array<f16>;
@group(0) @binding(11) var<storage, read> base8: array<vec4<u32>>;
@group(0) @binding(12) var<storage, read_write> y8: array<vec4<u32>>;

const MAX_SUBGROUPS: u32 = 8u;
const RMAX: u32 = 128u;

// Phase 1: a 16 x 16 partial tile for each of at most 8 subgroups (from 0); phase 2: four 16 x
// 16 output tiles a subgroup.
var<workgroup> stage: array<f32, 8192>;
var<workgroup> th: array<f16, 2048>; // s t, 16 rows x r (r <= 128), rounded to f16

fn mode() -> u32 {
    return MODE & 15u;
}

// Phase 1 for ranks jb .. jb + 16: this subgroup's share of the k steps, summed.
fn xa_part(m0: u32, jb: u32, sgid: u32, nsg: u32) -> coop_mat16x16<f32, C> {
    let steps = p.k_in / 16u;
    let xrow = m0 * p.k_in;
    let r = p.rank;
    var c = coop_mat16x16<f32, C>();
    var st = sgid;
    while (st + 7u * nsg < steps) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u], p.k_in);
        let x1 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + nsg) * 16u], p.k_in);
        let x2 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 2u * nsg) * 16u], p.k_in);
        let x3 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 3u * nsg) * 16u], p.k_in);
        let x4 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 4u * nsg) * 16u], p.k_in);
        let x5 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 5u * nsg) * 16u], p.k_in);
        let x6 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 6u * nsg) * 16u], p.k_in);
        let x7 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + (st + 7u * nsg) * 16u], p.k_in);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&ah[st * 16u * r + jb], r);
        let a1 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + nsg) * 16u * r + jb], r);
        let a2 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 2u * nsg) * 16u * r + jb], r);
        let a3 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 3u * nsg) * 16u * r + jb], r);
        let a4 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 4u * nsg) * 16u * r + jb], r);
        let a5 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 5u * nsg) * 16u * r + jb], r);
        let a6 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 6u * nsg) * 16u * r + jb], r);
        let a7 = coopLoadT<coop_mat16x16<f16, B>>(&ah[(st + 7u * nsg) * 16u * r + jb], r);
        c = coopMultiplyAdd(x0, a0, c);
        c = coopMultiplyAdd(x1, a1, c);
        c = coopMultiplyAdd(x2, a2, c);
        c = coopMultiplyAdd(x3, a3, c);
        c = coopMultiplyAdd(x4, a4, c);
        c = coopMultiplyAdd(x5, a5, c);
        c = coopMultiplyAdd(x6, a6, c);
        c = coopMultiplyAdd(x7, a7, c);
        st += 8u * nsg;
    }
    while (st < steps) {
        let x0 = coopLoadT<coop_mat16x16<f16, A>>(&xh[xrow + st * 16u], p.k_in);
        let a0 = coopLoadT<coop_mat16x16<f16, B>>(&ah[st * 16u * r + jb], r);
        c = coopMultiplyAdd(x0, a0, c);
        st += nsg;
    }
    return c;
}

// Index in base8 / y8 of halves 8q .. 8q + 8 (row q / 2, columns 8 (q % 2) ..) of the 16 x 16
// output tile of rows m0 .. m0 + 16 at column tile ct.
fn word8(m0: u32, ct: u32, q: u32) -> u32 {
    return ((m0 + q / 2u) * p.n_out + ct * 16u + (q % 2u) * 8u) / 8u;
}

// Halves 8q .. 8q + 8 of the 16 x 16 output tile at column tile ct: what they start from (by
// MODE), as packed words.
fn start_at(m0: u32, ct: u32, q: u32) -> vec4<u32> {
    let i = word8(m0, ct, q);
    if (mode() == 1u) {
        return base8[i];
    }
    if (mode() == 2u) {
        return y8[i];
    }
    return vec4<u32>(0u);
}

fn unpack8(w: vec4<u32>, lo: bool) -> vec4<f32> {
    if (lo) {
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    return vec4<f32>(unpack2x16float(w.z), unpack2x16float(w.w));
}

@compute @workgroup_size(WG)
fn lora_f16_coop(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                 @builtin(subgroup_id) sgid: u32, @builtin(num_subgroups) nsg: u32, @builtin(subgroup_invocation_id) lane: u32,
                 @builtin(subgroup_size) sg: u32) {
    let g = wid.x + wid.y * nwg.x;
    let m0 = g * 16u;
    if (m0 >= p.rows) {
        return;
    }
    let r = p.rank;
    // Phase 1: th = s x A, 16 ranks at a time.
    for (var jb = 0u; jb < r; jb += 16u) {
        let c = xa_part(m0, jb, sgid, nsg);
        coopStoreT(c, &stage[sgid * 256u], 16u);
        workgroupBarrier();
        for (var i = lid; i < 256u; i += WG) {
            var s = 0.0;
            for (var q = 0u; q < nsg; q++) {
                s += stage[q * 256u + i];
            }
            th[(i / 16u) * r + jb + i % 16u] = f16(p.scale * s);
        }
        workgroupBarrier();
    }
    // Phase 2: y = start + th B, column tiles ct by subgroup ct % nsg, four a trip (four
    // tiles' start loads in flight a lane). Lane q < 32 of a tile takes its halves 8q .. 8q + 8
    // (row q / 2, columns 8 (q % 2) ..).
    let tiles = p.n_out / 16u;
    let at = sgid * 1024u;
    var ct = sgid;
    while (ct + 3u * nsg < tiles) {
        var w0 = vec4<u32>(0u);
        var w1 = vec4<u32>(0u);
        var w2 = vec4<u32>(0u);
        var w3 = vec4<u32>(0u);
        if (lane < 32u) {
            w0 = start_at(m0, ct, lane);
            w1 = start_at(m0, ct + nsg, lane);
            w2 = start_at(m0, ct + 2u * nsg, lane);
            w3 = start_at(m0, ct + 3u * nsg, lane);
        }
        coopStoreT(tb_tile(ct), &stage[at], 16u);
        coopStoreT(tb_tile(ct + nsg), &stage[at + 256u], 16u);
        coopStoreT(tb_tile(ct + 2u * nsg), &stage[at + 512u], 16u);
        coopStoreT(tb_tile(ct + 3u * nsg), &stage[at + 768u], 16u);
        // The subgroup's own slice of `stage`: its lanes wait for each other only. (naga
        // emits a subgroup-scope barrier with subgroup-memory semantics; that it orders this
        // subgroup's workgroup-memory stores before its loads is what the H200's driver does,
        // and what the tests check there.)
        subgroupBarrier();
        put_tile(m0, ct, w0, at, lane, sg);
        put_tile(m0, ct + nsg, w1, at + 256u, lane, sg);
        put_tile(m0, ct + 2u * nsg, w2, at + 512u, lane, sg);
        put_tile(m0, ct + 3u * nsg, w3, at + 768u, lane, sg);
        subgroupBarrier();
        ct += 4u * nsg;
    }
    while (ct < tiles) {
        var w0 = vec4<u32>(0u);
        if (lane < 32u) {
            w0 = start_at(m0, ct, lane);
        }
        coopStoreT(tb_tile(ct), &stage[at], 16u);
        subgroupBarrier();
        put_tile(m0, ct, w0, at, lane, sg);
        subgroupBarrier();
        ct += nsg;
    }
}

// th B for column tile ct (f32).
fn tb_tile(ct: u32) -> coop_mat16x16<f32, C> {
    let r = p.rank;
    var c = coop_mat16x16<f32, C>();
    for (var jb = 0u; jb < r; jb += 16u) {
        let t = coopLoadT<coop_mat16x16<f16, A>>(&th[jb], r);
        let b = coopLoadT<coop_mat16x16<f16, B>>(&bh[jb * p.n_out + ct * 16u], p.n_out);
        c = coopMultiplyAdd(t, b, c);
    }
    return c;
}

// Stores output tile ct: its product (in `stage` from e0) plus what it starts from (w0 for
// this lane's halves, loaded ahead; lanes past 32 of a smaller subgroup load theirs here).
fn put_tile(m0: u32, ct: u32, w0: vec4<u32>, e0: u32, lane: u32, sg: u32) {
    for (var q = lane; q < 32u; q += sg) {
        var w = w0;
        if (q != lane) {
            w = start_at(m0, ct, q);
        }
        let e = e0 + q * 8u;
        let lo = unpack8(w, true) + vec4<f32>(stage[e], stage[e + 1u], stage[e + 2u], stage[e + 3u]);
        let hi = unpack8(w, false) + vec4<f32>(stage[e + 4u], stage[e + 5u], stage[e + 6u], stage[e + 7u]);
        y8[word8(m0, ct, q)] = vec4<u32>(pack2x16float(lo.xy), pack2x16float(lo.zw), pack2x16float(hi.xy), pack2x16float(hi.zw));
    }
}
