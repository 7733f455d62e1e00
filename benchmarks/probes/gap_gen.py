#!/usr/bin/env python3
"""Writes probes for what is left between the library's 4096 x 32000 row kernels and the
copy: the persistent f16 softmax against `rows_gen.py`'s probe of it (141 µs against 147 in
one call) with one edit each, and RMSNorm f32 with its early weight loads moved before the
sum of squares. Writes into the folder given (default /tmp/gap) and `order.txt`.

- `sm16p_lib`: the library; `sm16p_const`: rows and n as constants instead of immediates;
  `sm16p_red`: the probe's reductions (one function, `select` for max / sum) in place of
  `row_max` / `row_sum`.
- `rms32_lib`: the library (5 weight chunks loaded after the sum of squares, before the
  reduction); `rms32_early5` / `rms32_early4`: those loads before the sum of squares, right
  after x's loads go out.
Its outputs came from the shaders of `bb9d11e`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `bb9d11e` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_RMS, B_SM, edit, shader  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gap"
ROWS = shader("rows.wgsl")
SM = ROWS + shader("softmax.wgsl")
RMS = ROWS + shader("rms_norm.wgsl")


PERSIST = SM[SM.index("fn softmax_f16_persist("):SM.index("// ---- online variant")]
CONST = SM.replace(PERSIST, edit(edit(PERSIST, "p.n / 4u", "8000u"), "p.rows", "4096u", 3))
PRED = """
var<workgroup> pred: array<f32, 128>;

fn preduce(v: f32, lid: u32, sg: u32, is_max: bool) -> f32 {
    var x = v;
    for (var off = 1u; off < sg; off = off << 1u) {
        let o = subgroupShuffleXor(x, off);
        x = select(x + o, max(x, o), is_max);
    }
    workgroupBarrier();
    if (lid % sg == 0u) {
        pred[lid / sg] = x;
    }
    workgroupBarrier();
    let per = 1024u / sg;
    let width = min(per, sg);
    let lane = lid % width;
    var r = pred[lane];
    for (var j = lane + width; j < per; j += width) {
        r = select(r + pred[j], max(r, pred[j]), is_max);
    }
    for (var off = 1u; off < width; off = off << 1u) {
        let o = subgroupShuffleXor(r, off);
        r = select(r + o, max(r, o), is_max);
    }
    return r;
}
"""
RED = SM.replace(PERSIST, edit(edit(PERSIST, "row_max(m, lid, sg)", "preduce(m, lid, sg, true)"), "row_sum(s, lid, sg)", "preduce(s, lid, sg, false)")) + PRED

# The early-weight block of rms_reg, moved before the sum of squares.
BLOCK_START = "    let weighted = (MODE & 1u) != 0u;\n    // Aligned rows: the weights' loads"
BLOCK_END = "    let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);\n"
i0 = RMS.index(BLOCK_START)
i1 = RMS.index(BLOCK_END)
block = RMS[i0:i1]
EARLY = RMS[:i0] + RMS[i1:]
EARLY = edit(EARLY, "    var ss = 0.0;\n    for (var i = 0u; i < K; i++) {\n        let c = row.c0 + row.tid + i * T;\n        if (c < row.c1) {\n            ss += sumsq(",
             block + "    var ss = 0.0;\n    for (var i = 0u; i < K; i++) {\n        let c = row.c0 + row.tid + i * T;\n        if (c < row.c1) {\n            ss += sumsq(")

os.makedirs(OUT, exist_ok=True)
order = []


def write(name, what, text, binds, params, consts, dispatch, run):
    with open(os.path.join(OUT, name + ".wgsl"), "w") as f:
        f.write(f"// {what}\n// run: {run}\n// params {params}\n// constants {consts}\n// bind {binds}\n// dispatch {dispatch}\n{text}")
    order.append(name)


h = "--mib 250 --half"
for name, what, text in [("sm16p_lib", "library", SM), ("sm16p_const", "constant sizes", CONST), ("sm16p_red", "the probe's reductions", RED)]:
    write(name, f"softmax f16 4096x32000 persistent: {what}", text, B_SM, "4096 32000 0 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=16", "softmax_f16_persist 128", h)
for name, what, text, pre in [("rms32_lib", "library", RMS, 5), ("rms32_early5", "5 weight chunks before the sum of squares", EARLY, 5), ("rms32_early4", "4 weight chunks before the sum of squares", EARLY, 4)]:
    write(name, f"RMSNorm f32 4096x32000: {what}", text, B_RMS, "4096 32000 0.00001 0 0 0 0 0", f"WG=1024,T=1024,K=8,MODE={17 | pre << 8}", "rms_norm_f32_reg 4096", "--mib 500")
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
