#!/usr/bin/env python3
"""Writes the row-kernel probes (softmax layouts over f32 and f16 rows) into the folder given
(default /tmp/lp).

Each probe file holds one view type of the probe's buffers (f32 vec4, f16 as vec2<u32> or as
vec4<u32>) and softmax kernels over 4096 rows, aligned rows, no masks: they time layouts and
reductions, not edge cases. Run: python3 benchmarks/probes/rows_gen.py [FOLDER]
"""
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"

RED = """
var<workgroup> red: array<f32, 128>;
var<workgroup> red2: array<f32, 128>;

// Row max / sum over the T threads: shuffles in a subgroup, then the subgroups' values through
// shared memory, combined by a butterfly ("fast") or by a serial loop ("serial").
fn reduce_{T}(v: f32, lid: u32, sg: u32, is_max: bool, serial: bool) -> f32 {{
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
    let per = {T}u / sg;
    if (serial) {{
        var r = red[0];
        for (var i = 1u; i < per; i++) {{
            r = select(r + red[i], max(r, red[i]), is_max);
        }}
        return r;
    }}
    let width = min(per, sg);
    let lane = lid % width;
    var r = red[lane];
    for (var j = lane + width; j < per; j += width) {{
        r = select(r + red[j], max(r, red[j]), is_max);
    }}
    for (var off = 1u; off < width; off = off << 1u) {{
        let o = subgroupShuffleXor(r, off);
        r = select(r + o, max(r, o), is_max);
    }}
    return r;
}}
"""

HEAD = """@compute @workgroup_size({T})
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {{
    let base = (w.x + w.y * nw.x) * {NC}u;
"""

# f32 rows in registers: K chunks of vec4<f32> a thread.
REG32 = HEAD + """    var v: array<vec4<f32>, {K}>;
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            v[i] = src[base + c];
        }}
    }}
    var m = -3.0e38;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            m = max(m, max(max(v[i].x, v[i].y), max(v[i].z, v[i].w)));
        }}
    }}
    m = reduce_{T}(m, lid, sg, true, {serial});
    var s = 0.0;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            v[i] = exp(v[i] - m);
            s += (v[i].x + v[i].y) + (v[i].z + v[i].w);
        }}
    }}
    let inv = 1.0 / reduce_{T}(s, lid, sg, false, {serial});
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            dst[base + c] = v[i] * inv;
        }}
    }}
}}
"""

# f32 rows read twice: running max and sum, then exp and write (the second read mostly from L2).
ONLINE32 = HEAD + """    var m = -3.0e38;
    var s = 0.0;
    for (var c = lid; c < {NC}u; c += {T}u) {{
        let u = src[base + c];
        let mn = max(m, max(max(u.x, u.y), max(u.z, u.w)));
        let e = exp(u - mn);
        s = s * exp(m - mn) + (e.x + e.y) + (e.z + e.w);
        m = mn;
    }}
    let mm = reduce_{T}(m, lid, sg, true, false);
    let inv = 1.0 / reduce_{T}(s * exp(m - mm), lid, sg, false, false);
    for (var c = lid; c < {NC}u; c += {T}u) {{
        dst[base + c] = exp(src[base + c] - mm) * inv;
    }}
}}
"""

# f16 rows, chunks of 4 halves (vec2<u32>), decoded into vec4<f32> registers (as the library).
REG16_V2 = HEAD + """    var v: array<vec4<f32>, {K}>;
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            let r = src[base + c];
            v[i] = vec4<f32>(unpack2x16float(r.x), unpack2x16float(r.y));
        }}
    }}
    var m = -3.0e38;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            m = max(m, max(max(v[i].x, v[i].y), max(v[i].z, v[i].w)));
        }}
    }}
    m = reduce_{T}(m, lid, sg, true, false);
    var s = 0.0;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            v[i] = exp(v[i] - m);
            s += (v[i].x + v[i].y) + (v[i].z + v[i].w);
        }}
    }}
    let inv = 1.0 / reduce_{T}(s, lid, sg, false, false);
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            let o = v[i] * inv;
            dst[base + c] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));
        }}
    }}
}}
"""

