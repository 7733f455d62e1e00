// Probes for LoRA's x·A dispatch: reading x, 4096 x 4096 f32 (src), the way the kernels do,
// summing what they read (no A) and writing one vec4 a thread.
// dispatch xread_lin 1024 64
// dispatch xread_slab 256 64
// dispatch xread_slab_pf 256 64
// dispatch xread_slab_k8 512 64
// dispatch xread_rows 256 64
// dispatch xread_rows_pf 256 64

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;

const N4: u32 = 1024u; // vec4 per row

fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.x + w.y * n.x; }

// Grid-stride over all of x: 1024 workgroups x 256 threads, 16 vec4 a thread.
@compute @workgroup_size(256)
fn xread_lin(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = gid(w, n) * 256u + lid;
    var acc = vec4<f32>(small[0].x * 0.0);
    for (var s = 0u; s < 16u; s += 4u) {
        let a = src[i + s * 262144u];
        let b = src[i + (s + 1u) * 262144u];
        let c = src[i + (s + 2u) * 262144u];
        let d = src[i + (s + 3u) * 262144u];
        acc += a + b + c + d;
    }
    dst[i] = acc;
}

// xa's layout: 8 row groups of 4 rows x 32 k lanes; k tiles of 128 (32 lanes x 4), kt tiles a
// slice, 4096 / (128 kt) slices; workgroup g: row tile g / slices, slice g % slices.
fn slab(g: u32, lid: u32, kt: u32, pf: bool) {
    let slices = 32u / kt;
    let m = (g / slices) * 32u + (lid / 32u) * 4u;
    let k0 = (g % slices) * kt * 32u + lid % 32u; // in vec4
    var acc = vec4<f32>(small[0].x * 0.0);
    if (pf) {
        var x0 = src[m * N4 + k0];
        var x1 = src[(m + 1u) * N4 + k0];
        var x2 = src[(m + 2u) * N4 + k0];
        var x3 = src[(m + 3u) * N4 + k0];
        for (var t = 1u; t <= kt; t++) {
            let k = min(k0 + t * 32u, N4 - 1u);
            let n0 = src[m * N4 + k];
            let n1 = src[(m + 1u) * N4 + k];
            let n2 = src[(m + 2u) * N4 + k];
            let n3 = src[(m + 3u) * N4 + k];
            acc += x0 * x1 + x2 * x3;
            x0 = n0; x1 = n1; x2 = n2; x3 = n3;
        }
    } else {
        for (var t = 0u; t < kt; t++) {
            let k = k0 + t * 32u;
            acc += src[m * N4 + k] * src[(m + 1u) * N4 + k] + src[(m + 2u) * N4 + k] * src[(m + 3u) * N4 + k];
        }
    }
    dst[g * 256u + lid] = acc;
}

@compute @workgroup_size(256)
fn xread_slab(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    slab(gid(w, n), lid, 16u, false);
}

@compute @workgroup_size(256)
fn xread_slab_pf(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    slab(gid(w, n), lid, 16u, true);
}

@compute @workgroup_size(256)
fn xread_slab_k8(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    slab(gid(w, n), lid, 8u, true);
}

// Whole rows: workgroup g takes rows 16 g .. 16 g + 16, a thread 4 chunks of each (strided by 256).
fn rows(g: u32, lid: u32, pf: bool) {
    var acc = vec4<f32>(small[0].x * 0.0);
    if (pf) {
        var e = g * 16u * N4 + lid;
        var x0 = src[e]; var x1 = src[e + 256u]; var x2 = src[e + 512u]; var x3 = src[e + 768u];
        for (var r = 1u; r <= 16u; r++) {
            let f = min(g * 16u + r, 4095u) * N4 + lid;
            let n0 = src[f]; let n1 = src[f + 256u]; let n2 = src[f + 512u]; let n3 = src[f + 768u];
            acc += x0 * x1 + x2 * x3;
            x0 = n0; x1 = n1; x2 = n2; x3 = n3;
        }
    } else {
        for (var r = 0u; r < 16u; r++) {
            let e = (g * 16u + r) * N4 + lid;
            acc += src[e] * src[e + 256u] + src[e + 512u] * src[e + 768u];
        }
    }
    dst[g * 256u + lid] = acc;
}

@compute @workgroup_size(256)
fn xread_rows(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows(gid(w, n), lid, false);
}

@compute @workgroup_size(256)
fn xread_rows_pf(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    rows(gid(w, n), lid, true);
}
