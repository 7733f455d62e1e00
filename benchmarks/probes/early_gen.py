#!/usr/bin/env python3
"""Writes an A/B of the row reductions' early return (`if (T <= sg) { return x; }` in
rows.wgsl's `row_reduce` and softmax.wgsl's `row_max_sum`: a run-time branch before the
reduction's workgroup barriers) against `if (T < 128u && T <= sg)`, which the pipeline's
constants fold away for rows of 128 threads or more (T >= 128 >= any subgroup size, where the
shared-memory path is always right). The persistent f16 softmax with gap_gen.py's probe
reductions (`red`) is the positive control (143.5-144.0 µs against 148.2-149.3 in call 4).
Writes into the folder given (default /tmp/er) and `order.txt`.
Its outputs came from the shaders of `4af29ca`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `4af29ca` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_RMS, B_SM, shader  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/er"
ROWS = shader("rows.wgsl")
SMF = shader("softmax.wgsl")
RMSF = shader("rms_norm.wgsl")
OLD = "    if (T <= sg) {\n"
NEW = "    if (T < 128u && T <= sg) {\n"
assert ROWS.count(OLD) == 1 and SMF.count(OLD) == 1
FROWS, FSMF = ROWS.replace(OLD, NEW), SMF.replace(OLD, NEW)
import gap_gen  # noqa: E402  (writes its own files into /tmp/gap as a side effect)

cases = [
    ("sm16_persist_32000", ROWS + SMF, FROWS + FSMF, gap_gen.RED, B_SM, "4096 32000 0 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=16", "softmax_f16_persist 128", "--mib 250 --half"),
    ("sm16_reg_4096", ROWS + SMF, FROWS + FSMF, None, B_SM, "4096 4096 0 0 0 0 0 0", "WG=256,T=256,K=4,MODE=16", "softmax_f16_reg 4096", "--mib 32 --half"),
    ("sm16_reg_8192", ROWS + SMF, FROWS + FSMF, None, B_SM, "4096 8192 0 0 0 0 0 0", "WG=512,T=512,K=4,MODE=16", "softmax_f16_reg 4096", "--mib 64 --half"),
    ("sm32_reg_4096", ROWS + SMF, FROWS + FSMF, None, B_SM, "4096 4096 0 0 0 0 0 0", "WG=256,T=256,K=4,MODE=16", "softmax_f32_reg 4096", "--mib 64"),
    ("rms16_persist_32000", ROWS + RMSF, FROWS + RMSF, None, B_RMS, "4096 32000 0.00001 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=17", "rms_norm_f16_persist 128", "--mib 250 --half"),
    ("rms16_reg_4096", ROWS + RMSF, FROWS + RMSF, None, B_RMS, "4096 4096 0.00001 0 0 0 0 0", "WG=256,T=256,K=4,MODE=17", "rms_norm_f16_reg 4096", "--mib 32 --half"),
]
os.makedirs(OUT, exist_ok=True)
order = []
for name, lib, fold, red, binds, params, consts, dispatch, run in cases:
    for tag, text in [("lib", lib), ("fold", fold), ("red", red)]:
        if text is None:
            continue
        fname = f"{name}_{tag}"
        with open(os.path.join(OUT, fname + ".wgsl"), "w") as f:
            f.write(f"// {name}: {tag}\n// run: {run}\n// params {params}\n// constants {consts}\n// bind {binds}\n// dispatch {dispatch}\n{text}")
        order.append(fname)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
