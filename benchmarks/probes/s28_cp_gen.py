# Bisect of the library's copy kernel (copy.wgsl) over 64 MiB f32, and plain softmax f32
# 4096 x 4096 kernels of several layouts.
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe
OUT = sys.argv[1]
LIB = shader("copy.wgsl")
CH = 64 * 2**20 // 16
GUARD = """        if (c < p.chunks) {
            y[c] = x[c];
        }"""
variants = {
    "lib": LIB,
    "noguard": edit(LIB, GUARD, "        y[c] = x[c];"),
    "const": edit(LIB, "var<immediate> p: Params;", f"const p = Params({CH}u, array<u32, 7>());"),
    "loadsfirst": edit(LIB, """    for (var i = 0u; i < K; i++) {
        let c = base + i * WG;
        if (c < p.chunks) {
            y[c] = x[c];
        }
    }""", """    var v: array<vec4<f32>, 8>;
    for (var i = 0u; i < K; i++) {
        let c = base + i * WG;
        if (c < p.chunks) {
            v[i] = x[c];
        }
    }
    for (var i = 0u; i < K; i++) {
        let c = base + i * WG;
        if (c < p.chunks) {
            y[c] = v[i];
        }
    }"""),
}
for name, text in variants.items():
    for k in (1, 2, 4):
        head = [f"// library copy.wgsl, edit: {name}, K={k}", f"// params {CH} 0 0 0 0 0 0 0", f"// constants WG=256,K={k}",
                "// bind 0:src,1:dst", f"// dispatch copy_f32 {CH // (256 * k)} 128"]
        if name == "const":
            head = [h for h in head if not h.startswith("// params")]
            text2 = text
        else:
            text2 = text
        write_probe(OUT, f"cp_{name}_k{k}", head, text2)

# plain softmax f32, rows of 4096: T threads a row, 1024 / T vec4 a thread, R rows a workgroup
def softmax(T, R):
    J = 1024 // T
    WG = T * R
    ns = WG // 32  # subgroups of the workgroup (sg 32 on the device; 8 locally works too as the reduction loops over red)
    lines = []
    lines.append(f"""@compute @workgroup_size({WG})
fn sm_t{T}_r{R}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {{
    let row = (w.x + w.y * nw.x) * {R}u + lid / {T}u;
    let tid = lid % {T}u;
    let base = row * 1024u + tid;""")
    for j in range(J):
        lines.append(f"    let v{j} = src[base + {j * T}u] + small[0] * 0.0;" if j == 0 else f"    let v{j} = src[base + {j * T}u];")
    lines.append("    var m = " + " ".join(f"max(max(v{j}.x, v{j}.y), max(v{j}.z, v{j}.w))" if j == 0 else "" for j in range(1)) + ";")
    for j in range(1, J):
        lines.append(f"    m = max(m, max(max(v{j}.x, v{j}.y), max(v{j}.z, v{j}.w)));")
    lines.append(f"    m = rreduce(m, lid, sg, true, {T}u);")
    for j in range(J):
        lines.append(f"    let e{j} = exp(v{j} - m);")
    lines.append("    var s = " + " + ".join(f"((e{j}.x + e{j}.y) + (e{j}.z + e{j}.w))" for j in range(J)) + ";")
    lines.append(f"    let inv = 1.0 / rreduce(s, lid, sg, false, {T}u);")
    for j in range(J):
        lines.append(f"    dst[base + {j * T}u] = e{j} * inv;")
    lines.append("}")
    return "\n".join(lines), WG, 4096 // R

SM_HDR = """@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;
var<workgroup> red: array<f32, 64>;

// Max or sum over the T threads of a row (T a multiple of the subgroup size, or at most it).
fn rreduce(v: f32, lid: u32, sg: u32, is_max: bool, t: u32) -> f32 {
    var x = v;
    for (var off = 1u; off < min(sg, t); off = off << 1u) {
        let o = subgroupShuffleXor(x, off);
        x = select(x + o, max(x, o), is_max);
    }
    if (t <= sg) {
        return x;
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        red[lid / sg] = x;
    }
    workgroupBarrier();
    let per = t / sg;
    let first = (lid / t) * per;
    var r = red[first];
    for (var j = 1u; j < per; j++) {
        let o = red[first + j];
        r = select(r + o, max(r, o), is_max);
    }
    return r;
}
"""
body, head = [], ["// plain softmax f32 over 4096 x 4096: T threads a row, R rows a workgroup"]
for T, R in ((256, 1), (128, 1), (512, 1), (1024, 1), (128, 2), (256, 2), (64, 4), (32, 8)):
    text, wg, groups = softmax(T, R)
    body.append(text)
    head.append(f"// dispatch sm_t{T}_r{R} {groups} 128")
write_probe(OUT, "sm_plain", head, SM_HDR + "\n" + "\n\n".join(body) + "\n")
