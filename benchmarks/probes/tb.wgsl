// Probes for LoRA's t·B dispatch: y = base + t B over 4096 x 4096 f32 (base = src, y = dst),
// B = small[0 .. 16 x 4096], t = small[65536 ..] (4096 rows x 16 ranks).
// dispatch copy_lin 16384
// dispatch slab16 4096
// dispatch slab_k8 512
// dispatch slab_k2 2048
// dispatch tb_k8 512
// dispatch tb_k2 2048
// dispatch tb_k8_l1 512
// dispatch rows4 1024
// dispatch rows4_t 1024

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;

const N4: u32 = 1024u; // vec4 per row
var<workgroup> t4: array<vec4<f32>, 1024>;

fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.x + w.y * n.x; }

@compute @workgroup_size(256)
fn copy_lin(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(w, n) * 256u + lid;
    dst[i] = src[i] + small[0].x * 0.0;
}

// 16 rows x 64 chunks a workgroup, 4 rows a thread (the old t·B layout), no product.
@compute @workgroup_size(256)
fn slab16(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = gid(w, n);
    let m0 = (g / 16u) * 16u + (lid / 64u) * 4u;
    let c = (g % 16u) * 64u + lid % 64u;
    let v0 = src[m0 * N4 + c];
    let v1 = src[(m0 + 1u) * N4 + c];
    let v2 = src[(m0 + 2u) * N4 + c];
    let v3 = src[(m0 + 3u) * N4 + c];
    let z = small[0].x * 0.0;
    dst[m0 * N4 + c] = v0 + z;
    dst[(m0 + 1u) * N4 + c] = v1;
    dst[(m0 + 2u) * N4 + c] = v2;
    dst[(m0 + 3u) * N4 + c] = v3;
}

fn slab_walk(g: u32, lid: u32, k: u32) {
    let rt = 16u * k;
    let m0 = (g / 16u) * rt;
    let c = (g % 16u) * 64u + lid % 64u;
    let rg = (lid / 64u) * 4u;
    var n0 = src[(m0 + rg) * N4 + c];
    var n1 = src[(m0 + rg + 1u) * N4 + c];
    var n2 = src[(m0 + rg + 2u) * N4 + c];
    var n3 = src[(m0 + rg + 3u) * N4 + c];
    let z = small[0].x * 0.0;
    for (var m = rg; m < rt; m += 16u) {
        let c0 = n0; let c1 = n1; let c2 = n2; let c3 = n3;
        if (m + 16u < rt) {
            n0 = src[(m0 + m + 16u) * N4 + c];
            n1 = src[(m0 + m + 17u) * N4 + c];
            n2 = src[(m0 + m + 18u) * N4 + c];
            n3 = src[(m0 + m + 19u) * N4 + c];
        }
        dst[(m0 + m) * N4 + c] = c0 + z;
        dst[(m0 + m + 1u) * N4 + c] = c1;
        dst[(m0 + m + 2u) * N4 + c] = c2;
        dst[(m0 + m + 3u) * N4 + c] = c3;
    }
}

@compute @workgroup_size(256)
fn slab_k8(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    slab_walk(gid(w, n), lid, 8u);
}

@compute @workgroup_size(256)
fn slab_k2(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    slab_walk(gid(w, n), lid, 2u);
}

fn bq(j: u32, c: u32) -> mat4x4<f32> {
    return mat4x4<f32>(small[j * N4 + c], small[(j + 1u) * N4 + c], small[(j + 2u) * N4 + c], small[(j + 3u) * N4 + c]);
}

fn row(m: u32, v: vec4<f32>, q0: mat4x4<f32>, q1: mat4x4<f32>, q2: mat4x4<f32>, q3: mat4x4<f32>) -> vec4<f32> {
    let at = m * 4u;
    return v + q0 * t4[at] + q1 * t4[at + 1u] + q2 * t4[at + 2u] + q3 * t4[at + 3u];
}

fn row_l1(m: u32, v: vec4<f32>, c: u32) -> vec4<f32> {
    let at = m * 4u;
    return v + bq(0u, c) * t4[at] + bq(4u, c) * t4[at + 1u] + bq(8u, c) * t4[at + 2u] + bq(12u, c) * t4[at + 3u];
}

