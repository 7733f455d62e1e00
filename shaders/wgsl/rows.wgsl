// Row machinery shared by the row-wise kernels (softmax, RMSNorm); prepended to their files.
//
// A workgroup of WG threads takes WG / T consecutive rows; T consecutive threads share a row.
// A row is covered by 4-element chunks aligned to the buffer, so every load is a whole vec4 even
// when rows are not 4-aligned; lanes outside the row are masked. Thread t of a row takes chunks
// t, t + T, t + 2T, ... Reductions: butterfly shuffles inside a subgroup, then shared memory
// across the subgroups of a row; correct for any power-of-two subgroup size.

override WG: u32 = 256u;
override T: u32 = 256u;
override K: u32 = 4u;
override MODE: u32 = 0u; // op-specific (RMSNorm: bit 0 = has weight), and ALIGNED; every kernel takes the same constants

// MODE bit: every row starts and ends on a chunk boundary (n % 4 == 0). The code for partial
// chunks then folds away when the pipeline is made: reachable, it costs registers and
// instructions in the hot loops even when no thread runs it.
const ALIGNED: u32 = 16u;

const KMAX: u32 = 16u;

// MODE bit (register kernels, set by the host when n = 4 T K and rows are 4-aligned): the T
// threads' K chunks cover each row exactly, so no chunk slot lies past its row and the
// per-slot guards fold away (`in_row`). On the H200: softmax f16 4096 x 8192 41.5 -> 41.0 µs,
// add + RMSNorm f16 4096 x 4096 40.9 -> 39.8 (the host leaves it off for RMSNorm alone, which
// was slower with it: src/kernels/mod.rs, MODE_EXACT).
const EXACT: u32 = 32u;

var<workgroup> red: array<f32, 256>;
var<workgroup> red2: array<f32, 256>;


fn aligned() -> bool {
    return (MODE & ALIGNED) != 0u;
}

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

// One row as seen by one thread.
struct Row {
    start: u32, // first element (absolute)
    end: u32,   // one past the last element
    c0: u32,    // first chunk
    c1: u32,    // one past the last chunk
    tid: u32,   // thread index within the row
    valid: bool,
}

fn row_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, rows: u32, n: u32) -> Row {
    let g = wid.x + wid.y * nwg.x;
    let r = g * (WG / T) + lid / T;
    var row: Row;
    row.tid = lid % T;
    row.valid = r < rows;
    if (row.valid) {
        row.start = r * n;
        row.end = row.start + p.n;
        row.c0 = row.start / 4u;
        row.c1 = (row.end + 3u) / 4u;
    } else {
        row.start = 0u;
        row.end = 0u;
        row.c0 = 0u;
        row.c1 = 0u;
    }
    return row;
}

// Whether register slot chunk c (of this thread, row.c0 + row.tid + i T) lies in the row. With
// EXACT every slot of a valid row does; rows past the last exist only as the trailing rows of
// a workgroup of several (one row a workgroup: the early return has left those).
fn in_row(c: u32, row: Row) -> bool {
    if (aligned() && (MODE & EXACT) != 0u) {
        return WG == T || row.valid;
    }
    return c < row.c1;
}

// Lanes of chunk c that lie inside the row.
fn lane_mask(c: u32, row: Row) -> vec4<bool> {
    if (aligned()) {
        return vec4<bool>(true);
    }
    let e = vec4<u32>(4u * c) + vec4<u32>(0u, 1u, 2u, 3u);
    return (e >= vec4<u32>(row.start)) & (e < vec4<u32>(row.end));
}

fn combine(a: f32, b: f32, is_max: bool) -> f32 {
    if (is_max) {
        return max(a, b);
    }
    return a + b;
}

// Max (is_max) or sum of v over the T threads of a row: butterfly shuffles inside each
// subgroup, then the subgroups' results through shared memory, combined by another butterfly
// (a serial loop over 32 entries cost a 1024-thread row as much as a few of its loads).
//
// Rows of 128 threads or more span whole subgroups (no subgroup is wider than 128 lanes), so
// their first butterfly runs over `sg` lanes, a bound the driver knows when it compiles the
// pipeline: over min(T, sg) the persistent f16 softmax over 4096 x 32000 took 147.8-148.6 µs
// on the H200, over sg 142.9-143.0 (probes alternated twice in one call).
fn row_reduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {
    var x: f32;
    if (T >= 128u) {
        x = butterfly(v, sg, is_max);
    } else {
        x = butterfly(v, min(T, sg), is_max);
        if (T <= sg) {
            return x;
        }
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        red[lid / sg] = x;
    }
    workgroupBarrier();
    let per = T / sg;
    let first = (lid / T) * per;
    // Up to 8 entries a row (256 threads in subgroups of 32): every lane reads them all in turn,
    // which is shorter than the butterfly below. On the H200 (4096 x 4096, old / new builds in
    // one call) softmax f32 took 39.9-40.2 µs with the butterfly and 39.6-39.8 this way, f16
    // 25.0-25.2 against 24.6-24.9, RMSNorm f16 24.7 against 24.2-24.3, add + RMSNorm f16
    // 42.3-42.5 against 41.6-41.9; rows of 512 threads (16 entries) did not move either way.
    if (per <= 8u) {
        var r = red[first];
        for (var j = 1u; j < per; j++) {
            r = combine(r, red[first + j], is_max);
        }
        return r;
    }
    // More: lane i takes entries i, i + width, ... (width = min(per, sg)), then a butterfly
    // over width lanes gives each lane the row's total.
    let width = min(per, sg);
    let lane = lid % width;
    var r = red[first + lane];
    for (var j = lane + width; j < per; j += width) {
        r = combine(r, red[first + j], is_max);
    }
    return butterfly(r, width, is_max);
}

// Max or sum of v over `width` neighbouring lanes (a power of two), by shuffles.
fn butterfly(v: f32, width: u32, is_max: bool) -> f32 {
    var x = v;
    for (var off = 1u; off < width; off = off << 1u) {
        x = combine(x, subgroupShuffleXor(x, off), is_max);
    }
    return x;
}

fn row_max(v: f32, lid: u32, sg: u32) -> f32 {
    return row_reduce(v, lid, sg, true);
}

fn row_sum(v: f32, lid: u32, sg: u32) -> f32 {
    return row_reduce(v, lid, sg, false);
}

// Chunk c lies wholly inside the row (only a row's first and last chunk may not).
fn full(c: u32, row: Row) -> bool {
    if (aligned()) {
        return true;
    }
    return 4u * c >= row.start && 4u * c + 4u <= row.end;
}

// The chunks of a row that are not full, each handled once by the thread that holds it:
// returns the register index of boundary chunk b (0: first, 1: last) for this thread, or KMAX.
// Register arrays are only ever indexed by unrolled loop counters (dynamic indices would put
// them in local memory); `pick` reads entry i through a select chain for the same reason.
fn boundary_slot(b: u32, row: Row) -> u32 {
    if (aligned() || row.c1 <= row.c0) {
        return KMAX;
    }
    var c = row.c0;
    if (b == 1u) {
        c = row.c1 - 1u;
        if (c == row.c0) {
            return KMAX;
        }
    }
    if (full(c, row) || (c - row.c0) % T != row.tid) {
        return KMAX;
    }
    return (c - row.c0) / T;
}

fn pick(v: ptr<function, array<vec4<f32>, KMAX>>, i: u32) -> vec4<f32> {
    var r = vec4<f32>(0.0);
    for (var j = 0u; j < K; j++) {
        if (j == i) {
            r = (*v)[j];
        }
    }
    return r;
}
