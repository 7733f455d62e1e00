// LoRA: y = base + s * (x A) B, with x [M, in], A [in, r], B [r, out], base and y [M, out].
// The low-rank product t = x A (TM x r per workgroup) lives in shared memory and is never
// written to device memory. One dispatch.
//
// Bindings (f32): 0 x, 1 A, 2 B, 3 base, 4 y: array<vec4<f32>>.
// Bindings (f16): 8 x, 9 A, 10 B, 11 base, 12 y: array<vec2<u32>> (4 halves each); 13 y as
//   words, for writes of single halves (odd `out`). Every entry point refers to both sets, so
//   all slots are bound (aliases of the same buffers).
// Immediates: rows M, in, r, out, scale (f32 bits), column blocks.
// MODE: 0 y = s (x A) B;  1 y = base + s (x A) B;  2 y += s (x A) B (in place; base unused);
//       3 merge: y = base + s A B, rows of A taking the place of x A (x unused).
//
// Work split: workgroup g takes row tile g / col_blocks (TM = K rows) and column block
// g % col_blocks (T chunks of 4 columns per thread). Phase 1: the k axis (in) is split over all
// WG threads, 4 k at a time; each thread accumulates TM x JB partial sums (JB = 16 / TM * 4
// columns of A per sweep), reduced with subgroupAdd and then across subgroups in shared
// memory. Phase 2: each thread owns columns 4c..4c+3 and sums t[m][j] * B[j][4c..] over j for
// the TM rows, so each B load serves TM rows.

override WG: u32 = 256u;
override T: u32 = 4u;   // column chunks per thread per block
override K: u32 = 4u;   // rows per tile (TM), 1..16
override MODE: u32 = 1u;

const TMAX: u32 = 16u;
const RMAX: u32 = 128u;
const SGMAX: u32 = 64u; // subgroups per workgroup at most (WG 256 / subgroup size 4)

struct Params {
    rows: u32,
    k_in: u32,
    rank: u32,
    n_out: u32,
    scale: f32,
    col_blocks: u32,
    _p0: u32,
    _p1: u32,
}

var<immediate> p: Params;

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

var<workgroup> t_sh: array<f32, 2048>; // TMAX * RMAX
var<workgroup> part: array<vec4<f32>, 1024>; // SGMAX * TMAX

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

// Element e of buffer `which`.
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
        return unpack2x16float(w[(e >> 1u) & 1u])[e & 1u];
    }
    switch which {
        case 0u: { return x32[e >> 2u][e & 3u]; }
        case 1u: { return a32[e >> 2u][e & 3u]; }
        case 2u: { return b32[e >> 2u][e & 3u]; }
        case 3u: { return base32[e >> 2u][e & 3u]; }
        default: { return y32[e >> 2u][e & 3u]; }
    }
}

// Elements e..e+3 of buffer `which`, lanes with index >= lim read as 0; one vector load when
// the four are one aligned chunk.
fn ld4_at(f16: bool, which: u32, e: u32, aligned: bool, lim: u32) -> vec4<f32> {
    if (aligned && e + 4u <= lim) {
        return ld4(f16, which, e >> 2u);
    }
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (e + k < lim) {
            v[k] = ld1(f16, which, e + k);
        }
    }
    return v;
}

fn store_y(f16: bool, e: u32, v: vec4<f32>, nlanes: u32, aligned: bool) {
    if (!f16) {
        if (aligned && nlanes == 4u) {
            y32[e >> 2u] = v;
            return;
        }
        for (var k = 0u; k < nlanes; k++) {
            y32[(e + k) >> 2u][(e + k) & 3u] = v[k];
        }
        return;
    }
    if (aligned && nlanes == 4u) {
        y16[e >> 2u] = vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
        return;
    }
    // Halves one at a time: a word may be shared with a lane of another thread or workgroup.
    for (var k = 0u; k < nlanes; k++) {
        let a = e + k;
        let bits = pack2x16float(vec2<f32>(v[k], 0.0)) & 0xffffu;
        if ((a & 1u) == 0u) {
            atomicAnd(&y16w[a >> 1u], 0xffff0000u);
            atomicOr(&y16w[a >> 1u], bits);
        } else {
            atomicAnd(&y16w[a >> 1u], 0x0000ffffu);
            atomicOr(&y16w[a >> 1u], bits << 16u);
        }
    }
}

