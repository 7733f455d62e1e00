// RMSNorm over the last dimension: y = x / sqrt(mean(x^2) + eps) * w, and the fused residual
// step of Llama-style blocks: h = x + r, y = rmsnorm(h) * w, writing both h and y.
//
// Bindings (f32): 0 x, 1 w (row-length weight), 2 r (residual), 3 y, 4 h: array<vec4<f32>>.
// Bindings (f16): 8 x, 9 w, 10 r, 11 y, 12 h: array<vec2<u32>> (4 halves each); 13 and 14 are
//   y and h again as words, for the atomic writes of the words two rows share (odd lengths).
// Every entry point refers to both sets (the helpers branch on the dtype), so all slots are
// bound: the other dtype's slots alias the same buffers, and unused inputs (no weight, no
// residual) alias x, unused outputs y. Sizes (uniform, binding 31): rows, n, eps.
// MODE bit 0: multiply by w. Bit 1 (add + RMSNorm, aligned rows): form h * w before the
// reduction, so that w's loads follow the stores of h instead of waiting behind the reduction.
// Bits 8..11 (RMSNorm, aligned rows): the weight chunks a thread loads before the reduction and
// uses after it (the rest after it). Bits 1 and 8..11 are set by the host's rule (rms_norm.rs).
//
// Work split: rows.wgsl. `*_reg` holds the row in registers (one read of each input, one write
// of each output); `*_online` loops twice over the row (the second loop rereads x, or for
// add_rms_norm the h it wrote itself); `*_persist` (f16, aligned rows) walks rows with a fixed
// number of workgroups, loading the next row while it finishes the current one.

struct Params {
    rows: u32,
    n: u32,
    eps: f32,
    zero: u32, // always 0 (see round_sum)
    _p1: u32,
    _p2: u32,
    _p3: u32,
    _p4: u32,
}

@group(0) @binding(31) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> x32: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w32: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> r32: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y32: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> h32: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> x16: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read> w16: array<vec2<u32>>;
@group(0) @binding(10) var<storage, read> r16: array<vec2<u32>>;
@group(0) @binding(11) var<storage, read_write> y16: array<vec2<u32>>;
@group(0) @binding(12) var<storage, read_write> h16: array<vec2<u32>>;
@group(0) @binding(13) var<storage, read_write> y16w: array<atomic<u32>>;
@group(0) @binding(14) var<storage, read_write> h16w: array<atomic<u32>>;