# Softmax of one f16 row held packed in `{V}` (chunks decoded where used), written at row
# offset `{AT}`: the body shared by the packed one-row and the persistent kernels.
RAW16_STEPS = """    var m = -3.0e38;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            let u = vec4<f32>(unpack2x16float({V}[i].x), unpack2x16float({V}[i].y));
            m = max(m, max(max(u.x, u.y), max(u.z, u.w)));
        }}
    }}
    m = reduce_{T}(m, lid, sg, true, false);
    var s = 0.0;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            let e = exp(vec4<f32>(unpack2x16float({V}[i].x), unpack2x16float({V}[i].y)) - m);
            s += (e.x + e.y) + (e.z + e.w);
        }}
    }}
    let inv = 1.0 / reduce_{T}(s, lid, sg, false, false);
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            let o = exp(vec4<f32>(unpack2x16float({V}[i].x), unpack2x16float({V}[i].y)) - m) * inv;
            dst[{AT} + c] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));
        }}
    }}
"""

# f16 rows, chunks of 4 halves kept packed in registers (half the registers), decoded twice.
RAW16_V2 = HEAD + """    var v: array<vec2<u32>, {K}>;
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            v[i] = src[base + c];
        }}
    }}
""" + RAW16_STEPS.replace("{V}", "v").replace("{AT}", "base") + """}}
"""

# f16 rows, chunks of 8 halves (vec4<u32>: one 16-byte load), decoded into two vec4<f32>.
REG16_V4 = HEAD + """    var a: array<vec4<f32>, {K}>;
    var b: array<vec4<f32>, {K}>;
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            let r = src[base + c];
            a[i] = vec4<f32>(unpack2x16float(r.x), unpack2x16float(r.y));
            b[i] = vec4<f32>(unpack2x16float(r.z), unpack2x16float(r.w));
        }}
    }}
    var m = -3.0e38;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            let u = max(a[i], b[i]);
            m = max(m, max(max(u.x, u.y), max(u.z, u.w)));
        }}
    }}
    m = reduce_{T}(m, lid, sg, true, false);
    var s = 0.0;
    for (var i = 0u; i < {K}u; i++) {{
        if (lid + i * {T}u < {NC}u) {{
            a[i] = exp(a[i] - m);
            b[i] = exp(b[i] - m);
            let u = a[i] + b[i];
            s += (u.x + u.y) + (u.z + u.w);
        }}
    }}
    let inv = 1.0 / reduce_{T}(s, lid, sg, false, false);
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u) {{
            let p = a[i] * inv;
            let q = b[i] * inv;
            dst[base + c] = vec4<u32>(pack2x16float(p.xy), pack2x16float(p.zw), pack2x16float(q.xy), pack2x16float(q.zw));
        }}
    }}
}}
"""

# f16 rows, persistent: workgroup g takes rows g, g + G, ... (G workgroups), and loads the next
# row's chunks (packed, vec2<u32>) before it reduces and writes this one, so that a row's
# reductions and write overlap the next row's loads.
PERSIST16_V2 = """@compute @workgroup_size({T})
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {{
    let stride = nw.x * nw.y;
    var r = w.x + w.y * nw.x;
    var cur: array<vec2<u32>, {K}>;
    for (var i = 0u; i < {K}u; i++) {{
        let c = lid + i * {T}u;
        if (c < {NC}u && r < {ROWS}u) {{
            cur[i] = src[r * {NC}u + c];
        }}
    }}
    while (r < {ROWS}u) {{
        let rn = r + stride;
        var nxt: array<vec2<u32>, {K}>;
        for (var i = 0u; i < {K}u; i++) {{
            let c = lid + i * {T}u;
            if (c < {NC}u && rn < {ROWS}u) {{
                nxt[i] = src[rn * {NC}u + c];
            }}
        }}
""" + RAW16_STEPS.replace("{V}", "cur").replace("{AT}", "r * {NC}u") + """        cur = nxt;
        r = rn;
    }}
}}
"""

COPY = """@compute @workgroup_size(256)
fn {name}(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let i = (w.x + w.y * nw.x) * 256u + lid;
    dst[i] = src[i];
}}
"""