fn lora(f16: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32) {
    let g = wid.x + wid.y * nwg.x;
    let tile = g / p.col_blocks;
    let cblock = g % p.col_blocks;
    let m0 = tile * K;
    let tm = min(K, p.rows - m0);
    let r = p.rank;

    // ---- phase 1: t = x A for the tile's rows (or the rows of A, merging) ----
    if (MODE == 3u) {
        for (var i = lid; i < tm * r; i += WG) {
            t_sh[i] = ld1(f16, 1u, m0 * r + i);
        }
    } else {
        let jb = (TMAX / K) * 4u; // columns of A per sweep
        let in_aligned = p.k_in % 4u == 0u;
        let a_aligned = r % 4u == 0u;
        let sgid = lid / sg;
        let nsg = WG / sg;
        for (var j0 = 0u; j0 < r; j0 += jb) {
            var acc: array<vec4<f32>, TMAX>;
            for (var i = 0u; i < TMAX; i++) {
                acc[i] = vec4<f32>(0.0);
            }
            for (var k = 4u * lid; k < p.k_in; k += 4u * WG) {
                // x[m][k .. k + 4] for the tile's rows: one vector load each when aligned.
                var xs: array<vec4<f32>, TMAX>;
                for (var m = 0u; m < K; m++) {
                    if (m < tm) {
                        let row = (m0 + m) * p.k_in;
                        xs[m] = ld4_at(f16, 0u, row + k, in_aligned, row + p.k_in);
                    } else {
                        xs[m] = vec4<f32>(0.0);
                    }
                }
                for (var kk = 0u; kk < 4u; kk++) {
                    if (k + kk < p.k_in) {
                        // Row k + kk of A, columns j0 .. j0 + jb.
                        for (var q = 0u; q < jb / 4u; q++) {
                            let j = j0 + 4u * q;
                            if (j < r) {
                                let arow = (k + kk) * r;
                                let a = ld4_at(f16, 1u, arow + j, a_aligned, arow + r);
                                for (var m = 0u; m < K; m++) {
                                    acc[m * (jb / 4u) + q] += xs[m][kk] * a;
                                }
                            }
                        }
                    }
                }
            }
            // Reduce every accumulator over the workgroup.
            for (var i = 0u; i < TMAX; i++) {
                let s = subgroupAdd(acc[i]);
                if (lid % sg == 0u) {
                    part[sgid * TMAX + i] = s;
                }
            }
            workgroupBarrier();
            if (lid < TMAX) {
                var s = vec4<f32>(0.0);
                for (var w = 0u; w < nsg; w++) {
                    s += part[w * TMAX + lid];
                }
                let m = lid / (jb / 4u);
                let q = lid % (jb / 4u);
                for (var k = 0u; k < 4u; k++) {
                    let j = j0 + 4u * q + k;
                    if (m < tm && j < r) {
                        t_sh[m * r + j] = s[k];
                    }
                }
            }
            workgroupBarrier();
        }
    }
    workgroupBarrier();

    // ---- phase 2: y[m][cols] = base + s * sum_j t[m][j] * B[j][cols] ----
    let out_aligned = p.n_out % 4u == 0u;
    let chunks_out = (p.n_out + 3u) / 4u;
    for (var i = 0u; i < T; i++) {
        let cc = (cblock * T + i) * WG + lid;
        if (cc < chunks_out) {
            let col = 4u * cc;
            let nl = min(4u, p.n_out - col);
            var acc: array<vec4<f32>, TMAX>;
            for (var m = 0u; m < TMAX; m++) {
                acc[m] = vec4<f32>(0.0);
            }
            for (var j = 0u; j < r; j++) {
                let b = ld4_at(f16, 2u, j * p.n_out + col, out_aligned, j * p.n_out + p.n_out);
                for (var m = 0u; m < K; m++) {
                    acc[m] += t_sh[m * r + j] * b;
                }
            }
            for (var m = 0u; m < K; m++) {
                if (m < tm) {
                    let e = (m0 + m) * p.n_out + col;
                    var v = p.scale * acc[m];
                    if (MODE == 1u || MODE == 3u) {
                        v += ld4_at(f16, 3u, e, out_aligned, e + nl);
                    } else if (MODE == 2u) {
                        v += ld4_at(f16, 4u, e, out_aligned, e + nl);
                    }
                    store_y(f16, e, v, nl, out_aligned);
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn lora_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (wid.x + wid.y * nwg.x >= ((p.rows + K - 1u) / K) * p.col_blocks) { return; }
    lora(false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn lora_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (wid.x + wid.y * nwg.x >= ((p.rows + K - 1u) / K) * p.col_blocks) { return; }
    lora(true, wid, nwg, lid, sg);
}
