"""Softmax over 4096 x 4096 (f32, and f16 with `--half`): the library's register kernel (after the
serial second-level reduction, commit 2f76993) with what a pipeline specialised for its row
length could drop:
  s{32,16}_lib     as it is (sizes from the uniform)
  s{32,16}_n       the row length written in (rows still from the uniform)
  s{32,16}_exact   the `c < row.c1` guards gone (rows exactly covered by T x K chunks)
  s{32,16}_both    both
python3 s29_spec_gen.py FOLDER; then `xtask probe FOLDER/s32_*.wgsl --mib 64` and
`xtask probe FOLDER/s16_*.wgsl --mib 32 --half` (with `--dump 4096` to compare outputs)."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe, B_SM

OUT = sys.argv[1]
LIB = shader("rows.wgsl") + shader("softmax.wgsl")


def exact(t):
    t = edit(t, """        if (c < row.c1) {
            v[i] = x32[c];
        }""", "        v[i] = x32[c];")
    t = edit(t, """        if (c < row.c1 && full(c, row)) {
            y32[c] = v[i] * st.inv;
        }""", "        y32[c] = v[i] * st.inv;")
    t = edit(t, """        if (c < row.c1) {
            v[i] = load16(c);
        }""", "        v[i] = load16(c);")
    t = edit(t, """        if (c < row.c1 && full(c, row)) {
            let o = v[i] * st.inv;""", """        if (true) {
            let o = v[i] * st.inv;""")
    start, end = t.index("fn reg_softmax("), t.index("@compute @workgroup_size(WG)\nfn softmax_f32_reg(")
    return t[:start] + edit(t[start:end], "if (c < row.c1) {", "if (true) {", 2) + t[end:]


def ncols(t):
    return t.replace("p.n", "4096u")


for dt, entry in (("32", "softmax_f32_reg"), ("16", "softmax_f16_reg")):
    for name, text in (("lib", LIB), ("n", ncols(LIB)), ("exact", exact(LIB)), ("both", exact(ncols(LIB)))):
        write_probe(OUT, f"s{dt}_{name}", [f"// library {entry}: {name}", "// params 4096 4096 0 0 0 0 0 0", "// uniform 31",
                                           "// constants WG=256,T=256,K=4,MODE=16", f"// bind {B_SM}", f"// dispatch {entry} 4096"], text)
