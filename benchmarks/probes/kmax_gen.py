#!/usr/bin/env python3
"""Writes probes of the library's f16 row kernels as they are and with the register arrays
sized to the variant's K instead of KMAX (16), the one difference in structure left between
the library's persistent softmax and the probe that led to it (`rows_gen.py`'s
`rows16w_persist.wgsl`, whose arrays hold K entries). Writes into the folder given (default
/tmp/km) and `order.txt`. Each file's second line says how to run it.
Its outputs came from the shaders of `bb9d11e`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `bb9d11e` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_ADD, B_RMS, B_SM, shader  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/km"
ROWS = shader("rows.wgsl")
SM = ROWS + shader("softmax.wgsl")
RMS = ROWS + shader("rms_norm.wgsl")
KM = "const KMAX: u32 = 16u;"
os.makedirs(OUT, exist_ok=True)
order = []
# name, text, binds, params, (WG, K, MODE), entry, groups, mib, moved
cases = [
    ("sm16_persist_32000", SM, B_SM, "4096 32000", (1024, 8, 16), "softmax_f16_persist", 128, 250, 500),
    ("rms16_persist_32000", RMS, B_RMS, "4096 32000 0.00001", (1024, 8, 17), "rms_norm_f16_persist", 128, 250, 500),
    ("add16_persist_32000", RMS, B_ADD, "4096 32000 0.00001", (1024, 8, 17), "add_rms_norm_f16_persist", 128, 250, 1000),
    ("sm16_reg_4096", SM, B_SM, "4096 4096", (256, 4, 16), "softmax_f16_reg", 4096, 32, 64),
    ("sm16_reg_8192", SM, B_SM, "4096 8192", (512, 4, 16), "softmax_f16_reg", 4096, 64, 128),
    ("add16_reg_8192", RMS, B_ADD, "4096 8192 0.00001", (512, 4, 17), "add_rms_norm_f16_reg", 4096, 64, 256),
]
for name, text, binds, params, (wg, k, mode), entry, groups, mib, moved in cases:
    assert text.count(KM) == 1
    for kmax in [16, k]:
        fname = f"{name}_kmax{kmax}"
        t = text.replace(KM, f"const KMAX: u32 = {kmax}u;")
        params8 = (params + " 0 0 0 0 0 0 0 0").split()[:8]
        with open(os.path.join(OUT, fname + ".wgsl"), "w") as f:
            f.write(f"// {entry} over {params}, KMAX {kmax}\n// run: --mib {mib} --half\n// params {' '.join(params8)}\n")
            f.write(f"// constants WG={wg},T={wg},K={k},MODE={mode}\n// bind {binds}\n// dispatch {entry} {groups} {moved}\n")
            f.write(t)
        order.append(fname)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
