// LoRA: y = base + s * (x A) B, with x [M, in], A [in, r], B [r, out], base and y [M, out].
// The low-rank product t = x A (TM x r per workgroup) lives in shared memory and is never
// written to device memory. One dispatch.
//
// Bindings (f32): 0 x, 1 A, 2 B, 3 base, 4 y: array<vec4<f32>>.
// Bindings (f16): 8 x, 9 A, 10 B, 11 base, 12 y: array<vec2<u32>> (4 halves each); 13 y as
//   words, for writes of single halves (odd `out`); 14 x: array<vec4<u32>> (8 halves each, the
//   tiled form's wide x·A). Every entry point refers to all of them, so all slots are bound
//   (aliases of the same buffers).
// Sizes (uniform, binding 31): rows M, in, r, out, scale (f32 bits), column blocks, column chunks per pass,
// k slices (split form).
// Binding 5 (split form only): f32 scratch for the partial x A of each k slice.
// MODE: 0 y = s (x A) B;  1 y = base + s (x A) B;  2 y += s (x A) B (in place; base unused);
//       3 merge: y = base + s A B, rows of A taking the place of x A (x unused);
//       plus ALIGNED (16) when in, r and out are multiples of 4: x·A's loads of x and A are
//       then whole chunks, and the code for partial ones folds away when the pipeline is made.
//
// Work split: workgroup g takes row tile g / col_blocks (TM = K rows, 4, 8 or 16) and column
// block g % col_blocks. Both phases work in 4 x 4 register blocks (4 rows x 4 columns, four
// vec4 accumulators), so that each load feeds 4 to 16 FMAs and no register array is indexed.
// Phase 1 (t = x A): the (TM/4) x ceil(r/4) blocks of t are spread over the threads, and the
// k axis (in) is split into KS = WG / NB slices (NB: blocks rounded up to a power of two);
// thread lid takes slice lid % KS of block lid / KS, so neighbouring threads read neighbouring
// chunks of the same x rows. The partial blocks meet in shared memory and are summed there.
// Phase 2: thread lid takes row block lid % MB (MB = TM / 4) and column chunk lid / MB of each
// pass of WG / MB chunks, T passes per column block; each B load serves 4 rows, and a thread's
// 4 x 4 outputs are 4 vec4 stores.

override WG: u32 = 256u;
override T: u32 = 4u;   // passes over WG / MB column chunks per column block
override K: u32 = 4u;   // rows per tile (TM): 4, 8 or 16
override MODE: u32 = 1u;

const ALIGNED: u32 = 16u;

// The mode proper (MODE without the ALIGNED bit).
fn mode() -> u32 {
    return MODE & 15u;
}

fn all_aligned() -> bool {
    return (MODE & ALIGNED) != 0u;
}

const TMAX: u32 = 16u;
const RMAX: u32 = 128u;

struct Params {
    rows: u32,
    k_in: u32,
    rank: u32,
    n_out: u32,
    scale: f32,
    col_blocks: u32,
    per_pass: u32, // column chunks per pass (at most WG / MB; fewer spreads columns over more workgroups)
    slices: u32,   // k slices of the split (down / up) form
}

@group(0) @binding(31) var<uniform> p: Params;

// The rank and `out` compiled into a pipeline (the t·B dispatch's, for its shape), 0 where they
// are read from the uniform: a known rank folds the loops over rank quads, a known `out`
// the row addresses.
override RANK: u32 = 0u;
override N_OUT: u32 = 0u;

fn lora_rank() -> u32 {
    if (RANK != 0u) {
        return RANK;
    }
    return p.rank;
}

fn lora_out() -> u32 {
    if (N_OUT != 0u) {
        return N_OUT;
    }
    return p.n_out;
}

@group(0) @binding(0) var<storage, read> x32: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> a32: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b32: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> base32: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y32: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> x16: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read> a16: array<vec2<u32>>;
@group(0) @binding(10) var<storage, read> b16: array<vec2<u32>>;
@group(0) @binding(11) var<storage, read> base16: array<vec2<u32>>;
@group(0) @binding(12) var<storage, read_write> y16: array<vec2<u32>>;
@group(0) @binding(13) var<storage, read_write> y16w: array<atomic<u32>>;
@group(0) @binding(14) var<storage, read> x16q: array<vec4<u32>>; // f16 x in 16-byte chunks (8 halves)
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>; // split form: partial t per k slice

var<workgroup> t_sh: array<f32, 2048>; // TMAX * RMAX
var<workgroup> part: array<vec4<f32>, 1024>; // 4 vec4 per thread

