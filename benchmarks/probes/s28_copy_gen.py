# Copy patterns over 64 MiB f32 (src -> dst): which structure a copy (and a row kernel) needs.
import os
import sys
N4 = 64 * 2**20 // 16
hdr = """@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;
var<workgroup> red: array<vec4<f32>, 32>;
fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.x + w.y * n.x; }
"""
out = ["// Copy patterns over 64 MiB f32: one vec4 a thread against blocks a workgroup, barriers."]
body = []
def entry(name, wg, groups, lines):
    out.append(f"// dispatch {name} {groups} 128")
    body.append(f"""@compute @workgroup_size({wg})
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let z = small[0] * 0.0;
""" + "\n".join("    " + l for l in lines) + "\n}\n")
for wg in (64, 128, 256, 512, 1024):
    entry(f"j1_w{wg}", wg, N4 // wg, [f"let i = gid(w, n) * {wg}u + lid;", "dst[i] = src[i] + z;"])
entry("j1_bar", 256, N4 // 256, ["let i = gid(w, n) * 256u + lid;", "let v = src[i] + z;", "workgroupBarrier();", "dst[i] = v;"])
entry("lib_loop4", 256, N4 // 1024, ["let base = gid(w, n) * 1024u + lid;", "for (var k = 0u; k < 4u; k++) {", "    let c = base + k * 256u;", "    dst[c] = src[c] + z;", "}"])
for j in (2, 4, 8):
    wg = 256
    lines = [f"let base = gid(w, n) * {wg * j}u + lid;"]
    lines += [f"let v{s} = src[base + {s * wg}u] + z;" for s in range(j)]
    lines += [f"dst[base + {s * wg}u] = v{s};" for s in range(j)]
    entry(f"blk{j}", wg, N4 // (wg * j), lines)
    lines2 = lines[: 1 + j] + ["workgroupBarrier();"] + lines[1 + j:]
    entry(f"blk{j}_bar", wg, N4 // (wg * j), lines2)
# a row kernel's shape: 4 vec4 a thread, a subgroup sum and a workgroup sum (two barriers), then the stores
j = 4
lines = ["let base = gid(w, n) * 1024u + lid;"]
lines += [f"let v{s} = src[base + {s * 256}u] + z;" for s in range(j)]
lines += ["let s = subgroupAdd(v0 + v1 + v2 + v3);", "if (lid % 32u == 0u) { red[lid / 32u] = s; }", "workgroupBarrier();",
          "var t = red[0];", "for (var q = 1u; q < 8u; q++) { t += red[q]; }", "let m = t * 0.0;"]
lines += [f"dst[base + {s * 256}u] = v{s} + m;" for s in range(j)]
entry("row4_red", 256, N4 // 1024, lines)
# the same, with the row's vec4 interleaved over 64-thread blocks as each thread's (j1-like order)
sys.stdout.write("\n".join(out) + "\n\n" + hdr + "\n" + "\n".join(body))
