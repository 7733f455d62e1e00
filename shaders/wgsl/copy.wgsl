// Copy kernel: y = x, vec4 at a time. It sets the bound every other kernel is measured against
// (the same bytes read and written by the simplest possible kernel).
//
// Bindings: 0 x: array<vec4<f32>> (read), 1 y: array<vec4<f32>>. Immediates: chunks (vec4 count).
// Work split: a grid-stride loop, K vec4 per thread in flight.

override WG: u32 = 256u;
override T: u32 = 1u;
override K: u32 = 4u;
override MODE: u32 = 0u;

struct Params {
    chunks: u32,
    _p: array<u32, 7>,
}

var<immediate> p: Params;

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
