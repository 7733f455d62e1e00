#!/usr/bin/env python3
"""Writes an A/B of rows.wgsl's `row_reduce` written as one function (the butterflies and
their max / sum step inline, as gap_gen.py's probe reduction `preduce` that ran the persistent
f16 softmax 4-5 µs faster) against the library's (calls to `butterfly` and `combine`), with and
without the row's first entry folded to 0 for one row a workgroup, and the probe reduction as
the positive control. Writes into the folder given (default /tmp/rr) and `order.txt`.
Its outputs came from the shaders of `4af29ca`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `4af29ca` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_RMS, B_SM, shader  # noqa: E402
import gap_gen  # noqa: E402  (writes its own files into /tmp/gap as a side effect)

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/rr"
ROWS = shader("rows.wgsl")
SMF = shader("softmax.wgsl")
RMSF = shader("rms_norm.wgsl")
START = "fn row_reduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {"
END = "// Max or sum of v over `width` neighbouring lanes"
i0, i1 = ROWS.index(START), ROWS.index(END)
INLINE = """fn row_reduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {
    var x = v;
    for (var off = 1u; off < min(T, sg); off = off << 1u) {
        let o = subgroupShuffleXor(x, off);
        x = select(x + o, max(x, o), is_max);
    }
    if (T <= sg) {
        return x;
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        red[lid / sg] = x;
    }
    workgroupBarrier();
    let per = T / sg;
    let width = min(per, sg);
    let first = FIRST;
    let lane = lid % width;
    var r = red[first + lane];
    for (var j = lane + width; j < per; j += width) {
        let o = red[first + j];
        r = select(r + o, max(r, o), is_max);
    }
    for (var off = 1u; off < width; off = off << 1u) {
        let o = subgroupShuffleXor(r, off);
        r = select(r + o, max(r, o), is_max);
    }
    return r;
}

"""
B = ROWS[:i0] + INLINE.replace("FIRST", "(lid / T) * per") + ROWS[i1:]
C = ROWS[:i0] + INLINE.replace("FIRST", "select(0u, (lid / T) * per, WG > T)") + ROWS[i1:]
cases = [
    ("sm16_persist_32000", SMF, gap_gen.RED, B_SM, "4096 32000 0 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=16", "softmax_f16_persist 128", "--mib 250 --half"),
    ("sm16_reg_4096", SMF, None, B_SM, "4096 4096 0 0 0 0 0 0", "WG=256,T=256,K=4,MODE=16", "softmax_f16_reg 4096", "--mib 32 --half"),
    ("rms16_persist_32000", RMSF, None, B_RMS, "4096 32000 0.00001 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=17", "rms_norm_f16_persist 128", "--mib 250 --half"),
]
os.makedirs(OUT, exist_ok=True)
order = []
for name, opf, red, binds, params, consts, dispatch, run in cases:
    for tag, text in [("lib", ROWS + opf), ("inline", B + opf), ("inline0", C + opf), ("red", red)]:
        if text is None:
            continue
        fname = f"{name}_{tag}"
        with open(os.path.join(OUT, fname + ".wgsl"), "w") as f:
            f.write(f"// {name}: {tag}\n// run: {run}\n// params {params}\n// constants {consts}\n// bind {binds}\n// dispatch {dispatch}\n{text}")
        order.append(fname)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")

# Second call: what is left between `inline0` and the probe reduction. `sgloop`: inline0 with
# the first butterfly over `sg` lanes (the probe's bound) instead of min(T, sg), and no early
# return; `red_in_red`: the probe reduction on the library's `red` array instead of its own
# `pred`; `red128`: the library with `red` declared 128 long (enough for 1024 threads only from
# subgroups of 8: a probe, not a kernel).
D = ROWS[:i0] + INLINE.replace("FIRST", "select(0u, (lid / T) * per, WG > T)").replace("off < min(T, sg)", "off < sg").replace("    if (T <= sg) {\n        return x;\n    }\n", "") + ROWS[i1:]
E = gap_gen.RED.replace("pred[", "red[").replace("var<workgroup> pred: array<f32, 128>;", "")
F = (ROWS + SMF).replace("var<workgroup> red: array<f32, 256>;", "var<workgroup> red: array<f32, 128>;")
assert D != ROWS and E != gap_gen.RED and F != ROWS + SMF
order2 = []
for tag, text in [("lib", ROWS + SMF), ("sgloop", D + SMF), ("red_in_red", E), ("red128", F), ("red", gap_gen.RED)]:
    fname = f"sm16_persist_32000_{tag}"
    with open(os.path.join(OUT, "2_" + fname + ".wgsl"), "w") as f:
        f.write(f"// sm16_persist_32000: {tag}\n// run: --mib 250 --half\n// params 4096 32000 0 0 0 0 0 0\n// constants WG=1024,T=1024,K=8,MODE=16\n// bind {B_SM}\n// dispatch softmax_f16_persist 128\n{text}")
    order2.append("2_" + fname)
with open(os.path.join(OUT, "order2.txt"), "w") as f:
    f.write("\n".join(order2) + "\n")
