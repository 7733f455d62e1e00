#!/usr/bin/env python3
"""Writes probes of the library's t·B dispatch (lora.wgsl, `lora_f32_tb` / `lora_f16_tb`: the
tiled form's second dispatch, y = base + s·t·B) over 4096 x 4096, rank 16, with base, for
several widths T (column chunks a workgroup) and 16-row blocks K (about 256 workgroups or
fewer), each as the library has it and with two ablations:
  none   the library's kernel;
  keepb  B's first 16 ranks held in registers, the products in a branch no run takes;
  nob    no products and no B (t added to base): the loop's loads and stores alone.
Writes into the folder given (default /tmp/lp). Run each with: cargo xtask probe FILE --mib 64
(outputs in benchmarks/h200-2026-11-25-s19/).
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"
LIB = open(os.path.join(ROOT, "shaders/wgsl/lora.wgsl")).read()

# base: src; y and t (scratch, binding 5): dst; B: small. MODE 17: base + ALIGNED.
HEAD = """// Library t·B, 4096 rows, rank 16 -> 4096 with base, T {t}, K {k}; edit: {what}
// params 4096 4096 16 4096 0.5 {cb} 0 1
// constants WG=256,T={t},K={k},MODE=17
// bind 0:src,1:small,2:small,3:src,4:dst,5:dst,8:src,9:small,10:small,11:src,12:dst,13:dst
// dispatch lora_f32_tb {groups} 128
// dispatch lora_f16_tb {groups} 64
"""
ROW16 = """    let at = m * rq;
    var acc = v + q0 * t4[at];
    if (rq > 1u) {
        acc += q1 * t4[at + 1u];
    }
    if (rq > 2u) {
        acc += q2 * t4[at + 2u];
    }
    if (rq > 3u) {
        acc += q3 * t4[at + 3u];
    }
    return acc;
"""
assert ROW16 in LIB
EDITS = {
    "none": ("none", LIB),
    "keepb": ("B kept in registers, no products (they sit in a branch no run takes)", LIB.replace(ROW16, """    let at = m * rq;
    let tv = t4[at];
    if (tv.x == 1.0e30) {
        return v + q0 * tv + q1 * t4[at + 1u] + q2 * t4[at + 2u] + q3 * t4[at + 3u];
    }
    return v + tv;
""")),
    "nob": ("no products and no B (t added to base)", LIB.replace(ROW16, "    return v + t4[m * rq];\n")),
}

os.makedirs(OUT, exist_ok=True)
for t, k in [(64, 16), (128, 8), (128, 16), (256, 4), (256, 8), (32, 16)]:
    cb = 1024 // t
    groups = (4096 // (16 * k)) * cb
    for e, (what, text) in EDITS.items():
        with open(os.path.join(OUT, f"lib_tb_t{t}_k{k}_{e}.wgsl"), "w") as f:
            f.write(HEAD.format(t=t, k=k, cb=cb, groups=groups, what=what) + text)
