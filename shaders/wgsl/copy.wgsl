// Copy kernel: y = x, vec4 at a time. It sets the bound every other kernel is measured against
// (the same bytes read and written by the simplest possible kernel).
//
// Bindings: 0 x: array<vec4<f32>> (read), 1 y: array<vec4<f32>>. Sizes (uniform, binding 31): chunks (vec4 count).
// Work split: K consecutive blocks of WG chunks a workgroup, one chunk a thread a block (the
// library runs K = 1).

override WG: u32 = 256u;
override T: u32 = 1u;
override K: u32 = 4u;
override MODE: u32 = 0u;

struct Params {
    chunks: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
    _p3: u32,
    _p4: u32,
    _p5: u32,
    _p6: u32,
}

@group(0) @binding(31) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn copy_f32(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wid.x + wid.y * nwg.x;
    let base = g * WG * K + lid;
    for (var i = 0u; i < K; i++) {
        let c = base + i * WG;
        if (c < p.chunks) {
            y[c] = x[c];
        }
    }
}
