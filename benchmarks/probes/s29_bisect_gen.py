"""Softmax f32 over 4096 x 4096: what the library's register kernel pays against a plain kernel
of the same layout (256 threads a row, 4 vec4 a thread, one row a workgroup). Files:
  b_plain       plain kernel, sizes written in (as `s28_cp_gen.py`'s sm_t256_r1)
  b_plain_uni   the same, row length and rows from the uniform at binding 31
  b_lib         the library's softmax_f32_reg as it is (sizes from the uniform)
  b_lib_nconst  the library with the row length written in (rows still from the uniform)
  b_lib_const   the library with both sizes written in (no uniform)
python3 s29_bisect_gen.py FOLDER; then `xtask probe FOLDER/b_*.wgsl --mib 64 --dump 4096`."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe, B_SM

OUT = sys.argv[1]
LIB = shader("rows.wgsl") + shader("softmax.wgsl")
UNI = "@group(0) @binding(31) var<uniform> p: Params;"
CONSTS = "// constants WG=256,T=256,K=4,MODE=16"


def plain(uniform):
    n4 = "(p.n / 4u)" if uniform else "1024u"
    guard = "    if (row >= p.rows) {\n        return;\n    }\n" if uniform else ""
    loads = "\n".join(f"    let v{j} = src[base + {j * 256}u];" for j in range(4))
    exps = "\n".join(f"    let e{j} = exp(v{j} - m);" for j in range(4))
    stores = "\n".join(f"    dst[base + {j * 256}u] = e{j} * inv;" for j in range(4))
    params = """struct Params {
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
""" if uniform else ""
    return params + f"""@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
var<workgroup> red: array<f32, 64>;

fn rreduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {{
    var x = v;
    for (var off = 1u; off < sg; off = off << 1u) {{
        let o = subgroupShuffleXor(x, off);
        x = select(x + o, max(x, o), is_max);
    }}
    workgroupBarrier();
    if (lid % sg == 0u) {{
        red[lid / sg] = x;
    }}
    workgroupBarrier();
    let per = 256u / sg;
    var r = red[0];
    for (var j = 1u; j < per; j++) {{
        let o = red[j];
        r = select(r + o, max(r, o), is_max);
    }}
    return r;
}}

@compute @workgroup_size(256)
fn sm_plain(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>,
            @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {{
    let row = w.x + w.y * nw.x;
{guard}    let base = row * {n4} + lid;
{loads}
    var m = max(max(max(v0.x, v0.y), max(v0.z, v0.w)), max(max(v1.x, v1.y), max(v1.z, v1.w)));
    m = max(m, max(max(max(v2.x, v2.y), max(v2.z, v2.w)), max(max(v3.x, v3.y), max(v3.z, v3.w))));
    m = rreduce(m, lid, sg, true);
{exps}
    let s = ((e0.x + e0.y) + (e0.z + e0.w)) + ((e1.x + e1.y) + (e1.z + e1.w)) + ((e2.x + e2.y) + (e2.z + e2.w)) + ((e3.x + e3.y) + (e3.z + e3.w));
    let inv = 1.0 / rreduce(s, lid, sg, false);
{stores}
}}
"""


write_probe(OUT, "b_plain", ["// plain softmax, sizes written in", "// bind 0:src,1:dst", "// dispatch sm_plain 4096"], plain(False))
write_probe(OUT, "b_plain_uni", ["// plain softmax, sizes from the uniform", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31",
                                 "// bind 0:src,1:dst", "// dispatch sm_plain 4096"], plain(True))
write_probe(OUT, "b_lib", ["// library softmax_f32_reg", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31", CONSTS,
                           f"// bind {B_SM}", "// dispatch softmax_f32_reg 4096"], LIB)
NCONST = LIB.replace("p.n", "4096u")
write_probe(OUT, "b_lib_nconst", ["// library softmax_f32_reg, row length written in", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31",
                                  CONSTS, f"// bind {B_SM}", "// dispatch softmax_f32_reg 4096"], NCONST)
CONST = edit(LIB, UNI, "const p = Params(4096u, 4096u, 0u, 0u, 0u, 0u, 0u, 0u);")
write_probe(OUT, "b_lib_const", ["// library softmax_f32_reg, both sizes written in", CONSTS, "// bind 0:src,1:dst",
                                 "// dispatch softmax_f32_reg 4096"], CONST)

# f16 (`--mib 32 --half`): the library's kernel in 16-byte pairs (MODE 48) and 8-byte chunks (16), as it is
# and with the sizes written in.
for mode in (48, 16):
    c16 = f"// constants WG=256,T=256,K=4,MODE={mode}"
    write_probe(OUT, f"b16_m{mode}_lib", [f"// library softmax_f16_reg, MODE {mode}", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31", c16,
                                          f"// bind {B_SM},11:src,12:dst", "// dispatch softmax_f16_reg 4096"], LIB)
    write_probe(OUT, f"b16_m{mode}_nconst", [f"// library softmax_f16_reg, MODE {mode}, row length written in", "// params 4096 4096 0 0 0 0 0 0",
                                             "// uniform 31", c16, f"// bind {B_SM},11:src,12:dst", "// dispatch softmax_f16_reg 4096"], NCONST)