fn unpack4(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn pack4(v: vec4<f32>) -> vec2<u32> {
    return vec2<u32>(pack2x16float(v.xy), pack2x16float(v.zw));
}

// Merges the halves of `bits` selected by in0/in1 into word `w` of y (which = 0) or h (1).
fn store16_word(which: u32, w: u32, bits: u32, in0: bool, in1: bool) {
    if (!in0 && !in1) {
        return;
    }
    var keep = 0u;
    if (!in0) {
        keep = 0x0000ffffu;
    }
    if (!in1) {
        keep = 0xffff0000u;
    }
    if (which == 0u) {
        if (keep == 0u) {
            atomicStore(&y16w[w], bits);
        } else {
            atomicAnd(&y16w[w], keep);
            atomicOr(&y16w[w], bits & ~keep);
        }
    } else {
        if (keep == 0u) {
            atomicStore(&h16w[w], bits);
        } else {
            atomicAnd(&h16w[w], keep);
            atomicOr(&h16w[w], bits & ~keep);
        }
    }
}

fn store(f16: bool, which: u32, c: u32, v: vec4<f32>, mask: vec4<bool>) {
    if (f16) {
        let b = pack4(v);
        if (all(mask)) {
            if (which == 0u) {
                y16[c] = b;
            } else {
                h16[c] = b;
            }
        } else {
            store16_word(which, 2u * c, b.x, mask.x, mask.y);
            store16_word(which, 2u * c + 1u, b.y, mask.z, mask.w);
        }
        return;
    }
    if (all(mask)) {
        if (which == 0u) {
            y32[c] = v;
        } else {
            h32[c] = v;
        }
        return;
    }
    // Lane by lane, with fixed components: a vector value indexed at run time is kept in
    // local memory.
    if (which == 0u) {
        if (mask.x) {
            y32[c].x = v.x;
        }
        if (mask.y) {
            y32[c].y = v.y;
        }
        if (mask.z) {
            y32[c].z = v.z;
        }
        if (mask.w) {
            y32[c].w = v.w;
        }
    } else {
        if (mask.x) {
            h32[c].x = v.x;
        }
        if (mask.y) {
            h32[c].y = v.y;
        }
        if (mask.z) {
            h32[c].z = v.z;
        }
        if (mask.w) {
            h32[c].w = v.w;
        }
    }
}

fn load_x(f16: bool, c: u32) -> vec4<f32> {
    if (f16) {
        return unpack4(x16[c]);
    }
    return x32[c];
}

fn load_r(f16: bool, c: u32) -> vec4<f32> {
    if (f16) {
        return unpack4(r16[c]);
    }
    return r32[c];
}

fn load_h(f16: bool, c: u32) -> vec4<f32> {
    if (f16) {
        return unpack4(h16[c]);
    }
    return h32[c];
}

fn weight1(f16: bool, j: u32) -> f32 {
    if (f16) {
        let h = unpack2x16float(w16[j >> 2u][(j >> 1u) & 1u]);
        return select(h.x, h.y, (j & 1u) != 0u);
    }
    return w32[j >> 2u][j & 3u];
}

// The weights of the lanes of chunk c (1 where masked out or when there is no weight).
fn weights(f16: bool, c: u32, row: Row, mask: vec4<bool>) -> vec4<f32> {
    if ((MODE & 1u) == 0u) {
        return vec4<f32>(1.0);
    }
    if (aligned()) {
        // Rows start 4-aligned: chunk c of the row is chunk c - c0 of the weight.
        let j = c - row.c0;
        if (f16) {
            return unpack4(w16[j]);
        }
        return w32[j];
    }
    let j = 4u * c - row.start;
    var w = vec4<f32>(1.0);
    if (mask.x) {
        w.x = weight1(f16, j);
    }
    if (mask.y) {
        w.y = weight1(f16, j + 1u);
    }
    if (mask.z) {
        w.z = weight1(f16, j + 2u);
    }
    if (mask.w) {
        w.w = weight1(f16, j + 3u);
    }
    return w;
}

// The f16 h as stored, packed. `zero` (0 at run time, from the uniform) keeps the compiler from
// folding a later unpack of these bits back into a: NVIDIA's driver 580 did, and y came out as
// the norm of the unrounded sum.
fn pack_h(a: vec4<f32>) -> vec2<u32> {
    return pack4(a) | vec2<u32>(p.zero);
}

// h as stored: y is the norm of the h the caller gets back, rounded to f16 for f16.
fn round_sum(f16: bool, a: vec4<f32>) -> vec4<f32> {
    if (f16) {
        return unpack4(pack_h(a));
    }
    return a;
}

fn sumsq(v: vec4<f32>, c: u32, row: Row) -> f32 {
    if (aligned()) {
        // Rows of a multiple of 4 hold only full chunks.
        return dot(v, v);
    }
    let u = select(vec4<f32>(0.0), v, lane_mask(c, row));
    return dot(u, u);
}

// Vector store of a whole chunk to y (which = 0) or h (1).
fn store_full(f16: bool, which: u32, c: u32, v: vec4<f32>) {
    if (f16) {
        if (which == 0u) {
            y16[c] = pack4(v);
        } else {
            h16[c] = pack4(v);
        }
    } else {
        if (which == 0u) {
            y32[c] = v;
        } else {
            h32[c] = v;
        }
    }
}

// MODE bit: h * w formed before the reduction (add + RMSNorm, aligned, weighted).
const WFOLD: u32 = 2u;

// Weight chunks loaded before the reduction (RMSNorm, aligned, weighted): MODE bits 8..11.
fn wpre() -> u32 {
    return (MODE >> 8u) & 15u;
}

// Weight chunk j (rows 4-aligned).
fn load_w(f16: bool, j: u32) -> vec4<f32> {
    if (f16) {
        return unpack4(w16[j]);
    }
    return w32[j];
}

// Weights of the four lanes of a full chunk c of a row that is not 4-aligned.
fn gather_w(f16: bool, c: u32, row: Row) -> vec4<f32> {
    let j = 4u * c - row.start;
    return vec4<f32>(weight1(f16, j), weight1(f16, j + 1u), weight1(f16, j + 2u), weight1(f16, j + 3u));
}

// The register variant; `add` selects add_rms_norm (h = x + r written too). Register
// arrays are indexed by unrolled loop counters only (see rows.wgsl).
fn rms_reg(f16: bool, add: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32) {
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    // Every load of the row first, then the arithmetic: all K loads are in flight together.
    // add: x + r chunk by chunk, with no second register array for r.
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row)) {
            if (add) {
                v[i] = round_sum(f16, load_x(f16, c) + load_r(f16, c));
            } else {
                v[i] = load_x(f16, c);
            }
        }
    }
    if (add) {
        for (var i = 0u; i < K; i++) {
            let c = row.c0 + row.tid + i * T;
            if (in_row(c, row) && full(c, row)) {
                store_full(f16, 1u, c, v[i]);
            }
        }
    }
    var ss = 0.0;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row)) {
            ss += sumsq(v[i], c, row);
        }
    }
    if (add) {
        for (var b = 0u; b < 2u; b++) {
            let i = boundary_slot(b, row);
            if (i < KMAX) {
                let c = row.c0 + row.tid + i * T;
                store(f16, 1u, c, pick(&v, i), lane_mask(c, row));
            }
        }
    }
    let weighted = (MODE & 1u) != 0u;
    // Aligned rows: the weights' loads go out before the reduction where registers allow, so
    // that their latency overlaps it (wpre chunks, RMSNorm), or right after the stores of h
    // (add: h * w formed in place; the sum of squares is already taken).
    let fold = aligned() && weighted && add && (MODE & WFOLD) != 0u;
    var wp: array<vec4<f32>, KMAX>;
    if (aligned() && weighted) {
        for (var i = 0u; i < K; i++) {
            let c = row.c0 + row.tid + i * T;
            if (in_row(c, row)) {
                if (fold) {
                    v[i] *= load_w(f16, c - row.c0);
                } else if (!add && i < wpre()) {
                    wp[i] = load_w(f16, c - row.c0);
                }
            }
        }
    }
    let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);
    if (aligned()) {
        // Rows are 4-aligned: every chunk is full, and weight chunks line up with row chunks.
        for (var i = 0u; i < K; i++) {
            let c = row.c0 + row.tid + i * T;
            if (in_row(c, row)) {
                var o = v[i] * inv;
                if (weighted && !fold) {
                    if (!add && i < wpre()) {
                        o *= wp[i];
                    } else {
                        o *= load_w(f16, c - row.c0);
                    }
                }
                store_full(f16, 0u, c, o);
            }
        }
        return;
    }
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row) && full(c, row)) {
            var o = v[i] * inv;
            if (weighted) {
                o *= gather_w(f16, c, row);
            }
            store_full(f16, 0u, c, o);
        }
    }
    for (var b = 0u; b < 2u; b++) {
        let i = boundary_slot(b, row);
        if (i < KMAX) {
            let c = row.c0 + row.tid + i * T;
            let mask = lane_mask(c, row);
            store(f16, 0u, c, pick(&v, i) * inv * weights(f16, c, row, mask), mask);
        }
    }
}

