"""Softmax f32 over 4096 x 4096, the library's softmax_f32_reg with both sizes written in (as
`s29_bisect_gen.py`'s b_lib_const), with its guards taken out one at a time and all together:
  g_const      as it is
  g_noguard    no `c < row.c1` guards on the loads, the stores and the two loops of reg_softmax
  g_noreturn   no early return for workgroups past the last row
  g_norow      row_of without its branch for rows past the last
  g_all        all three
python3 s29_guards_gen.py FOLDER; then `xtask probe FOLDER/g_*.wgsl --mib 64 --dump 4096`
(beside s29_bisect_gen.py's b_plain)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe

OUT = sys.argv[1]
LIB = edit(shader("rows.wgsl") + shader("softmax.wgsl"), "@group(0) @binding(31) var<uniform> p: Params;",
           "const p = Params(4096u, 4096u, 0u, 0u, 0u, 0u, 0u, 0u);")


def noguard(t):
    t = edit(t, """        if (c < row.c1) {
            v[i] = x32[c];
        }""", "        v[i] = x32[c];")
    t = edit(t, """        if (c < row.c1 && full(c, row)) {
            y32[c] = v[i] * st.inv;
        }""", "        y32[c] = v[i] * st.inv;")
    start, end = t.index("fn reg_softmax("), t.index("@compute @workgroup_size(WG)\nfn softmax_f32_reg(")
    return t[:start] + edit(t[start:end], "if (c < row.c1) {", "if (true) {", 2) + t[end:]


def noreturn(t):
    return edit(t, """    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (c < row.c1) {
            v[i] = x32[c];""", """    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        if (c < row.c1) {
            v[i] = x32[c];""") if "if (c < row.c1) {\n            v[i] = x32[c];" in t else edit(t, """    if ((wid.x + wid.y * nwg.x) * (WG / T) >= p.rows) {
        return;
    }
    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        v[i] = x32[c];""", """    let row = row_of(wid, nwg, lid, p.rows, p.n);
    var v: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = row.c0 + row.tid + i * T;
        v[i] = x32[c];""")


def norow(t):
    return edit(t, "    row.valid = r < rows;\n    if (row.valid) {", "    row.valid = true;\n    if (true) {")


HEAD = ["// constants WG=256,T=256,K=4,MODE=16", "// bind 0:src,1:dst", "// dispatch softmax_f32_reg 4096"]
for name, text in (("g_const", LIB), ("g_noguard", noguard(LIB)), ("g_noreturn", noreturn(LIB)), ("g_norow", norow(LIB)),
                   ("g_all", norow(noreturn(noguard(LIB))))):
    write_probe(OUT, name, [f"// library softmax_f32_reg, sizes written in: {name}"] + HEAD, text)


def serial(t):
    """row_reduce's second level as a serial loop over the subgroups' results (the plain kernel's)."""
    start, end = t.index("fn row_reduce("), t.index("// Max or sum of v over `width`")
    return t[:start] + """fn row_reduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {
    let x = butterfly(v, sg, is_max);
    workgroupBarrier();
    if (lid % sg == 0u) {
        red[lid / sg] = x;
    }
    workgroupBarrier();
    let per = T / sg;
    let first = (lid / T) * per;
    var r = red[first];
    for (var j = 1u; j < per; j++) {
        r = combine(r, red[first + j], is_max);
    }
    return r;
}

""" + t[end:]


write_probe(OUT, "g_allserial", ["// library softmax_f32_reg, sizes written in: g_all, serial second-level reduction (T >= sg)"] + HEAD,
            serial(norow(noreturn(noguard(LIB)))))
