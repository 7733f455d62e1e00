#!/usr/bin/env python3
"""Writes probes of the library's own softmax (rows.wgsl + softmax.wgsl, as the library joins
them) over 4096 x 4096 f16, each with one edit, beside a plain kernel of the same layout
(`simple`: constant sizes, no masks) in the same file. Writes into the folder given (default
/tmp/lp). Run each with: cargo xtask probe FILE --mib 32
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"
LIB = open(os.path.join(ROOT, "shaders/wgsl/rows.wgsl")).read() + open(os.path.join(ROOT, "shaders/wgsl/softmax.wgsl")).read()

SIMPLE = """
var<workgroup> sred: array<f32, 32>;

fn sreduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {
    var x = v;
    for (var off = 1u; off < sg; off = off << 1u) {
        let o = subgroupShuffleXor(x, off);
        x = select(x + o, max(x, o), is_max);
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        sred[lid / sg] = x;
    }
    workgroupBarrier();
    let width = 256u / sg;
    var r = sred[lid % width];
    for (var off = 1u; off < width; off = off << 1u) {
        let o = subgroupShuffleXor(r, off);
        r = select(r + o, max(r, o), is_max);
    }
    return r;
}

@compute @workgroup_size(256)
fn simple(@builtin(workgroup_id) w: vec3<u32>, @builtin(num_workgroups) nw: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    let base = (w.x + w.y * nw.x) * 1024u;
    var v: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        let r = x16[base + lid + i * 256u];
        v[i] = vec4<f32>(unpack2x16float(r.x), unpack2x16float(r.y));
    }
    var m = -3.0e38;
    for (var i = 0u; i < 4u; i++) {
        m = max(m, max(max(v[i].x, v[i].y), max(v[i].z, v[i].w)));
    }
    m = sreduce(m, lid, sg, true);
    var s = 0.0;
    for (var i = 0u; i < 4u; i++) {
        v[i] = exp(v[i] - m);
        s += (v[i].x + v[i].y) + (v[i].z + v[i].w);
    }
    let inv = 1.0 / sreduce(s, lid, sg, false);
    for (var i = 0u; i < 4u; i++) {
        let o = v[i] * inv;
        y16[base + lid + i * 256u] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));
    }
}
"""

HEAD = """// Library softmax f16 4096 x 4096, edit: {what}
// params 4096 4096 0 0 0 0 0 0
// constants WG=256,T=256,K=4,MODE=16
// bind 8:src,9:dst,10:dst
// dispatch softmax_f16_reg 4096
// dispatch simple 4096
"""


def write(name, what, text):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".wgsl"), "w") as f:
        f.write(HEAD.format(what=what) + text + SIMPLE)


def edit(text, old, new):
    assert old in text, old
    return text.replace(old, new)


write("lib_sm16", "none", LIB)
write("lib_sm16_const", "sizes as constants",
      edit(LIB, "var<immediate> p: Params;", "const p = Params(4096u, 4096u, 0u, 0u, 0u, 0u, 0u, 0u);"))
# No boundary stores (they fold away with ALIGNED; this checks that they do).
nob = edit(LIB, """    for (var b = 0u; b < 2u; b++) {
        let i = boundary_slot(b, row);
        if (i < KMAX) {
            let c = row.c0 + row.tid + i * T;
            store16(c, pick(&v, i) * st.inv, lane_mask(c, row));
        }
    }
}

// ---- online""", """}

// ---- online""")
write("lib_sm16_nob", "no boundary stores", nob)
# The library's reductions replaced by the plain kernel's (T = 256 known).
red = edit(LIB, "    m = row_max(m, lid, sg);", "    m = sreduce(m, lid, sg, true);")
red = edit(red, "    s = row_sum(s, lid, sg);", "    s = sreduce(s, lid, sg, false);")
write("lib_sm16_sred", "plain reductions", red)
# Loads without the c < c1 guard (4096-wide rows: every chunk is in the row).
ng = edit(LIB, """        if (c < row.c1) {
            v[i] = load16(c);
        }""", """        v[i] = load16(c);""")
write("lib_sm16_noguard", "loads without their guard", ng)
# No early return of workgroups past the rows (4096 rows: none is), so the subgroup operations
# are not under a branch the compiler cannot see through.
nr = edit(LIB, """fn softmax_f16_reg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {
    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }""", """fn softmax_f16_reg(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg: u32,
) {""")
write("lib_sm16_noret", "no early return", nr)
write("lib_sm16_noret_const", "no early return, sizes as constants",
      edit(nr, "var<immediate> p: Params;", "const p = Params(4096u, 4096u, 0u, 0u, 0u, 0u, 0u, 0u);"))
