#!/usr/bin/env python3
"""Writes an A/B of rows.wgsl (the row machinery: loads, reductions) as at commit REV and as in
the working tree: the library's row kernels with either, over the shapes of the table where
the reductions' share is largest. First used for `combine` (a branch at REV, a select in the
tree: files `*_branch`, `*_select`), then for the first butterfly's bound (`*_old`, `*_new`).
Usage: combine_gen.py REV [FOLDER] [OLD_TAG NEW_TAG] (default /tmp/cb, branch select); writes
`order.txt` too.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_ADD, B_RMS, B_SM, ROOT, shader  # noqa: E402

REV = sys.argv[1]
OUT = sys.argv[2] if len(sys.argv) > 2 else "/tmp/cb"
TAGS = sys.argv[3:5] if len(sys.argv) > 4 else ["branch", "select"]
NEW = shader("rows.wgsl")
OLD = subprocess.run(["git", "show", f"{REV}:shaders/wgsl/rows.wgsl"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
SMF = shader("softmax.wgsl")
RMSF = shader("rms_norm.wgsl")
os.makedirs(OUT, exist_ok=True)
order = []
# name, op file, binds, params, constants, dispatch, run
cases = [
    ("sm16_persist_32000", SMF, B_SM, "4096 32000 0 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=16", "softmax_f16_persist 128", "--mib 250 --half"),
    ("sm16_reg_4096", SMF, B_SM, "4096 4096 0 0 0 0 0 0", "WG=256,T=256,K=4,MODE=16", "softmax_f16_reg 4096", "--mib 32 --half"),
    ("sm16_reg_8192", SMF, B_SM, "4096 8192 0 0 0 0 0 0", "WG=512,T=512,K=4,MODE=16", "softmax_f16_reg 4096", "--mib 64 --half"),
    ("sm32_reg_4096", SMF, B_SM, "4096 4096 0 0 0 0 0 0", "WG=256,T=256,K=4,MODE=16", "softmax_f32_reg 4096", "--mib 64"),
    ("sm32_reg_32000", SMF, B_SM, "4096 32000 0 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=16", "softmax_f32_reg 4096", "--mib 500"),
    ("rms16_persist_32000", RMSF, B_RMS, "4096 32000 0.00001 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=17", "rms_norm_f16_persist 128", "--mib 250 --half"),
    ("add32_reg_32000", RMSF, B_ADD, "4096 32000 0.00001 0 0 0 0 0", "WG=1024,T=1024,K=8,MODE=19", "add_rms_norm_f32_reg 4096 2000", "--mib 500"),
]
for name, opf, binds, params, consts, dispatch, run in cases:
    for tag, rows in [(TAGS[0], OLD), (TAGS[1], NEW)]:
        fname = f"{name}_{tag}"
        with open(os.path.join(OUT, fname + ".wgsl"), "w") as f:
            f.write(f"// {name}, rows.wgsl {tag}\n// run: {run}\n// params {params}\n// constants {consts}\n// bind {binds}\n// dispatch {dispatch}\n")
            f.write(rows + opf)
        order.append(fname)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