fn tb_walk(g: u32, lid: u32, k: u32, l1: bool) {
    let rt = 16u * k;
    let m0 = (g / 16u) * rt;
    let c = (g % 16u) * 64u + lid % 64u;
    let rg = (lid / 64u) * 4u;
    var n0 = src[(m0 + rg) * N4 + c];
    var n1 = src[(m0 + rg + 1u) * N4 + c];
    var n2 = src[(m0 + rg + 2u) * N4 + c];
    var n3 = src[(m0 + rg + 3u) * N4 + c];
    var q0 = mat4x4<f32>(); var q1 = mat4x4<f32>(); var q2 = mat4x4<f32>(); var q3 = mat4x4<f32>();
    if (!l1) {
        q0 = bq(0u, c); q1 = bq(4u, c); q2 = bq(8u, c); q3 = bq(12u, c);
    }
    for (var i = lid; i < rt * 4u; i += 256u) {
        t4[i] = small[16384u + m0 * 4u + i];
    }
    workgroupBarrier();
    for (var m = rg; m < rt; m += 16u) {
        let c0 = n0; let c1 = n1; let c2 = n2; let c3 = n3;
        if (m + 16u < rt) {
            n0 = src[(m0 + m + 16u) * N4 + c];
            n1 = src[(m0 + m + 17u) * N4 + c];
            n2 = src[(m0 + m + 18u) * N4 + c];
            n3 = src[(m0 + m + 19u) * N4 + c];
        }
        if (l1) {
            dst[(m0 + m) * N4 + c] = row_l1(m, c0, c);
            dst[(m0 + m + 1u) * N4 + c] = row_l1(m + 1u, c1, c);
            dst[(m0 + m + 2u) * N4 + c] = row_l1(m + 2u, c2, c);
            dst[(m0 + m + 3u) * N4 + c] = row_l1(m + 3u, c3, c);
        } else {
            dst[(m0 + m) * N4 + c] = row(m, c0, q0, q1, q2, q3);
            dst[(m0 + m + 1u) * N4 + c] = row(m + 1u, c1, q0, q1, q2, q3);
            dst[(m0 + m + 2u) * N4 + c] = row(m + 2u, c2, q0, q1, q2, q3);
            dst[(m0 + m + 3u) * N4 + c] = row(m + 3u, c3, q0, q1, q2, q3);
        }
    }
}

@compute @workgroup_size(256)
fn tb_k8(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tb_walk(gid(w, n), lid, 8u, false);
}

@compute @workgroup_size(256)
fn tb_k2(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tb_walk(gid(w, n), lid, 2u, false);
}

@compute @workgroup_size(256)
fn tb_k8_l1(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tb_walk(gid(w, n), lid, 8u, true);
}

// Whole rows: a workgroup takes 4 rows, a thread 4 chunks of a row (strided by 256), all loads
// first; B from L1 per chunk.
fn rows_walk(g: u32, lid: u32, prod: bool) {
    let z = small[0].x * 0.0;
    for (var r = 0u; r < 4u; r++) {
        let m = g * 4u + r;
        let e = m * N4 + lid;
        let v0 = src[e];
        let v1 = src[e + 256u];
        let v2 = src[e + 512u];
        let v3 = src[e + 768u];
        if (prod) {
            let t0 = small[16384u + m * 4u];
            let t1 = small[16384u + m * 4u + 1u];
            let t2 = small[16384u + m * 4u + 2u];
            let t3 = small[16384u + m * 4u + 3u];
            dst[e] = v0 + bq(0u, lid) * t0 + bq(4u, lid) * t1 + bq(8u, lid) * t2 + bq(12u, lid) * t3;
            dst[e + 256u] = v1 + bq(0u, lid + 256u) * t0 + bq(4u, lid + 256u) * t1 + bq(8u, lid + 256u) * t2 + bq(12u, lid + 256u) * t3;
            dst[e + 512u] = v2 + bq(0u, lid + 512u) * t0 + bq(4u, lid + 512u) * t1 + bq(8u, lid + 512u) * t2 + bq(12u, lid + 512u) * t3;
            dst[e + 768u] = v3 + bq(0u, lid + 768u) * t0 + bq(4u, lid + 768u) * t1 + bq(8u, lid + 768u) * t2 + bq(12u, lid + 768u) * t3;
        } else {
            dst[e] = v0 + z;
            dst[e + 256u] = v1;
            dst[e + 512u] = v2;
            dst[e + 768u] = v3;
        }
    }
}

@compute @workgroup_size(256)
fn rows4(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows_walk(gid(w, n), lid, false);
}

@compute @workgroup_size(256)
fn rows4_t(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows_walk(gid(w, n), lid, true);
}
