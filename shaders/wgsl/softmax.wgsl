// Fused softmax over the last dimension: y = exp(x - max) / sum(exp(x - max)).
//
// Bindings (f32 entry points): 0 x: array<vec4<f32>> (read), 1 y: array<vec4<f32>>.
// Bindings (f16 entry points): 8 x: array<vec2<u32>> (read, 4 halves per element), 9 y, and
//   10 the same buffer as 9 seen as words, for the atomic writes of the words two rows share
//   (odd row lengths).
// Sizes (uniform, binding 31): rows, n (row length).
//
// Work split: a workgroup of WG threads takes WG / T consecutive rows; T consecutive threads
// share a row. A row is covered by 4-element chunks aligned to the buffer, so every load is a
// whole vec4 even when rows are not 4-aligned; lanes outside the row are masked. Thread t of a
// row takes chunks t, t + T, t + 2T, ...
//   `*_reg`: K chunks per thread held in registers: one read, one write per element.
//   `*_online`: loops over the row: a pass for the running max and rescaled sum, then a
//   pass that writes (two reads, one write), for rows longer than registers hold.
// Reductions: butterfly shuffles inside a subgroup, then shared memory across the subgroups
// of a row; correct for any subgroup size that divides WG (or for T < subgroup size).

struct Params {
    rows: u32,
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    _p3: u32,
    _p4: u32,
    _p5: u32,
}

@group(0) @binding(31) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> x32: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y32: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> x16: array<vec2<u32>>;
@group(0) @binding(9) var<storage, read_write> y16: array<vec2<u32>>;
@group(0) @binding(10) var<storage, read_write> y16w: array<atomic<u32>>;

// Combines per-thread (max, sum) pairs of a row: sum rescaled to the row max.
fn row_max_sum(m_in: f32, s_in: f32, lid: u32, sg: u32) -> vec2<f32> {
    let ms = butterfly_ms(vec2<f32>(m_in, s_in), min(T, sg));
    if (T <= sg) {
        return ms;
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        red[lid / sg] = ms.x;
        red2[lid / sg] = ms.y;
    }
    workgroupBarrier();
    // As row_reduce (rows.wgsl): lanes take the per = T / sg entries of the row, a butterfly
    // over width lanes combines them.
    let per = T / sg;
    let width = min(per, sg);
    let first = (lid / T) * per;
    let lane = lid % width;
    var acc = vec2<f32>(red[first + lane], red2[first + lane]);
    for (var j = lane + width; j < per; j += width) {
        acc = merge_ms(acc, vec2<f32>(red[first + j], red2[first + j]));
    }
    return butterfly_ms(acc, width);
}

// Two (max, sum) pairs as one: the sums rescaled to the larger max.
fn merge_ms(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    let mn = max(a.x, b.x);
    return vec2<f32>(mn, scale_sum(a.y, a.x, mn) + scale_sum(b.y, b.x, mn));
}

// The pairs of `width` neighbouring lanes (a power of two) merged by shuffles.
fn butterfly_ms(v: vec2<f32>, width: u32) -> vec2<f32> {
    var x = v;
    for (var off = 1u; off < width; off = off << 1u) {
        x = merge_ms(x, vec2<f32>(subgroupShuffleXor(x.x, off), subgroupShuffleXor(x.y, off)));
    }
    return x;
}

// s * exp(m - mn), where a sum of nothing (m = -inf) stays 0 instead of 0 * exp(nan).
fn scale_sum(s: f32, m: f32, mn: f32) -> f32 {
    if (s == 0.0) {
        return 0.0;
    }
    return s * exp(m - mn);
}

fn chunk_max(v: vec4<f32>, mask: vec4<bool>) -> f32 {
    let ninf = vec4<f32>(neg_inf());
    let u = select(ninf, v, mask);
    return max(max(u.x, u.y), max(u.z, u.w));
}

// ---- loads and stores per dtype ----

fn load32(c: u32) -> vec4<f32> {
    return x32[c];
}

fn load16(c: u32) -> vec4<f32> {
    return unpack16(x16[c]);
}

fn unpack16(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn store32(c: u32, v: vec4<f32>, mask: vec4<bool>) {
    if (all(mask)) {
        y32[c] = v;
        return;
    }
    // Lane by lane, with fixed components: a vector value indexed at run time is kept in
    // local memory.
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
}

fn store16(c: u32, v: vec4<f32>, mask: vec4<bool>) {
    let lo = pack2x16float(v.xy);
    let hi = pack2x16float(v.zw);
    if (all(mask)) {
        y16[c] = vec2<u32>(lo, hi);
        return;
    }
    store16_word(2u * c, lo, mask.x, mask.y);
    store16_word(2u * c + 1u, hi, mask.z, mask.w);
}

// Writes the halves of one word that belong to this row; a word shared with the next or
// previous row (odd row lengths) is merged atomically with what that row writes.
fn store16_word(w: u32, bits: u32, in0: bool, in1: bool) {
    if (in0 && in1) {
        atomicStore(&y16w[w], bits);
    } else if (in0) {
        atomicAnd(&y16w[w], 0xffff0000u);
        atomicOr(&y16w[w], bits & 0x0000ffffu);
    } else if (in1) {
        atomicAnd(&y16w[w], 0x0000ffffu);
        atomicOr(&y16w[w], bits & 0xffff0000u);
    }
}

// ---- register variant: K chunks per thread ----

struct Stats {
    m: f32,
    inv: f32,
}

// Given the chunks in registers, turns them into exp(x - max) (0 outside the row) and returns
// the row max and 1 / sum.
fn reg_softmax(v: ptr<function, array<vec4<f32>, KMAX>>, row: Row, lid: u32, sg: u32) -> Stats {
    // Rows of a multiple of 4 hold only full chunks: no lane masks (fewer instructions per
    // element, which f16 rows feel: they carry twice the elements per byte).
    var m = neg_inf();
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row)) {
            let u = (*v)[i];
            if (aligned()) {
                m = max(m, max(max(u.x, u.y), max(u.z, u.w)));
            } else {
                m = max(m, chunk_max(u, lane_mask(c, row)));
            }
        }
    }
    m = row_max(m, lid, sg);
    var s = 0.0;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        var e = vec4<f32>(0.0);
        if (in_row(c, row)) {
            e = exp((*v)[i] - m);
            if (!aligned()) {
                e = select(vec4<f32>(0.0), e, lane_mask(c, row));
            }
        }
        (*v)[i] = e;
        s += (e.x + e.y) + (e.z + e.w);
    }
    s = row_sum(s, lid, sg);
    return Stats(m, 1.0 / s);
}

