// Elementary kernels, one dispatch each: the unfused baselines that fusion is measured
// against (what a framework without fusion runs for softmax, RMSNorm and LoRA). f32 only.
//
// Bindings: 0 x (read), 1 z (read: second operand, row or column vector), 2 y (written).
// Sizes (uniform, binding 31): rows, n (row length), eps or scale, matmul k.
// MODE selects the operation inside each entry point (listed at each one).
// Work split: elementwise kernels take one element per thread; reductions one row per
// 256-thread workgroup (strided loop, then a shared-memory tree); matmul 16x16 output tiles.

override WG: u32 = 256u;
override T: u32 = 1u;
override K: u32 = 1u;
override MODE: u32 = 0u;

struct Params {
    rows: u32,
    n: u32,
    f: f32,
    k: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    _p3: u32,
}

@group(0) @binding(31) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

var<workgroup> red: array<f32, 256>;
var<workgroup> ta: array<f32, 256>;
var<workgroup> tb: array<f32, 256>;

fn index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wid.x + wid.y * nwg.x) * WG + lid;
}

// MODE 0: y[row] = max over the row; 1: sum; 2: mean of squares.
@compute @workgroup_size(256)
fn unfused_reduce_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    var acc = select(0.0, bitcast<f32>(0xff800000u), MODE == 0u);
    for (var j = lid; j < p.n; j += 256u) {
        let v = x[row * p.n + j];
        if (MODE == 0u) {
            acc = max(acc, v);
        } else if (MODE == 1u) {
            acc += v;
        } else {
            acc += v * v;
        }
    }
    red[lid] = acc;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            if (MODE == 0u) {
                red[lid] = max(red[lid], red[lid + s]);
            } else {
                red[lid] += red[lid + s];
            }
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        var r = red[0];
        if (MODE == 2u) {
            r = r / f32(p.n);
        }
        y[row] = r;
    }
}

// MODE 0: y = exp(x); 1: y = 1 / sqrt(x + f).
@compute @workgroup_size(256)
fn unfused_unary_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.rows * p.n) {
        return;
    }
    if (MODE == 0u) {
        y[i] = exp(x[i]);
    } else {
        y[i] = inverseSqrt(x[i] + p.f);
    }
}

// y = x op z[row]: MODE 0 subtract, 1 divide, 2 multiply.
@compute @workgroup_size(256)
fn unfused_rowwise_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.rows * p.n) {
        return;
    }
    let v = z[i / p.n];
    if (MODE == 0u) {
        y[i] = x[i] - v;
    } else if (MODE == 1u) {
        y[i] = x[i] / v;
    } else {
        y[i] = x[i] * v;
    }
}

// y = x * z[column].
@compute @workgroup_size(256)
fn unfused_colwise_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.rows * p.n) {
        return;
    }
    y[i] = x[i] * z[i % p.n];
}

// MODE 0: y = x + z; 1: y = x + f * z.
@compute @workgroup_size(256)
fn unfused_binary_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = index(wid, nwg, lid);
    if (i >= p.rows * p.n) {
        return;
    }
    if (MODE == 0u) {
        y[i] = x[i] + z[i];
    } else {
        y[i] = x[i] + p.f * z[i];
    }
}

// y [rows, n] = x [rows, k] . z [k, n], 16x16 tiles through shared memory.
@compute @workgroup_size(256)
fn unfused_matmul_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * nwg.x;
    let tiles_n = (p.n + 15u) / 16u;
    let tr = g / tiles_n;
    let tc = g % tiles_n;
    if (tr * 16u >= p.rows) {
        return;
    }
    let li = lid / 16u;
    let lj = lid % 16u;
    let row = tr * 16u + li;
    let col = tc * 16u + lj;
    var acc = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        let ka = k0 + lj;
        let kb = k0 + li;
        var a = 0.0;
        var b = 0.0;
        if (row < p.rows && ka < p.k) {
            a = x[row * p.k + ka];
        }
        if (kb < p.k && col < p.n) {
            b = z[kb * p.n + col];
        }
        ta[lid] = a;
        tb[lid] = b;
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk++) {
            acc += ta[li * 16u + kk] * tb[kk * 16u + lj];
        }
        workgroupBarrier();
    }
    if (row < p.rows && col < p.n) {
        y[row * p.n + col] = acc;
    }
}