def write(name, mib, ty, doc, kernels):
    ts = sorted({k[2]["T"] for k in kernels if "T" in k[2]})
    out = [f"// {doc}", f"// Generated by rows_gen.py; run with: cargo xtask probe {name} --mib {mib}"]
    out.append("// bind 0:src,1:dst")
    for entry, _, p, groups in kernels:
        out.append(f"// dispatch {entry} {groups}")
    out.append("")
    out.append(f"@group(0) @binding(0) var<storage, read> src: array<{ty}>;")
    out.append(f"@group(0) @binding(1) var<storage, read_write> dst: array<{ty}>;")
    out.append(RED.split("fn reduce_")[0])
    for t in ts:
        out.append("fn reduce_" + RED.split("fn reduce_")[1].format(T=t))
    for entry, tmpl, p, _ in kernels:
        out.append(tmpl.format(name=entry, **p))
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(out))


ROWS = 4096
# 4096 x 4096 f16 (32 MiB in, 32 MiB out), chunks of 4 halves.
write("rows16_v2.wgsl", 32, "vec2<u32>", "Softmax over 4096 x 4096 f16, 8-byte chunks (4 halves).", [
    ("copy_v2", COPY, {}, 32 * 2**20 // 8 // 256),
    ("reg16_v2_t256", REG16_V2, dict(T=256, K=4, NC=1024), ROWS),
    ("raw16_v2_t256", RAW16_V2, dict(T=256, K=4, NC=1024), ROWS),
    ("reg16_v2_t128", REG16_V2, dict(T=128, K=8, NC=1024), ROWS),
])
write("rows16_v4.wgsl", 32, "vec4<u32>", "Softmax over 4096 x 4096 f16, 16-byte chunks (8 halves).", [
    ("copy_v4", COPY, {}, 32 * 2**20 // 16 // 256),
    ("reg16_v4_t256", REG16_V4, dict(T=256, K=2, NC=512), ROWS),
    ("reg16_v4_t128", REG16_V4, dict(T=128, K=4, NC=512), ROWS),
    ("reg16_v4_t64", REG16_V4, dict(T=64, K=8, NC=512), ROWS),
])
# 4096 x 32000 f16 (250 MiB each way).
write("rows16w_v2.wgsl", 250, "vec2<u32>", "Softmax over 4096 x 32000 f16, 8-byte chunks.", [
    ("reg16w_v2_t1024", REG16_V2, dict(T=1024, K=8, NC=8000), ROWS),
    ("raw16w_v2_t1024", RAW16_V2, dict(T=1024, K=8, NC=8000), ROWS),
])
write("rows16w_v4.wgsl", 250, "vec4<u32>", "Softmax over 4096 x 32000 f16, 16-byte chunks.", [
    ("reg16w_v4_t1024", REG16_V4, dict(T=1024, K=4, NC=4000), ROWS),
    ("reg16w_v4_t512", REG16_V4, dict(T=512, K=8, NC=4000), ROWS),
])
# 4096 x 32000 f32 (500 MiB each way).
write("rows32w.wgsl", 500, "vec4<f32>", "Softmax over 4096 x 32000 f32: reductions, registers or two reads.", [
    ("reg32w_t1024_serial", REG32, dict(T=1024, K=8, NC=8000, serial="true"), ROWS),
    ("reg32w_t1024_fast", REG32, dict(T=1024, K=8, NC=8000, serial="false"), ROWS),
    ("reg32w_t512_fast", REG32, dict(T=512, K=16, NC=8000, serial="false"), ROWS),
    ("online32w_t1024", ONLINE32, dict(T=1024, NC=8000), ROWS),
    ("online32w_t512", ONLINE32, dict(T=512, NC=8000), ROWS),
])
# 4096 x 32000 f16, persistent workgroups with the next row in flight (and the one-row kernels
# of the same file for the same-run comparison).
write("rows16w_persist.wgsl", 250, "vec2<u32>", "Softmax over 4096 x 32000 f16: one row a workgroup, or persistent workgroups with the next row loaded ahead.", [
    ("raw16w_v2_t1024", RAW16_V2, dict(T=1024, K=8, NC=8000), ROWS),
    ("persist16w_t1024_g128", PERSIST16_V2, dict(T=1024, K=8, NC=8000, ROWS=ROWS), 128),
    ("persist16w_t1024_g132", PERSIST16_V2, dict(T=1024, K=8, NC=8000, ROWS=ROWS), 132),
    ("persist16w_t512_g264", PERSIST16_V2, dict(T=512, K=16, NC=8000, ROWS=ROWS), 264),
    ("persist16w_t512_g256", PERSIST16_V2, dict(T=512, K=16, NC=8000, ROWS=ROWS), 256),
])