@compute @workgroup_size(WG)
fn softmax_f32_reg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row)) {
            v[i] = x32[c];
        }
    }
    let st = reg_softmax(&v, row, lid, sg);
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row) && full(c, row)) {
            y32[c] = v[i] * st.inv;
        }
    }
    for (var b = 0u; b < 2u; b++) {
        let i = boundary_slot(b, row);
        if (i < KMAX) {
            let c = row.c0 + row.tid + i * T;
            store32(c, pick(&v, i) * st.inv, lane_mask(c, row));
        }
    }
}

@compute @workgroup_size(WG)
fn softmax_f16_reg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row)) {
            v[i] = load16(c);
        }
    }
    let st = reg_softmax(&v, row, lid, sg);
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (in_row(c, row) && full(c, row)) {
            let o = v[i] * st.inv;
            y16[c] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));
        }
    }
    for (var b = 0u; b < 2u; b++) {
        let i = boundary_slot(b, row);
        if (i < KMAX) {
            let c = row.c0 + row.tid + i * T;
            store16(c, pick(&v, i) * st.inv, lane_mask(c, row));
        }
    }
}

// ---- persistent variant (f16, aligned rows, one row a workgroup): workgroup g takes rows g,
// g + G, g + 2G, ... (G workgroups) and loads the next row's chunks, packed, before it reduces
// and writes this one, so that a row's reductions and its write overlap the next row's loads
// (a 32000-wide f16 row, one 1024-thread workgroup a multiprocessor: 75% of the copy with one
// row a workgroup, 94.5% persistent, in a probe on the H200). ----

@compute @workgroup_size(WG)
fn softmax_f16_persist(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    let stride = nwg.x * nwg.y;
    let nc = p.n / 4u;
    var r = wid.x + wid.y * nwg.x;
    var cur: array<vec2<u32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = lid + i * T;
        if (c < nc && r < p.rows) {
            cur[i] = x16[r * nc + c];
        }
    }
    while (r < p.rows) {
        let rn = r + stride;
        var nxt: array<vec2<u32>, KMAX>;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc && rn < p.rows) {
                nxt[i] = x16[rn * nc + c];
            }
        }
        var m = neg_inf();
        for (var i = 0u; i < K; i++) {
            if (lid + i * T < nc) {
                let u = unpack16(cur[i]);
                m = max(m, max(max(u.x, u.y), max(u.z, u.w)));
            }
        }
        m = row_max(m, lid, sg);
        var s = 0.0;
        for (var i = 0u; i < K; i++) {
            if (lid + i * T < nc) {
                let e = exp(unpack16(cur[i]) - m);
                s += (e.x + e.y) + (e.z + e.w);
            }
        }
        let inv = 1.0 / row_sum(s, lid, sg);
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                let o = exp(unpack16(cur[i]) - m) * inv;
                y16[r * nc + c] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));
            }
        }
        cur = nxt;
        r = rn;
    }
}

// ---- online variant: rows of any length ----

// Folds chunk value v into the running (max, sum) of this thread.
fn online_step(ms: vec2<f32>, v: vec4<f32>, mask: vec4<bool>) -> vec2<f32> {
    let cm = chunk_max(v, mask);
    let mn = max(ms.x, cm);
    if (mn == neg_inf()) {
        return ms;
    }
    let e = select(vec4<f32>(0.0), exp(v - mn), mask);
    return vec2<f32>(mn, scale_sum(ms.y, ms.x, mn) + (e.x + e.y) + (e.z + e.w));
}

@compute @workgroup_size(WG)
fn softmax_f32_online(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var ms = vec2<f32>(neg_inf(), 0.0);
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        ms = online_step(ms, load32(c), lane_mask(c, row));
    }
    let tot = row_max_sum(ms.x, ms.y, lid, sg);
    let inv = 1.0 / tot.y;
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        store32(c, exp(load32(c) - tot.x) * inv, lane_mask(c, row));
    }
}

@compute @workgroup_size(WG)
fn softmax_f16_online(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var ms = vec2<f32>(neg_inf(), 0.0);
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        ms = online_step(ms, load16(c), lane_mask(c, row));
    }
    let tot = row_max_sum(ms.x, ms.y, lid, sg);
    let inv = 1.0 / tot.y;
    for (var c = row.c0 + row.tid; c < row.c1; c += T) {
        store16(c, exp(load16(c) - tot.x) * inv, lane_mask(c, row));
    }
}