fn rms_online(f16: bool, add: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32) {
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var ss = 0.0;
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        var a = load_x(f16, c);
        let mask = lane_mask(c, row);
        if (add) {
            a = round_sum(f16, a + load_r(f16, c));
            store(f16, 1u, c, a, mask);
        }
        ss += sumsq(a, c, row);
    }
    let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        let mask = lane_mask(c, row);
        var a: vec4<f32>;
        if (add) {
            // This thread wrote chunk c of h above.
            a = load_h(f16, c);
        } else {
            a = load_x(f16, c);
        }
        store(f16, 0u, c, a * inv * weights(f16, c, row, mask), mask);
    }
}

// ---- persistent variant (f16, aligned rows, one row a workgroup): workgroup g takes rows g,
// g + G, g + 2G, ... (G workgroups) and loads the next row's chunks, packed, before it reduces
// and writes this one, so that a row's reduction and its writes overlap the next row's loads
// (as softmax_f16_persist). add: the next row's x and r are loaded side by side and summed
// (rounded to f16, as h is stored) after the current row is written. ----
fn rms_persist(add: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32) {
    let stride = nwg.x * nwg.y;
    let nc = p.n / 4u;
    let weighted = (MODE & 1u) != 0u;
    var r = wid.x + wid.y * nwg.x;
    // cur: this row's x (add: h), packed; nx / nr: the next row's x and r.
    var cur: array<vec2<u32>, KMAX>;
    var nx: array<vec2<u32>, KMAX>;
    var nr: array<vec2<u32>, KMAX>;
    // RMSNorm: the weight, loaded once and held across the workgroup's rows (H200, 4096 x
    // 32000: 149.7 → 142.9 µs). add + RMSNorm reloads it a row: held, it took 288 µs against
    // 274.5, its registers already holding three rows' worth.
    var wr: array<vec2<u32>, KMAX>;
    if (weighted && !add) {
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                wr[i] = w16[c];
            }
        }
    }
    for (var i = 0u; i < K; i++) {
        let c = lid + i * T;
        if (c < nc && r < p.rows) {
            nx[i] = x16[r * nc + c];
            if (add) {
                nr[i] = r16[r * nc + c];
            }
        }
    }
    while (r < p.rows) {
        for (var i = 0u; i < K; i++) {
            if (add) {
                cur[i] = pack_h(unpack4(nx[i]) + unpack4(nr[i]));
            } else {
                cur[i] = nx[i];
            }
        }
        let rn = r + stride;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc && rn < p.rows) {
                nx[i] = x16[rn * nc + c];
                if (add) {
                    nr[i] = r16[rn * nc + c];
                }
            }
        }
        var ss = 0.0;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                let u = unpack4(cur[i]);
                ss += dot(u, u);
                if (add) {
                    h16[r * nc + c] = cur[i];
                }
            }
        }
        let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                var o = unpack4(cur[i]) * inv;
                if (weighted && !add) {
                    o *= unpack4(wr[i]);
                } else if (weighted) {
                    o *= unpack4(w16[c]);
                }
                y16[r * nc + c] = pack4(o);
            }
        }
        r = rn;
    }
}

fn skip(wid: vec3<u32>, nwg: vec3<u32>) -> bool {
    return (wid.x + wid.y * nwg.x) * (WG / T) >= p.rows;
}

@compute @workgroup_size(WG)
fn rms_norm_f32_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_reg(false, false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn rms_norm_f16_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_reg(true, false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn rms_norm_f32_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_online(false, false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn rms_norm_f16_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_online(true, false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn add_rms_norm_f32_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_reg(false, true, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn add_rms_norm_f16_reg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_reg(true, true, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn add_rms_norm_f32_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_online(false, true, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn add_rms_norm_f16_online(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    if (skip(wid, nwg)) { return; }
    rms_online(true, true, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn rms_norm_f16_persist(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    rms_persist(false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn add_rms_norm_f16_persist(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    rms_persist(true, wid, nwg, lid, sg);
}
