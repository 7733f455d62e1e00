# dst = src + src2 over 64 MiB f32 each (reads 128 MiB, writes 64): the byte mix of LoRA at
# 4096 x 4096 f32 (x and base read, y written), without the products.
import os
import sys
N4 = 64 * 2**20 // 16
out = ["// dst = src + src2, 64 MiB f32 each: LoRA's byte mix without its products.", "// bind 0:src,1:dst,2:small,3:src2"]
hdr = """@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> src2: array<vec4<f32>>;
fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.x + w.y * n.x; }
"""
body = []
for j in (1, 2, 4):
    wg = 256
    threads = N4 // j
    groups = threads // wg
    name = f"add_j{j}"
    lines = [f"    let i = gid(w, n) * {wg}u + lid;", "    let z = small[0].x * 0.0;"]
    for s in range(j):
        lines.append(f"    let a{s} = src[i + {s * threads}u];")
        lines.append(f"    let b{s} = src2[i + {s * threads}u];")
    for s in range(j):
        lines.append(f"    dst[i + {s * threads}u] = a{s} + b{s} + z;")
    out.append(f"// dispatch {name} {groups} 192")
    body.append(f"""@compute @workgroup_size({wg})
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
""" + "\n".join(lines) + "\n}\n")
sys.stdout.write("\n".join(out) + "\n\n" + hdr + "\n" + "\n".join(body))
