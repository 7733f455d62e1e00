#!/usr/bin/env python3
"""Writes A/B probes of the library's RMSNorm and add + RMSNorm one-row-a-workgroup kernels
(`*_reg`) with the weight's MODE bits set one way or the other (rms_norm.wgsl: bit 1 forms
h * w before the reduction, bits 8..11 are the weight chunks loaded before it), over the
shapes of the table. Writes into the folder given (default /tmp/wm) and a list of the files
in run order (`order.txt`). Each file's second line says how to run it.
Its outputs came from the shaders of `bb9d11e`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `bb9d11e` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_ADD, B_RMS, shader  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/wm"
TEXT = shader("rows.wgsl") + shader("rms_norm.wgsl")

os.makedirs(OUT, exist_ok=True)
order = []
# (rows, n, WG = T, K, dtypes)
shapes = [(4096, 4096, 256, 4, ["f32", "f16"]), (4096, 8192, 512, 4, ["f32", "f16"]), (16384, 4096, 256, 4, ["f32", "f16"]), (4096, 32000, 1024, 8, ["f32"])]
for rows, n, t, k, dtypes in shapes:
    for dt in dtypes:
        size = 4 if dt == "f32" else 2
        mib = rows * n * size // (1 << 20)
        run = f"--mib {mib}" + (" --half" if dt == "f16" else "")
        for op, binds, modes, moved in [
            ("rms_norm", B_RMS, [0, 4] + ([2, 3, 5] if k == 8 else []), 2 * mib),
            ("add_rms_norm", B_ADD, ["fold"], 4 * mib),
        ]:
            for m in ["old"] + modes:
                mode = 17
                if m == "fold":
                    mode |= 2
                elif m != "old":
                    mode |= m << 8
                if m == 0:
                    continue
                name = f"{op}_{dt}_{rows}x{n}_mode{mode}"
                with open(os.path.join(OUT, name + ".wgsl"), "w") as f:
                    f.write(f"// {op} {dt} {rows}x{n}, MODE {mode}\n// run: {run}\n// params {rows} {n} 0.00001 0 0 0 0 0\n")
                    f.write(f"// constants WG={t},T={t},K={k},MODE={mode}\n// bind {binds}\n// dispatch {op}_{dt}_reg {rows} {moved}\n")
                    f.write(TEXT)
                order.append(name)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
