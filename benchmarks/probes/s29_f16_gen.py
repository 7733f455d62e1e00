"""Softmax f16 over 4096 x 4096: the library's register kernel (8-byte chunks, f32 arithmetic)
against kernels that load 16-byte chunks (8 halves) with f32 arithmetic, or two 8-byte
`vec4<f16>` loads a 16-byte chunk with the element-wise part in f16 (`enable f16;`: vec4<f16>
max, subtract, exp and scale; the max and sum reduced in f32). (naga 30 rejects
`bitcast<vec2<f16>>(u32)`, so the f16 form cannot take 16-byte `vec4<u32>` loads.)

python3 s29_f16_gen.py FOLDER; then `xtask probe FOLDER/q16_*.wgsl --mib 32 --half --dump 4096`
(the dumps of one file must agree to f16 rounding)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, write_probe

OUT = sys.argv[1]
LIB = shader("rows.wgsl") + shader("softmax.wgsl")
B = "0:src,1:dst,8:src,9:dst,10:dst,11:src,12:dst"
BH = B + ",13:src,14:dst"

# K = 16-byte chunks a thread (QK), T threads a row, one row a workgroup (WG = T), rows of a multiple of 8.
Q32 = """
@group(0) @binding(11) var<storage, read> xq: array<vec4<u32>>;
@group(0) @binding(12) var<storage, read_write> yq: array<vec4<u32>>;

@compute @workgroup_size(WG)
fn sm_q32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let at = r * (p.n / 8u) + lid;
    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < K; i++) {
        let q = xq[at + i * T];
        v[2u * i] = vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
        v[2u * i + 1u] = vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
    }
    var m = neg_inf();
    for (var i = 0u; i < 2u * K; i++) {
        let u = v[i];
        m = max(m, max(max(u.x, u.y), max(u.z, u.w)));
    }
    m = row_max(m, lid, sg);
    var s = 0.0;
    for (var i = 0u; i < 2u * K; i++) {
        let e = exp(v[i] - m);
        v[i] = e;
        s += (e.x + e.y) + (e.z + e.w);
    }
    let inv = 1.0 / row_sum(s, lid, sg);
    for (var i = 0u; i < K; i++) {
        let a = v[2u * i] * inv;
        let b = v[2u * i + 1u] * inv;
        yq[at + i * T] = vec4<u32>(pack2x16float(a.xy), pack2x16float(a.zw), pack2x16float(b.xy), pack2x16float(b.zw));
    }
}
"""

Q16 = """
@group(0) @binding(13) var<storage, read> xh: array<vec4<f16>>;
@group(0) @binding(14) var<storage, read_write> yh: array<vec4<f16>>;

fn hmax4(u: vec4<f16>) -> f16 {
    return max(max(u.x, u.y), max(u.z, u.w));
}

fn hsum4(e: vec4<f16>) -> f32 {
    let f = vec4<f32>(e);
    return (f.x + f.y) + (f.z + f.w);
}

@compute @workgroup_size(WG)
fn sm_q16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let at = r * (p.n / 8u) + lid;
    var v: array<vec4<f16>, 8>;
    for (var i = 0u; i < K; i++) {
        v[2u * i] = xh[2u * (at + i * T)];
        v[2u * i + 1u] = xh[2u * (at + i * T) + 1u];
    }
    var mh = max(hmax4(v[0]), hmax4(v[1]));
    for (var i = 2u; i < 2u * K; i++) {
        mh = max(mh, hmax4(v[i]));
    }
    let m = row_max(f32(mh), lid, sg);
    let m16 = vec4<f16>(f16(m));
    var s = 0.0;
    for (var i = 0u; i < 2u * K; i++) {
        let e = exp(v[i] - m16);
        v[i] = e;
        s += hsum4(e);
    }
    let inv = vec4<f16>(f16(1.0 / row_sum(s, lid, sg)));
    for (var i = 0u; i < K; i++) {
        yh[2u * (at + i * T)] = v[2u * i] * inv;
        yh[2u * (at + i * T) + 1u] = v[2u * i + 1u] * inv;
    }
}
"""


def head(what, consts, entries, bind=B):
    return [f"// softmax f16 4096 x 4096: {what}", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31",
            f"// constants {consts}", f"// bind {bind}"] + [f"// dispatch {e} 4096" for e in entries]


write_probe(OUT, "q16_lib", head("library (8-byte chunks, t256 k4)", "WG=256,T=256,K=4,MODE=16", ["softmax_f16_reg"]), LIB + Q32)
for t, k in ((256, 2), (128, 4), (512, 1)):
    write_probe(OUT, f"q16_q32_t{t}", head(f"16-byte chunks, f32 arithmetic, t{t} k{k}", f"WG={t},T={t},K={k},MODE=16", ["sm_q32"]),
                LIB + Q32)
    write_probe(OUT, f"q16_q16_t{t}", head(f"two 8-byte loads a 16-byte chunk, f16 arithmetic, t{t} k{k}",
                                           f"WG={t},T={t},K={k},MODE=16", ["sm_q16"], BH), "enable f16;\n" + LIB + Q32 + Q16)