fn unpack4(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

// Chunk c (elements 4c..4c+3) of buffer `which`: 0 x, 1 A, 2 B, 3 base, 4 y.
fn ld4(f16: bool, which: u32, c: u32) -> vec4<f32> {
    if (f16) {
        switch which {
            case 0u: { return unpack4(x16[c]); }
            case 1u: { return unpack4(a16[c]); }
            case 2u: { return unpack4(b16[c]); }
            case 3u: { return unpack4(base16[c]); }
            default: { return unpack4(y16[c]); }
        }
    }
    switch which {
        case 0u: { return x32[c]; }
        case 1u: { return a32[c]; }
        case 2u: { return b32[c]; }
        case 3u: { return base32[c]; }
        default: { return y32[c]; }
    }
}

// Element e of buffer `which`. (No dynamic index into a vector value anywhere in these
// helpers: a vector indexed at run time goes to local memory, and that cost the t·B dispatch
// 2.3x on the H200.)
fn ld1(f16: bool, which: u32, e: u32) -> f32 {
    if (f16) {
        var w: vec2<u32>;
        switch which {
            case 0u: { w = x16[e >> 2u]; }
            case 1u: { w = a16[e >> 2u]; }
            case 2u: { w = b16[e >> 2u]; }
            case 3u: { w = base16[e >> 2u]; }
            default: { w = y16[e >> 2u]; }
        }
        let h = unpack2x16float(select(w.x, w.y, (e & 2u) != 0u));
        return select(h.x, h.y, (e & 1u) != 0u);
    }
    switch which {
        case 0u: { return x32[e >> 2u][e & 3u]; }
        case 1u: { return a32[e >> 2u][e & 3u]; }
        case 2u: { return b32[e >> 2u][e & 3u]; }
        case 3u: { return base32[e >> 2u][e & 3u]; }
        default: { return y32[e >> 2u][e & 3u]; }
    }
}

// Element e of buffer `which`, 0 at or past lim.
fn ld1_at(f16: bool, which: u32, e: u32, lim: u32) -> f32 {
    if (e < lim) {
        return ld1(f16, which, e);
    }
    return 0.0;
}

// Elements e..e+3 of buffer `which`, lanes with index >= lim read as 0; one vector load when
// the four are one aligned chunk.
fn ld4_at(f16: bool, which: u32, e: u32, aligned: bool, lim: u32) -> vec4<f32> {
    if (aligned && e + 4u <= lim) {
        return ld4(f16, which, e >> 2u);
    }
    return vec4<f32>(ld1_at(f16, which, e, lim), ld1_at(f16, which, e + 1u, lim), ld1_at(f16, which, e + 2u, lim),
                     ld1_at(f16, which, e + 3u, lim));
}

fn store_y(f16: bool, e: u32, v: vec4<f32>, nlanes: u32, aligned: bool) {
    if (aligned && nlanes == 4u) {
        put4(f16, e >> 2u, v);
        return;
    }
    if (nlanes > 0u) {
        store1(f16, e, v.x);
    }
    if (nlanes > 1u) {
        store1(f16, e + 1u, v.y);
    }
    if (nlanes > 2u) {
        store1(f16, e + 2u, v.z);
    }
    if (nlanes > 3u) {
        store1(f16, e + 3u, v.w);
    }
}

// Chunk c of y (elements 4c .. 4c + 3), whole.
fn put4(f16: bool, c: u32, v: vec4<f32>) {
    if (f16) {
        y16[c] = vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
    } else {
        y32[c] = v;
    }
}

// Element a of y. f16: one half at a time, as a word may be shared with a lane of another
// thread or workgroup.
fn store1(f16: bool, a: u32, v: f32) {
    if (!f16) {
        y32[a >> 2u][a & 3u] = v;
        return;
    }
    let bits = pack2x16float(vec2<f32>(v, 0.0)) & 0xffffu;
    if ((a & 1u) == 0u) {
        atomicAnd(&y16w[a >> 1u], 0xffff0000u);
        atomicOr(&y16w[a >> 1u], bits);
    } else {
        atomicAnd(&y16w[a >> 1u], 0x0000ffffu);
        atomicOr(&y16w[a >> 1u], bits << 16u);
    }
}

// Reads t[m][j] from shared memory (0 outside the tile).
fn t_at(m: u32, j: u32, r: u32) -> f32 {
    return t_sh[m * r + j];
}

// One k step of phase 1: x[rm .. rm + 4][k .. k + 4] (rows past `rows_left` and k past k1
// read as 0) and rows k .. k + 4 of A at columns j .. j + 4.
struct KStep {
    x0: vec4<f32>,
    x1: vec4<f32>,
    x2: vec4<f32>,
    x3: vec4<f32>,
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
}

fn kload(f16: bool, k: u32, k1: u32, rm: u32, rows_left: u32, j: u32, in_aligned: bool, a_aligned: bool) -> KStep {
    var st: KStep;
    st.x0 = vec4<f32>(0.0);
    st.x1 = vec4<f32>(0.0);
    st.x2 = vec4<f32>(0.0);
    st.x3 = vec4<f32>(0.0);
    st.a0 = vec4<f32>(0.0);
    st.a1 = vec4<f32>(0.0);
    st.a2 = vec4<f32>(0.0);
    st.a3 = vec4<f32>(0.0);
    if (k >= k1) {
        return st;
    }
    let r = lora_rank();
    let lim = min(k1, p.k_in);
    if (rows_left > 0u) {
        st.x0 = ld4_at(f16, 0u, rm * p.k_in + k, in_aligned, rm * p.k_in + lim);
    }
    if (rows_left > 1u) {
        st.x1 = ld4_at(f16, 0u, (rm + 1u) * p.k_in + k, in_aligned, (rm + 1u) * p.k_in + lim);
    }
    if (rows_left > 2u) {
        st.x2 = ld4_at(f16, 0u, (rm + 2u) * p.k_in + k, in_aligned, (rm + 2u) * p.k_in + lim);
    }
    if (rows_left > 3u) {
        st.x3 = ld4_at(f16, 0u, (rm + 3u) * p.k_in + k, in_aligned, (rm + 3u) * p.k_in + lim);
    }
    st.a0 = a_row(f16, k, k1, j, a_aligned);
    st.a1 = a_row(f16, k + 1u, k1, j, a_aligned);
    st.a2 = a_row(f16, k + 2u, k1, j, a_aligned);
    st.a3 = a_row(f16, k + 3u, k1, j, a_aligned);
    return st;
}

// Row k of A at columns j .. j + 4 (0 past k1 or the rank).
fn a_row(f16: bool, k: u32, k1: u32, j: u32, a_aligned: bool) -> vec4<f32> {
    if (k >= k1) {
        return vec4<f32>(0.0);
    }
    let arow = k * lora_rank();
    return ld4_at(f16, 1u, arow + j, a_aligned, arow + lora_rank());
}

// c += x (4 k) times the step's 4 rows of A.
fn kmac(c: vec4<f32>, x: vec4<f32>, st: KStep) -> vec4<f32> {
    return c + x.x * st.a0 + x.y * st.a1 + x.z * st.a2 + x.w * st.a3;
}

// Phase 1: t = x A over k in [k0, k1) for the tile's rows (or the rows of A, merging), into
// t_sh (K x r, rows past the tile zeroed).
fn phase1(f16: bool, m0: u32, tm: u32, k0: u32, k1: u32, lid: u32) {
    let r = lora_rank();
    let nq = (r + 3u) / 4u;             // column blocks of t
    let mb_n = K / 4u;                  // row blocks of t
    let nb = mb_n * nq;
    var nb2 = 1u;
    while (nb2 < nb) {
        nb2 = nb2 << 1u;
    }
    let ks = max(WG / nb2, 1u);

    if (mode() == 3u) {
        for (var i = lid; i < K * r; i += WG) {
            var v = 0.0;
            if (i / r < tm) {
                v = ld1(f16, 1u, m0 * r + i);
            }
            t_sh[i] = v;
        }
    } else {
        let s = lid % ks;
        let b = lid / ks;
        var c0 = vec4<f32>(0.0);
        var c1 = vec4<f32>(0.0);
        var c2 = vec4<f32>(0.0);
        var c3 = vec4<f32>(0.0);
        if (b < nb) {
            let mb = b / nq;
            let j = 4u * (b % nq);
            let in_aligned = p.k_in % 4u == 0u;
            let a_aligned = r % 4u == 0u;
            // Rows of x this thread reads (clamped; rows past the tile are zeroed).
            let rm = m0 + 4u * mb;
            // Two k steps per trip, all their loads issued before the first FMA: twice the
            // loads in flight of a plain loop, which waits on memory every step.
            let stride = 4u * ks;
            for (var k = k0 + 4u * s; k < k1; k += 2u * stride) {
                let sa = kload(f16, k, k1, rm, tm - min(tm, 4u * mb), j, in_aligned, a_aligned);
                let sb = kload(f16, k + stride, k1, rm, tm - min(tm, 4u * mb), j, in_aligned, a_aligned);
                c0 = kmac(kmac(c0, sa.x0, sa), sb.x0, sb);
                c1 = kmac(kmac(c1, sa.x1, sa), sb.x1, sb);
                c2 = kmac(kmac(c2, sa.x2, sa), sb.x2, sb);
                c3 = kmac(kmac(c3, sa.x3, sa), sb.x3, sb);
            }
        }
        part[4u * lid] = c0;
        part[4u * lid + 1u] = c1;
        part[4u * lid + 2u] = c2;
        part[4u * lid + 3u] = c3;
        workgroupBarrier();
        // Sum the slices: one output of t per thread and pass.
        for (var o = lid; o < K * r; o += WG) {
            let m = o / r;
            let jj = o % r;
            let bb = (m / 4u) * nq + jj / 4u;
            var acc = 0.0;
            for (var s2 = 0u; s2 < ks; s2++) {
                acc += part[4u * (bb * ks + s2) + (m % 4u)][jj % 4u];
            }
            t_sh[o] = acc;
        }
    }
}

// Phase 2: y[m][cols] = base + s * sum_j t[m][j] * B[j][cols] for the tile's rows and the
// columns of block cblock, t read from t_sh.
fn phase2(f16: bool, m0: u32, tm: u32, cblock: u32, lid: u32) {
    let r = lora_rank();
    let mb_n = K / 4u;
    let out_aligned = lora_out() % 4u == 0u;
    let chunks_out = (lora_out() + 3u) / 4u;
    let mb = lid % mb_n;
    let per_pass = p.per_pass;
    for (var ps = 0u; ps < T; ps++) {
        let cc = (cblock * T + ps) * per_pass + lid / mb_n;
        if (lid / mb_n < per_pass && cc < chunks_out) {
            let col = 4u * cc;
            let nl = min(4u, lora_out() - col);
            let m = 4u * mb;
            // The base rows first (independent of B), then eight rows of B per step, all
            // loaded before they are used: the loads of a step are in flight together.
            var a0 = base_at(f16, m, col, nl, out_aligned, m0, tm);
            var a1 = base_at(f16, m + 1u, col, nl, out_aligned, m0, tm);
            var a2 = base_at(f16, m + 2u, col, nl, out_aligned, m0, tm);
            var a3 = base_at(f16, m + 3u, col, nl, out_aligned, m0, tm);
            var j = 0u;
            for (; j + 8u <= r; j += 8u) {
                var bs: array<vec4<f32>, 8>;
                for (var q = 0u; q < 8u; q++) {
                    bs[q] = ld4_at(f16, 2u, (j + q) * lora_out() + col, out_aligned, (j + q) * lora_out() + lora_out());
                }
                for (var q = 0u; q < 8u; q++) {
                    let sb = p.scale * bs[q];
                    a0 += t_at(m, j + q, r) * sb;
                    a1 += t_at(m + 1u, j + q, r) * sb;
                    a2 += t_at(m + 2u, j + q, r) * sb;
                    a3 += t_at(m + 3u, j + q, r) * sb;
                }
            }
            for (; j < r; j++) {
                let b = p.scale * ld4_at(f16, 2u, j * lora_out() + col, out_aligned, j * lora_out() + lora_out());
                a0 += t_at(m, j, r) * b;
                a1 += t_at(m + 1u, j, r) * b;
                a2 += t_at(m + 2u, j, r) * b;
                a3 += t_at(m + 3u, j, r) * b;
            }
            finish(f16, m, col, nl, out_aligned, m0, tm, a0);
            finish(f16, m + 1u, col, nl, out_aligned, m0, tm, a1);
            finish(f16, m + 2u, col, nl, out_aligned, m0, tm, a2);
            finish(f16, m + 3u, col, nl, out_aligned, m0, tm, a3);
        }
    }
}

// What row m (of the tile) at column col starts from: the base (per MODE), or 0. A whole
// aligned chunk is one plain vector load (through ld4_at's switch and guards, f16 t·B took
// 67.9 µs instead of 42.0 on the H200).
fn base_at(f16: bool, m: u32, col: u32, nl: u32, aligned: bool, m0: u32, tm: u32) -> vec4<f32> {
    if (m >= tm || mode() == 0u) {
        return vec4<f32>(0.0);
    }
    if (aligned && nl == 4u) {
        return base_whole(f16, m, col, m0, tm);
    }
    let e = (m0 + m) * lora_out() + col;
    return ld4_at(f16, select(3u, 4u, mode() == 2u), e, aligned, e + nl);
}

// Stores row m (of the tile) at column col.
fn finish(f16: bool, m: u32, col: u32, nl: u32, aligned: bool, m0: u32, tm: u32, v: vec4<f32>) {
    if (m >= tm) {
        return;
    }
    store_y(f16, (m0 + m) * lora_out() + col, v, nl, aligned);
}

fn skip(g: u32) -> bool {
    return g >= ((p.rows + K - 1u) / K) * p.col_blocks;
}

// One dispatch: workgroup g computes t for row tile g / col_blocks and column block
// g % col_blocks of y.
fn lora(f16: bool, g: u32, lid: u32) {
    let m0 = (g / p.col_blocks) * K;
    let tm = min(K, p.rows - m0);
    phase1(f16, m0, tm, 0u, p.k_in, lid);
    workgroupBarrier();
    phase2(f16, m0, tm, g % p.col_blocks, lid);
}

// Split over k, for few rows (decoding): one tile's x A is too little work for the recompute
// per column block to hide, and too much for one workgroup to finish fast (every k step waits
// on memory). `down`: workgroup g sums k slice g % slices of row tile g / slices into
// `scratch`; `up`: each workgroup adds the slices of its tile and runs phase 2. Two dispatches,
// because workgroups of one dispatch cannot wait for each other.
fn down(f16: bool, g: u32, lid: u32) {
    let tile = g / p.slices;
    let sl = g % p.slices;
    let m0 = tile * K;
    let tm = min(K, p.rows - m0);
    let kc = ((p.k_in + 3u) / 4u + p.slices - 1u) / p.slices * 4u;
    let k0 = min(sl * kc, p.k_in);
    phase1(f16, m0, tm, k0, min(k0 + kc, p.k_in), lid);
    workgroupBarrier();
    for (var i = lid; i < K * lora_rank(); i += WG) {
        scratch[g * K * lora_rank() + i] = t_sh[i];
    }
}

// The p.slices partial sums scratch[at], scratch[at + stride], ...: eight loads issued per
// trip, so a sum over many slices waits on memory slices / 8 times, not once per slice.
fn slice_sum(at: u32, stride: u32) -> f32 {
    var s0 = 0.0;
    var s1 = 0.0;
    var s2 = 0.0;
    var s3 = 0.0;
    var sl = 0u;
    for (; sl + 8u <= p.slices; sl += 8u) {
        let e = at + sl * stride;
        let v0 = scratch[e];
        let v1 = scratch[e + stride];
        let v2 = scratch[e + 2u * stride];
        let v3 = scratch[e + 3u * stride];
        let v4 = scratch[e + 4u * stride];
        let v5 = scratch[e + 5u * stride];
        let v6 = scratch[e + 6u * stride];
        let v7 = scratch[e + 7u * stride];
        s0 += v0 + v4;
        s1 += v1 + v5;
        s2 += v2 + v6;
        s3 += v3 + v7;
    }
    for (; sl < p.slices; sl++) {
        s0 += scratch[at + sl * stride];
    }
    return (s0 + s1) + (s2 + s3);
}

fn up(f16: bool, g: u32, lid: u32) {
    let tile = g / p.col_blocks;
    let m0 = tile * K;
    let tm = min(K, p.rows - m0);
    for (var i = lid; i < K * lora_rank(); i += WG) {
        t_sh[i] = slice_sum(tile * p.slices * K * lora_rank() + i, K * lora_rank());
    }
    workgroupBarrier();
    phase2(f16, m0, tm, g % p.col_blocks, lid);
}

@compute @workgroup_size(WG)
fn lora_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skip(g)) { return; }
    lora(false, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skip(g)) { return; }
    lora(true, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f32_down(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= ((p.rows + K - 1u) / K) * p.slices) { return; }
    down(false, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f16_down(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (g >= ((p.rows + K - 1u) / K) * p.slices) { return; }
    down(true, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f32_up(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skip(g)) { return; }
    up(false, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f16_up(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skip(g)) { return; }
    up(true, g, lid);
}

// ---- Tiled form, for many rows: two dispatches that each keep the GPU full ----
//
// `xa` (T = 32 k lanes; 16 in the wide form below): t = x A for a tile of R * WG / T rows
// (R = 4, or 2 in the two-row form, MODE bit XR2) over one k slice of K tiles of 128, into
// `scratch` (slice-major: [slice][row][r rounded up to 4]). Threads form WG / T row groups of
// R rows; the k lanes of a group read neighbouring chunks of the same rows (512 contiguous
// bytes of each row per load). Per k tile of 128, A is staged in `a_s` ([chunk][k of the
// chunk][rank quad], 17 vec4 a chunk: lanes of a subgroup hit distinct banks), and each A vec4
// read feeds 4 FMAs a row (16 at R = 4). Two tiles of A are staged in turn: the next tile's A
// and x are loaded before the current one is used, so loads stay in flight over the products,
// and there is one barrier a tile. A thread keeps R rows x 16 ranks of t in named
// accumulators (the rows past R fold away when the pipeline is made); ranks past 16 take more
// passes over x. The k lanes' partial sums meet in shared memory (`a_s` again), one row at a
// time. The two-row form needs ~40% fewer registers (H200: 123 / 111 a thread in f32 / f16,
// against 191 / 162), so two workgroups fit a multiprocessor instead of one.
// `tb` (T = 64, 128 or 256 column chunks): y = base + s t B for 16 K rows x T column chunks per
// workgroup: the tile's t (the slices summed, or rows of A for the merge) is staged in `t4`
// once; thread (group, chunk) keeps B's first 16 ranks at its 4 columns in registers (four
// mat4x4) and walks rows 4 group, 4 group + RB, ... of the tile (RB = 4 WG / T), 4 at a time,
// loading the next 4 rows' base before it uses the current ones. A wider T reads longer runs
// of each row (T = 256: 4 KB of f32, 2 KB of f16). Each output chunk then costs one base
// load, 4 shared-memory reads (broadcast: a subgroup shares its rows) and 4 matrix-vector
// products.

const XKT: u32 = 128u;         // k per staged tile of A (4 x 32 lanes, or 8 x 16 in the wide form)
const XSTRIDE: u32 = 17u;      // vec4 per chunk of a_s: 4 k x 4 rank quads + 1 of padding
const XBUF: u32 = 544u;        // vec4 per staged tile: 32 chunks x XSTRIDE
var<workgroup> a_s: array<vec4<f32>, 1088>; // two tiles (double buffer), and the k-lane partials (WG x 4)
var<workgroup> t4: array<vec4<f32>, 1024>; // 16 K rows x ceil(r / 4) vec4 (at most 1024: 16 KB)

// x·A's wide form (`T` = 16 k lanes a row group): each lane takes 8 k (two chunks of A) a
// tile, so each thread has twice the bytes of x in flight. f16 reads its 8 halves as one
// 16-byte load (in a multiple of 8, so whole chunks only), f32 as two chunks. On the H200 this
// form took f16 x·A at 4096 x 4096 r16 from 38.4-39.4 µs to 34.0-34.9.
fn xa_wide() -> bool {
    return T == 16u;
}

// MODE bit of x·A's two-row form: a row group holds 2 rows instead of 4, so a thread keeps
// half the accumulators and half the x in flight (fewer registers, more workgroups a
// multiprocessor).
const XR2: u32 = 64u;

// Rows of an x·A row group: 4, or 2 in the two-row form.
fn xa_rows() -> u32 {
    return select(4u, 2u, (MODE & XR2) != 0u);
}

// Row q of a row group at elements k .. k + 8 (wide form), 0 past the rows or past k1.
fn xw_at(rm: u32, q: u32, nrow: u32, k: u32, k1: u32) -> vec4<u32> {
    if (q >= nrow || k >= k1) {
        return vec4<u32>(0u);
    }
    return x16q[((rm + q) * p.k_in + k) >> 3u];
}

// A lane's x at row q of its row group: 4 elements from k (8 in the wide f16 form).
fn xk_at(f16: bool, rm: u32, q: u32, nrow: u32, k: u32, k1: u32, in_aligned: bool) -> vec4<u32> {
    if (q >= xa_rows()) {
        return vec4<u32>(0u);
    }
    if (xa_wide() && f16) {
        return xw_at(rm, q, nrow, k, k1);
    }
    return x_at(f16, rm, q, nrow, k, k1, in_aligned);
}

// A lane's x for one k tile, as raw bits: rows q = 0..3 of its row group at k (`xk_at`), and
// the wide f32 form's second chunks (`xh_at`; 0 elsewhere).
struct XLane {
    x0: vec4<u32>,
    x1: vec4<u32>,
    x2: vec4<u32>,
    x3: vec4<u32>,
    y0: vec4<u32>,
    y1: vec4<u32>,
    y2: vec4<u32>,
    y3: vec4<u32>,
}

fn x_lane(f16: bool, rm: u32, nrow: u32, k: u32, k1: u32, in_aligned: bool) -> XLane {
    return XLane(xk_at(f16, rm, 0u, nrow, k, k1, in_aligned), xk_at(f16, rm, 1u, nrow, k, k1, in_aligned),
                 xk_at(f16, rm, 2u, nrow, k, k1, in_aligned), xk_at(f16, rm, 3u, nrow, k, k1, in_aligned),
                 xh_at(f16, rm, 0u, nrow, k, k1, in_aligned), xh_at(f16, rm, 1u, nrow, k, k1, in_aligned),
                 xh_at(f16, rm, 2u, nrow, k, k1, in_aligned), xh_at(f16, rm, 3u, nrow, k, k1, in_aligned));
}

// The wide f32 form's second chunk of a lane (elements k + 4 .. k + 8); 0 elsewhere.
fn xh_at(f16: bool, rm: u32, q: u32, nrow: u32, k: u32, k1: u32, in_aligned: bool) -> vec4<u32> {
    if (xa_wide() && !f16 && q < xa_rows()) {
        return x_at(false, rm, q, nrow, k + 4u, k1, in_aligned);
    }
    return vec4<u32>(0u);
}

// The wide form's second 4 k of a lane's row (its first: `x_val` of `x`): f16 from the one
// 16-byte load `x`, f32 from the second chunk `y`.
fn wide_hi(f16: bool, x: vec4<u32>, y: vec4<u32>) -> vec4<f32> {
    if (f16) {
        return unpack4(x.zw);
    }
    return bitcast<vec4<f32>>(y);
}

// Row q of a row group at chunk k (elements k .. k + 4), 0 past the rows or past k1, as raw
// bits: f32 lanes, or (f16) 4 halves in .xy. The conversion waits for `x_val`, at the use, so
// that a load made a tile ahead stays in flight until then.
fn x_at(f16: bool, rm: u32, q: u32, nrow: u32, k: u32, k1: u32, in_aligned: bool) -> vec4<u32> {
    if (q >= nrow || k >= k1) {
        return vec4<u32>(0u);
    }
    let e = (rm + q) * p.k_in + k;
    return raw_at(f16, 0u, e, in_aligned, e - k + k1);
}

// Elements e..e+3 of x (which = 0) or A (1) as raw bits, lanes at or past lim 0: one vector
// load when the four are one aligned chunk.
fn raw_at(f16: bool, which: u32, e: u32, aligned: bool, lim: u32) -> vec4<u32> {
    // all_aligned(): x·A's chunks (k and k1 multiples of 4 of x's rows; ranks j .. j + 4 < r of
    // A's) are then whole, so the partial path below is not compiled.
    if (all_aligned() || (aligned && e + 4u <= lim)) {
        if (f16) {
            if (which == 0u) {
                return vec4<u32>(x16[e >> 2u], 0u, 0u);
            }
            return vec4<u32>(a16[e >> 2u], 0u, 0u);
        }
        if (which == 0u) {
            return bitcast<vec4<u32>>(x32[e >> 2u]);
        }
        return bitcast<vec4<u32>>(a32[e >> 2u]);
    }
    let v = ld4_at(f16, which, e, aligned, lim);
    if (f16) {
        return vec4<u32>(pack2x16float(v.xy), pack2x16float(v.zw), 0u, 0u);
    }
    return bitcast<vec4<u32>>(v);
}

fn x_val(f16: bool, raw: vec4<u32>) -> vec4<f32> {
    if (f16) {
        return unpack4(raw.xy);
    }
    return bitcast<vec4<f32>>(raw);
}

// acc[q] += x[q] (4 k) times the 4 x 4 block of A at rank quad jq of the chunk at `at` in a_s.
fn mac4(at: u32, jq: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
        a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>, a2: ptr<function, vec4<f32>>, a3: ptr<function, vec4<f32>>) {
    let b0 = a_s[at + jq];
    let b1 = a_s[at + 4u + jq];
    let b2 = a_s[at + 8u + jq];
    let b3 = a_s[at + 12u + jq];
    *a0 += x0.x * b0 + x0.y * b1 + x0.z * b2 + x0.w * b3;
    *a1 += x1.x * b0 + x1.y * b1 + x1.z * b2 + x1.w * b3;
    *a2 += x2.x * b0 + x2.y * b1 + x2.z * b2 + x2.w * b3;
    *a3 += x3.x * b0 + x3.y * b1 + x3.z * b2 + x3.w * b3;
}

// mac4 over the four rank quads: row q's accumulators a{q}0 .. a{q}3 (ranks 0 .. 16) += x{q}
// (4 k) times the 4 x 16 block of A at `at` in a_s.
fn mac16(at: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
         a00: ptr<function, vec4<f32>>, a01: ptr<function, vec4<f32>>, a02: ptr<function, vec4<f32>>, a03: ptr<function, vec4<f32>>,
         a10: ptr<function, vec4<f32>>, a11: ptr<function, vec4<f32>>, a12: ptr<function, vec4<f32>>, a13: ptr<function, vec4<f32>>,
         a20: ptr<function, vec4<f32>>, a21: ptr<function, vec4<f32>>, a22: ptr<function, vec4<f32>>, a23: ptr<function, vec4<f32>>,
         a30: ptr<function, vec4<f32>>, a31: ptr<function, vec4<f32>>, a32: ptr<function, vec4<f32>>, a33: ptr<function, vec4<f32>>) {
    mac4(at, 0u, x0, x1, x2, x3, a00, a10, a20, a30);
    mac4(at, 1u, x0, x1, x2, x3, a01, a11, a21, a31);
    mac4(at, 2u, x0, x1, x2, x3, a02, a12, a22, a32);
    mac4(at, 3u, x0, x1, x2, x3, a03, a13, a23, a33);
}

// Thread lid's share of A rows kt .. kt + 128, ranks jb .. jb + 16 (512 (k, rank quad) vec4
// over the threads; WG = 256: two each), 0 past k1 or the rank.
// As raw bits, like `x_at`: converted by `a_put`, after the products that hide the load.
fn a_tile(f16: bool, lid: u32, kt: u32, k1: u32, jb: u32, h: u32, aligned: bool) -> vec4<u32> {
    let i = lid + h * WG;
    let kk = i / 4u;
    let j = jb + 4u * (i % 4u);
    let r = lora_rank();
    if (kt + kk >= k1 || j >= r) {
        return vec4<u32>(0u);
    }
    let e = (kt + kk) * r + j;
    return raw_at(f16, 1u, e, aligned, e - j + min(r, j + 4u));
}

fn a_put(f16: bool, buf: u32, lid: u32, h: u32, raw: vec4<u32>) {
    let i = lid + h * WG;
    let kk = i / 4u;
    // The wide form's lane l reads chunks 2l and 2l + 1: they go to slots l and 16 + l, so
    // that the 16 lanes of a read hit distinct banks.
    var c = kk / 4u;
    if (xa_wide()) {
        c = (c & 1u) * 16u + (c >> 1u);
    }
    a_s[buf * XBUF + c * XSTRIDE + (kk % 4u) * 4u + i % 4u] = x_val(f16, raw);
}

// Row q of each row group: the k lanes' partial sums (4 rank quads) added up and written to
// scratch for ranks jb .. jb + 16.
fn xa_out(q: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>, lid: u32, m0: u32, sl: u32, jb: u32) {
    let r = lora_rank();
    let r4 = (r + 3u) / 4u * 4u;
    workgroupBarrier();
    a_s[lid * 4u] = v0;
    a_s[lid * 4u + 1u] = v1;
    a_s[lid * 4u + 2u] = v2;
    a_s[lid * 4u + 3u] = v3;
    workgroupBarrier();
    // (WG / T) row groups x 16 ranks, each a sum over T lanes.
    for (var o = lid; o < (WG / T) * 16u; o += WG) {
        let g2 = o / 16u;
        let j = o % 16u;
        var s = 0.0;
        for (var l = 0u; l < T; l++) {
            s += a_s[(g2 * T + l) * 4u + j / 4u][j % 4u];
        }
        let m = m0 + xa_rows() * g2 + q;
        if (m < p.rows && jb + j < r) {
            scratch[(sl * p.rows + m) * r4 + jb + j] = s;
        }
    }
}

fn xa(f16: bool, g: u32, lid: u32) {
    let rw = xa_rows() * (WG / T);
    let tile = g / p.slices;
    let sl = g % p.slices;
    let m0 = tile * rw;
    let rm = m0 + xa_rows() * (lid / T);
    let kl = lid % T;
    let nrow = p.rows - min(p.rows, rm);
    let r = lora_rank();
    let kc = K * XKT;
    let k0 = min(sl * kc, p.k_in);
    let k1 = min(k0 + kc, p.k_in);
    let in_aligned = p.k_in % 4u == 0u;
    let a_aligned = r % 4u == 0u;
    let wide = xa_wide();
    // k of the lane's first element in a tile.
    let kx = select(4u, 8u, wide) * kl;
    for (var jb = 0u; jb < r; jb += 16u) {
        var a00 = vec4<f32>(0.0); var a01 = vec4<f32>(0.0); var a02 = vec4<f32>(0.0); var a03 = vec4<f32>(0.0);
        var a10 = vec4<f32>(0.0); var a11 = vec4<f32>(0.0); var a12 = vec4<f32>(0.0); var a13 = vec4<f32>(0.0);
        var a20 = vec4<f32>(0.0); var a21 = vec4<f32>(0.0); var a22 = vec4<f32>(0.0); var a23 = vec4<f32>(0.0);
        var a30 = vec4<f32>(0.0); var a31 = vec4<f32>(0.0); var a32 = vec4<f32>(0.0); var a33 = vec4<f32>(0.0);
        // The first k tile of A and x; each step then loads the next tile's A (into the other
        // buffer, after its own products) and x before using this one: one barrier a tile.
        workgroupBarrier();
        a_put(f16, 0u, lid, 0u, a_tile(f16, lid, k0, k1, jb, 0u, a_aligned));
        a_put(f16, 0u, lid, 1u, a_tile(f16, lid, k0, k1, jb, 1u, a_aligned));
        var x = x_lane(f16, rm, nrow, k0 + kx, k1, in_aligned);
        workgroupBarrier();
        var buf = 0u;
        for (var kt = k0; kt < k1; kt += XKT) {
            let kn = kt + XKT;
            let va = a_tile(f16, lid, kn, k1, jb, 0u, a_aligned);
            let vb = a_tile(f16, lid, kn, k1, jb, 1u, a_aligned);
            let next = x_lane(f16, rm, nrow, kn + kx, k1, in_aligned);
            let at = buf * XBUF + kl * XSTRIDE;
            // The lane's first 4 k (the wide form's: f16 halves 0..3 of its 16-byte load, f32
            // its first chunk) meet chunk kl of A (the wide form: chunk 2 kl, in slot kl).
            mac16(at, x_val(f16, x.x0), x_val(f16, x.x1), x_val(f16, x.x2), x_val(f16, x.x3),
                  &a00, &a01, &a02, &a03, &a10, &a11, &a12, &a13, &a20, &a21, &a22, &a23, &a30, &a31, &a32, &a33);
            if (wide) {
                // The next 4 k meet chunk 2 kl + 1 (slot 16 + kl).
                mac16(at + 16u * XSTRIDE, wide_hi(f16, x.x0, x.y0), wide_hi(f16, x.x1, x.y1), wide_hi(f16, x.x2, x.y2), wide_hi(f16, x.x3, x.y3),
                      &a00, &a01, &a02, &a03, &a10, &a11, &a12, &a13, &a20, &a21, &a22, &a23, &a30, &a31, &a32, &a33);
            }
            buf ^= 1u;
            a_put(f16, buf, lid, 0u, va);
            a_put(f16, buf, lid, 1u, vb);
            workgroupBarrier();
            x = next;
        }
        xa_out(0u, a00, a01, a02, a03, lid, m0, sl, jb);
        xa_out(1u, a10, a11, a12, a13, lid, m0, sl, jb);
        if (xa_rows() == 4u) {
            xa_out(2u, a20, a21, a22, a23, lid, m0, sl, jb);
            xa_out(3u, a30, a31, a32, a33, lid, m0, sl, jb);
        }
    }
}

// Ranks j .. j + 4 of B at the thread's 4 columns, scaled, as the columns of a matrix (0 past
// the rank): the product with 4 ranks of a row of t is one matrix-vector product.
fn b_quad(f16: bool, j: u32, col: u32, aligned: bool) -> mat4x4<f32> {
    return mat4x4<f32>(b_row(f16, j, col, aligned), b_row(f16, j + 1u, col, aligned), b_row(f16, j + 2u, col, aligned),
                       b_row(f16, j + 3u, col, aligned));
}

fn b_row(f16: bool, j: u32, col: u32, aligned: bool) -> vec4<f32> {
    if (j >= lora_rank()) {
        return vec4<f32>(0.0);
    }
    if (aligned && col + 4u <= lora_out()) {
        return b_whole(f16, j, col);
    }
    let e = j * lora_out();
    return p.scale * ld4_at(f16, 2u, e + col, aligned, e + lora_out());
}

// v + t[m] B at the thread's columns: ranks 0 .. 16 from the registers q0 .. q3, the rest
// (rank > 16) from B in memory.
fn tb_row(f16: bool, m: u32, rq: u32, v: vec4<f32>, q0: mat4x4<f32>, q1: mat4x4<f32>, q2: mat4x4<f32>, q3: mat4x4<f32>,
          col: u32, aligned: bool) -> vec4<f32> {
    var acc = tb_row16(m, rq, v, q0, q1, q2, q3);
    for (var q = 4u; q < rq; q++) {
        acc += b_quad(f16, 4u * q, col, aligned) * t4[m * rq + q];
    }
    return acc;
}

// tb_row for a whole aligned chunk: B past rank 16 as plain vector loads.
fn tb_row_whole(f16: bool, m: u32, rq: u32, v: vec4<f32>, q0: mat4x4<f32>, q1: mat4x4<f32>, q2: mat4x4<f32>, q3: mat4x4<f32>,
                col: u32) -> vec4<f32> {
    var acc = tb_row16(m, rq, v, q0, q1, q2, q3);
    for (var q = 4u; q < rq; q++) {
        acc += b_quad_whole(f16, 4u * q, col) * t4[m * rq + q];
    }
    return acc;
}

fn tb_row16(m: u32, rq: u32, v: vec4<f32>, q0: mat4x4<f32>, q1: mat4x4<f32>, q2: mat4x4<f32>, q3: mat4x4<f32>) -> vec4<f32> {
    let at = m * rq;
    var acc = v + q0 * t4[at];
    if (rq > 1u) {
        acc += q1 * t4[at + 1u];
    }
    if (rq > 2u) {
        acc += q2 * t4[at + 2u];
    }
    if (rq > 3u) {
        acc += q3 * t4[at + 3u];
    }
    return acc;
}

// b_quad for a whole aligned chunk: plain vector loads only.
fn b_quad_whole(f16: bool, j: u32, col: u32) -> mat4x4<f32> {
    return mat4x4<f32>(b_whole(f16, j, col), b_whole(f16, j + 1u, col), b_whole(f16, j + 2u, col), b_whole(f16, j + 3u, col));
}

fn b_whole(f16: bool, j: u32, col: u32) -> vec4<f32> {
    if (j >= lora_rank()) {
        return vec4<f32>(0.0);
    }
    let c = (j * lora_out() + col) >> 2u;
    if (f16) {
        return p.scale * unpack4(b16[c]);
    }
    return p.scale * b32[c];
}

// Row m of the tile at a whole aligned chunk (col): what it starts from, and its store.
fn base_whole(f16: bool, m: u32, col: u32, m0: u32, tm: u32) -> vec4<f32> {
    if (m >= tm || mode() == 0u) {
        return vec4<f32>(0.0);
    }
    let c = ((m0 + m) * lora_out() + col) >> 2u;
    if (mode() == 2u) {
        if (f16) {
            return unpack4(y16[c]);
        }
        return y32[c];
    }
    if (f16) {
        return unpack4(base16[c]);
    }
    return base32[c];
}

// base_whole as raw bits (f16: the packed word pair in .xy), decoded by `decode` where it is
// used: a conversion right after the load would wait for it there, and t·B loads the next
// rows' base a block ahead so that the loads stay in flight over the current block.
fn base_raw(f16: bool, m: u32, col: u32, m0: u32, tm: u32) -> vec4<u32> {
    if (m >= tm || mode() == 0u) {
        return vec4<u32>(0u);
    }
    let c = ((m0 + m) * lora_out() + col) >> 2u;
    if (mode() == 2u) {
        if (f16) {
            return vec4<u32>(y16[c], 0u, 0u);
        }
        return bitcast<vec4<u32>>(y32[c]);
    }
    if (f16) {
        return vec4<u32>(base16[c], 0u, 0u);
    }
    return bitcast<vec4<u32>>(base32[c]);
}

fn decode(f16: bool, w: vec4<u32>) -> vec4<f32> {
    if (f16) {
        return unpack4(w.xy);
    }
    return bitcast<vec4<f32>>(w);
}

fn put_whole(f16: bool, m: u32, col: u32, m0: u32, tm: u32, v: vec4<f32>) {
    if (m >= tm) {
        return;
    }
    put4(f16, ((m0 + m) * lora_out() + col) >> 2u, v);
}

fn tb(f16: bool, g: u32, lid: u32) {
    let chunks_out = (lora_out() + 3u) / 4u;
    let rt = 16u * K;
    // Rows between a thread's steps: the row groups (WG / T) times 4 rows.
    let rb = 4u * (WG / T);
    let m0 = (g / p.col_blocks) * rt;
    let tm = min(rt, p.rows - m0);
    let r = lora_rank();
    let r4 = (r + 3u) / 4u * 4u;
    let rq = r4 / 4u;
    let cc = (g % p.col_blocks) * T + lid % T;
    let live = cc < chunks_out;
    let col = 4u * min(cc, chunks_out - 1u);
    let nl = min(4u, lora_out() - col);
    let aligned = lora_out() % 4u == 0u;
    let rg = (lid / T) * 4u;
    // Threads on whole aligned chunks (all but a ragged last one) take the fast loop below,
    // which has no code for partial chunks: with that code inside it, the loop measured
    // 66 µs instead of 42 (f16, H200), as its registers are sized for the slow path too.
    let whole = live && aligned && nl == 4u;
    // B's first 16 ranks at the thread's columns stay in registers for all its rows; the
    // first 4 rows' base chunks are loaded before t is staged, so the loads overlap it.
    var n0 = vec4<u32>(0u);
    var n1 = vec4<u32>(0u);
    var n2 = vec4<u32>(0u);
    var n3 = vec4<u32>(0u);
    var q0 = mat4x4<f32>();
    var q1 = mat4x4<f32>();
    var q2 = mat4x4<f32>();
    var q3 = mat4x4<f32>();
    if (whole) {
        n0 = base_raw(f16, rg, col, m0, tm);
        n1 = base_raw(f16, rg + 1u, col, m0, tm);
        n2 = base_raw(f16, rg + 2u, col, m0, tm);
        n3 = base_raw(f16, rg + 3u, col, m0, tm);
        q0 = b_quad_whole(f16, 0u, col);
        q1 = b_quad_whole(f16, 4u, col);
        q2 = b_quad_whole(f16, 8u, col);
        q3 = b_quad_whole(f16, 12u, col);
    }
    // The tile's rows of t (the k slices summed, or rows of A for the merge), one rank per
    // thread at a time.
    for (var i = lid; i < tm * r4; i += WG) {
        let mm = i / r4;
        let j = i % r4;
        var v = 0.0;
        if (j < r) {
            if (mode() == 3u) {
                v = ld1(f16, 1u, (m0 + mm) * r + j);
            } else {
                v = slice_sum((m0 + mm) * r4 + j, p.rows * r4);
            }
        }
        t4[mm * rq + j / 4u][j % 4u] = v;
    }
    workgroupBarrier();
    if (whole) {
        // Blocks of rb rows, 4 a thread; the next block's base is loaded before this one is used.
        for (var m = rg; m < tm; m += rb) {
            let c0 = n0;
            let c1 = n1;
            let c2 = n2;
            let c3 = n3;
            n0 = base_raw(f16, m + rb, col, m0, tm);
            n1 = base_raw(f16, m + rb + 1u, col, m0, tm);
            n2 = base_raw(f16, m + rb + 2u, col, m0, tm);
            n3 = base_raw(f16, m + rb + 3u, col, m0, tm);
            put_whole(f16, m, col, m0, tm, tb_row_whole(f16, m, rq, decode(f16, c0), q0, q1, q2, q3, col));
            put_whole(f16, m + 1u, col, m0, tm, tb_row_whole(f16, m + 1u, rq, decode(f16, c1), q0, q1, q2, q3, col));
            put_whole(f16, m + 2u, col, m0, tm, tb_row_whole(f16, m + 2u, rq, decode(f16, c2), q0, q1, q2, q3, col));
            put_whole(f16, m + 3u, col, m0, tm, tb_row_whole(f16, m + 3u, rq, decode(f16, c3), q0, q1, q2, q3, col));
        }
        return;
    }
    if (!live) {
        return;
    }
    // A ragged last chunk, or rows that are not 4-aligned: element-wise loads and stores, no
    // prefetch.
    q0 = b_quad(f16, 0u, col, aligned);
    q1 = b_quad(f16, 4u, col, aligned);
    q2 = b_quad(f16, 8u, col, aligned);
    q3 = b_quad(f16, 12u, col, aligned);
    for (var m = rg; m < tm; m += rb) {
        for (var i = 0u; i < 4u; i++) {
            let v = base_at(f16, m + i, col, nl, aligned, m0, tm);
            finish(f16, m + i, col, nl, aligned, m0, tm, tb_row(f16, m + i, rq, v, q0, q1, q2, q3, col, aligned));
        }
    }
}

fn xa_skip(g: u32) -> bool {
    let rw = xa_rows() * (WG / T);
    return g >= ((p.rows + rw - 1u) / rw) * p.slices;
}

fn tb_skip(g: u32) -> bool {
    return g >= ((p.rows + 16u * K - 1u) / (16u * K)) * p.col_blocks;
}

@compute @workgroup_size(WG)
fn lora_f32_xa(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (xa_skip(g)) { return; }
    xa(false, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f16_xa(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (xa_skip(g)) { return; }
    xa(true, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f32_tb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (tb_skip(g)) { return; }
    tb(false, g, lid);
}

@compute @workgroup_size(WG)
fn lora_f16_tb(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (tb_skip(g)) { return; }
    tb(true, g, lid);
}

// ---- Skinny form: few rows (decoding, small batches), one dispatch ----
// Workgroup g takes row tile g / col_blocks (K rows: 1, 2 or 4) and column block g % col_blocks
// (per_pass chunks of 4 columns).
// Phase 1: each workgroup computes its rows' t = s·x·A itself. Thread lid takes rank quad
// q = lid % QP (QP: the rank's quads rounded up to a power of two) and k quads lid / QP,
// lid / QP + WG / QP, ...: the A loads of a subgroup lie side by side in whole rows of A, and a
// thread issues the loads of two trips (8 rows of A, 2K chunks of x) before its first FMA. The
// partial sums of a quad meet by butterfly shuffles inside each subgroup, then through shared
// memory across subgroups (lanes are assumed to be numbered lid % subgroup size, as in rows.wgsl).
// Phase 2: the (row, column chunk) items of the block over the threads; an item is its base
// chunk plus t·B over the rank, 16 rows of B loaded before their FMAs.

var<workgroup> sk_part: array<vec4<f32>, 1024>; // partial sums: QP x (WG / max(sg, QP))
var<workgroup> sk_t: array<vec4<f32>, 128>;     // s·t: K rows x 32 rank quads

fn sk_qp() -> u32 {
    let r4 = (lora_rank() + 3u) / 4u;
    var q = 1u;
    while (q < r4) {
        q = q << 1u;
    }
    return q;
}

// Row k of A at rank quad q (0 past the k axis or the rank).
fn sk_a(f16: bool, k: u32, q: u32) -> vec4<f32> {
    if (k >= p.k_in) {
        return vec4<f32>(0.0);
    }
    let e = k * lora_rank() + 4u * q;
    if (all_aligned()) {
        return ld4(f16, 1u, e >> 2u);
    }
    return ld4_at(f16, 1u, e, lora_rank() % 4u == 0u, k * lora_rank() + lora_rank());
}

// x[m0 + i][k .. k + 4] (0 for rows past the tile's `nrow` or k past the axis).
fn sk_x(f16: bool, m0: u32, i: u32, nrow: u32, k: u32) -> vec4<f32> {
    if (i >= nrow || k >= p.k_in) {
        return vec4<f32>(0.0);
    }
    let e = (m0 + i) * p.k_in + k;
    if (all_aligned()) {
        return ld4(f16, 0u, e >> 2u);
    }
    return ld4_at(f16, 0u, e, p.k_in % 4u == 0u, (m0 + i) * p.k_in + p.k_in);
}

// acc + x (4 k) times rows a0 .. a3 of A.
fn sk_mac(acc: vec4<f32>, x: vec4<f32>, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) -> vec4<f32> {
    return acc + x.x * a0 + x.y * a1 + x.z * a2 + x.w * a3;
}

// Row m of s·t: the threads' partial sums v of rank quad lid % QP, added up, into sk_t.
fn sk_reduce(v: vec4<f32>, m: u32, lid: u32, sg: u32, qp: u32) {
    var x = v;
    for (var off = qp; off < sg; off = off << 1u) {
        x += subgroupShuffleXor(x, off);
    }
    let span = max(sg, qp);
    let per = WG / span;
    workgroupBarrier();
    if (lid % sg < qp) {
        sk_part[(lid % qp) * per + lid / span] = x;
    }
    workgroupBarrier();
    // per is a power of two of at least 2 (WG >= 256, subgroups at most 128, QP at most 32).
    if (lid < qp) {
        var s0 = vec4<f32>(0.0);
        var s1 = vec4<f32>(0.0);
        for (var i = 0u; i < per; i += 2u) {
            s0 += sk_part[lid * per + i];
            s1 += sk_part[lid * per + i + 1u];
        }
        sk_t[m * 32u + lid] = p.scale * (s0 + s1);
    }
}

fn sk_xa(f16: bool, m0: u32, nrow: u32, lid: u32, sg: u32) {
    let qp = sk_qp();
    let q = lid % qp;
    if (mode() == 3u) {
        // Merge: t is rows of A.
        for (var i = lid; i < K * qp; i += WG) {
            // Quads past the rank stay 0 and unread: A's last row ends at its rank.
            var v = vec4<f32>(0.0);
            if (i / qp < nrow && 4u * (i % qp) < lora_rank()) {
                v = p.scale * sk_a(f16, m0 + i / qp, i % qp);
            }
            sk_t[(i / qp) * 32u + i % qp] = v;
        }
        return;
    }
    let lanes = WG / qp;
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    if (4u * q < lora_rank()) {
        for (var k = 4u * (lid / qp); k < p.k_in; k += 8u * lanes) {
            let k2 = k + 4u * lanes;
            let a0 = sk_a(f16, k, q);
            let a1 = sk_a(f16, k + 1u, q);
            let a2 = sk_a(f16, k + 2u, q);
            let a3 = sk_a(f16, k + 3u, q);
            let b0 = sk_a(f16, k2, q);
            let b1 = sk_a(f16, k2 + 1u, q);
            let b2 = sk_a(f16, k2 + 2u, q);
            let b3 = sk_a(f16, k2 + 3u, q);
            let x0 = sk_x(f16, m0, 0u, nrow, k);
            let y0 = sk_x(f16, m0, 0u, nrow, k2);
            c0 = sk_mac(sk_mac(c0, x0, a0, a1, a2, a3), y0, b0, b1, b2, b3);
            if (K > 1u) {
                let x1 = sk_x(f16, m0, 1u, nrow, k);
                let y1 = sk_x(f16, m0, 1u, nrow, k2);
                c1 = sk_mac(sk_mac(c1, x1, a0, a1, a2, a3), y1, b0, b1, b2, b3);
            }
            if (K > 2u) {
                let x2 = sk_x(f16, m0, 2u, nrow, k);
                let y2 = sk_x(f16, m0, 2u, nrow, k2);
                let x3 = sk_x(f16, m0, 3u, nrow, k);
                let y3 = sk_x(f16, m0, 3u, nrow, k2);
                c2 = sk_mac(sk_mac(c2, x2, a0, a1, a2, a3), y2, b0, b1, b2, b3);
                c3 = sk_mac(sk_mac(c3, x3, a0, a1, a2, a3), y3, b0, b1, b2, b3);
            }
        }
    }
    sk_reduce(c0, 0u, lid, sg, qp);
    if (K > 1u) {
        sk_reduce(c1, 1u, lid, sg, qp);
    }
    if (K > 2u) {
        sk_reduce(c2, 2u, lid, sg, qp);
        sk_reduce(c3, 3u, lid, sg, qp);
    }
}

// Rank j of B at column col (0 past the rank).
fn sk_b(f16: bool, j: u32, col: u32, aligned: bool) -> vec4<f32> {
    if (j >= lora_rank()) {
        return vec4<f32>(0.0);
    }
    let e = j * lora_out() + col;
    if (all_aligned()) {
        return ld4(f16, 2u, e >> 2u);
    }
    return ld4_at(f16, 2u, e, aligned, j * lora_out() + lora_out());
}

// acc + t quad tq (ranks j .. j + 4) times rows j .. j + 4 of B at col.
fn sk_bmac(f16: bool, acc: vec4<f32>, tq: vec4<f32>, j: u32, col: u32, aligned: bool) -> vec4<f32> {
    return acc + tq.x * sk_b(f16, j, col, aligned) + tq.y * sk_b(f16, j + 1u, col, aligned) + tq.z * sk_b(f16, j + 2u, col, aligned)
        + tq.w * sk_b(f16, j + 3u, col, aligned);
}

fn sk_tb(f16: bool, m0: u32, nrow: u32, cblock: u32, lid: u32) {
    let r4 = (lora_rank() + 3u) / 4u;
    let chunks_out = (lora_out() + 3u) / 4u;
    let cpb = p.per_pass;
    let c_first = cblock * cpb;
    let ncols = min(cpb, chunks_out - min(chunks_out, c_first));
    let aligned = lora_out() % 4u == 0u;
    for (var i = lid; i < K * cpb; i += WG) {
        let m = i / cpb;
        if (m >= nrow || i % cpb >= ncols) {
            continue;
        }
        let col = 4u * (c_first + i % cpb);
        let nl = min(4u, lora_out() - col);
        var acc = base_at(f16, m, col, nl, aligned, m0, nrow);
        var jq = 0u;
        for (; jq + 4u <= r4; jq += 4u) {
            let t0 = sk_t[m * 32u + jq];
            let t1 = sk_t[m * 32u + jq + 1u];
            let t2 = sk_t[m * 32u + jq + 2u];
            let t3 = sk_t[m * 32u + jq + 3u];
            acc = sk_bmac(f16, sk_bmac(f16, acc, t0, 4u * jq, col, aligned), t1, 4u * jq + 4u, col, aligned);
            acc = sk_bmac(f16, sk_bmac(f16, acc, t2, 4u * jq + 8u, col, aligned), t3, 4u * jq + 12u, col, aligned);
        }
        for (; jq < r4; jq++) {
            acc = sk_bmac(f16, acc, sk_t[m * 32u + jq], 4u * jq, col, aligned);
        }
        finish(f16, m, col, nl, aligned, m0, nrow, acc);
    }
}

fn skinny(f16: bool, g: u32, lid: u32, sg: u32) {
    let m0 = (g / p.col_blocks) * K;
    let nrow = min(K, p.rows - m0);
    sk_xa(f16, m0, nrow, lid, sg);
    workgroupBarrier();
    sk_tb(f16, m0, nrow, g % p.col_blocks, lid);
}

fn skinny_skip(g: u32) -> bool {
    return g >= ((p.rows + K - 1u) / K) * p.col_blocks;
}

@compute @workgroup_size(WG)
fn lora_f32_skinny(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_size) sg: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skinny_skip(g)) { return; }
    skinny(false, g, lid, sg);
}

@compute @workgroup_size(WG)
fn lora_f16_skinny(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                   @builtin(subgroup_size) sg: u32) {
    let g = wid.x + wid.y * nwg.x;
    if (skinny_skip(g)) { return; }
    skinny(true, g, lid, sg);
}
