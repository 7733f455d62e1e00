# Read-only, write-only and copy patterns over 64 MiB of f32 (src/dst), as one probe file.
import os
import re
import sys
N4 = 64 * 2**20 // 16  # vec4 in 64 MiB
out = ["// Read, write and copy patterns over 64 MiB f32: what bounds a kernel that only reads."]
body = []
hdr = """@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<vec4<f32>>;
fn gid(w: vec3<u32>, n: vec3<u32>) -> u32 { return w.x + w.y * n.x; }
"""
def entry(name, wg, body_text):
    return f"""@compute @workgroup_size({wg})
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) n: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let z = small[0] * 0.0;
{body_text}
}}
"""
# read: J vec4 a thread, all loaded before any is used; stride between a thread's loads = all threads
for wg in (256, 512):
    for j in (1, 2, 4, 8, 16):
        threads = N4 // j
        groups = threads // wg
        name = f"read_w{wg}_j{j}"
        lines = [f"    let i = gid(w, n) * {wg}u + lid;"]
        for s in range(j):
            lines.append(f"    let v{s} = src[i + {s * threads}u];")
        lines.append("    let acc = z + " + " + ".join(f"v{s}" for s in range(j)) + ";")
        lines.append("    if (acc.x == 1234.5678) { dst[i] = acc; }")
        out.append(f"// dispatch {name} {groups} 64")
        body.append(entry(name, wg, "\n".join(lines)))
# read, J contiguous vec4 per thread chunk... (each warp reads J consecutive 512-byte runs)
for j in (4, 8):
    wg = 256
    threads = N4 // j
    groups = threads // wg
    name = f"read_blk_j{j}"
    lines = [f"    let g = gid(w, n);", f"    let base = g * {wg * j}u + lid;"]
    for s in range(j):
        lines.append(f"    let v{s} = src[base + {s * wg}u];")
    lines.append("    let acc = z + " + " + ".join(f"v{s}" for s in range(j)) + ";")
    lines.append("    if (acc.x == 1234.5678) { dst[base] = acc; }")
    out.append(f"// dispatch {name} {groups} 64")
    body.append(entry(name, wg, "\n".join(lines)))
# persistent: 132*k groups of 1024 threads, grid-stride loop with J loads a step
for groups in (132, 264):
    for j in (4, 8):
        wg = 1024 if groups == 132 else 512
        name = f"read_persist_g{groups}_j{j}"
        total = groups * wg
        lines = [f"    let i0 = gid(w, n) * {wg}u + lid;", "    var acc = z;",
                 f"    for (var i = i0; i < {N4}u; i += {total * j}u) {{"]
        for s in range(j):
            lines.append(f"        let v{s} = src[min(i + {s * total}u, {N4 - 1}u)];")
        lines.append("        acc += " + " + ".join(f"v{s}" for s in range(j)) + ";")
        lines.append("    }")
        lines.append("    if (acc.x == 1234.5678) { dst[i0] = acc; }")
        out.append(f"// dispatch {name} {groups} 64")
        body.append(entry(name, wg, "\n".join(lines)))
# write only: 1 and 4 vec4 a thread
for j in (1, 4):
    wg = 256
    threads = N4 // j
    groups = threads // wg
    name = f"write_j{j}"
    lines = [f"    let i = gid(w, n) * {wg}u + lid;", "    let v = small[lid];"]
    for s in range(j):
        lines.append(f"    dst[i + {s * threads}u] = z + v + vec4<f32>({s}.0);")
    out.append(f"// dispatch {name} {groups} 64")
    body.append(entry(name, wg, "\n".join(lines)))
# copy: J vec4 a thread, all loads first
for j in (1, 2, 4):
    wg = 256
    threads = N4 // j
    groups = threads // wg
    name = f"copy_j{j}"
    lines = [f"    let i = gid(w, n) * {wg}u + lid;"]
    for s in range(j):
        lines.append(f"    let v{s} = src[i + {s * threads}u];")
    for s in range(j):
        lines.append(f"    dst[i + {s * threads}u] = v{s} + z;")
    out.append(f"// dispatch {name} {groups} 128")
    body.append(entry(name, wg, "\n".join(lines)))
text = "\n".join(out) + "\n\n" + hdr + "\n" + "\n".join(body)
# The write-only entries also read src (one word), as every entry point must use every binding.
text = re.sub(r"(fn write_j\d[^\n]*\n    let z = )small\[0\] \* 0.0;", r"\1(small[0] + src[0]) * 0.0;", text)
# `--subset`: the entries of the second call (call 3), after the reads of call 2.
if "--subset" in sys.argv:
    keep = {"read_w256_j2", "read_blk_j4", "read_persist_g132_j8", "write_j1", "write_j4", "copy_j1", "copy_j2", "copy_j4"}
    text = "\n".join(l for l in text.split("\n") if not (l.startswith("// dispatch") and l.split()[2] not in keep))
sys.stdout.write(text)
