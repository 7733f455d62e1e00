#!/usr/bin/env python3
"""Writes probes of the library's skinny LoRA dispatch (lora.wgsl, `lora_f32_skinny` /
`lora_f16_skinny`, base add) at decoding (1 x 4096, rank 16 -> 4096: 1024 threads, 32 column
blocks) and at 512 x 512, rank 8 -> 512 (256 threads, 2 rows a tile, one column block), each
with one phase left out, to show where the time of a small LoRA goes:
  none   the library's kernel;
  no_tb  x·A only (the t·B phase replaced by a store that never happens);
  no_xa  t·B only (t is workgroup memory, zero-filled);
  empty  neither phase: the launch of the same grid.
Writes into the folder given (default /tmp/lp). Run each with: cargo xtask probe FILE --mib 1
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"
LIB = open(os.path.join(ROOT, "shaders/wgsl/lora.wgsl")).read()

# x: src; A, B, base: small (1 MiB); y: dst. MODE 17: base + ALIGNED.
SHAPES = {
    "dec": ("1 x 4096, rank 16 -> 4096", "1 4096 16 4096 0.5 32 32 0", "WG=1024,T=1,K=1,MODE=17", 32),
    "sq": ("512 x 512, rank 8 -> 512", "512 512 8 512 0.5 1 128 0", "WG=256,T=1,K=2,MODE=17", 256),
}
HEAD = """// Library skinny LoRA, {shape}; edit: {what}
// params {params}
// constants {consts}
// bind 0:src,1:small,2:small,3:small,4:dst,5:dst,8:src,9:small,10:small,11:small,12:dst,13:dst
// dispatch lora_f32_skinny {groups} 1
// dispatch lora_f16_skinny {groups} 1
"""

CALL_TB = "    sk_tb(f16, m0, nrow, g % p.col_blocks, lid);\n"
CALL_XA = "    sk_xa(f16, m0, nrow, lid, sg);\n"
# A store no run takes (t is finite), so that the compiler keeps the phase before it.
KEEP = "    if (lid == 0u && sk_t[0].x == 1.0e30) { finish(f16, 0u, 0u, 4u, true, m0, nrow, sk_t[0]); }\n"


def edit(text, old, new):
    assert old in text, old
    return text.replace(old, new)


EDITS = {
    "none": ("none", LIB),
    "no_tb": ("x·A only", edit(LIB, CALL_TB, KEEP)),
    "no_xa": ("t·B only", edit(LIB, CALL_XA, "")),
    "empty": ("neither phase", edit(edit(LIB, CALL_TB, KEEP), CALL_XA, "")),
}

os.makedirs(OUT, exist_ok=True)
for s, (shape, params, consts, groups) in SHAPES.items():
    for e, (what, text) in EDITS.items():
        with open(os.path.join(OUT, f"lib_{s}_{e}.wgsl"), "w") as f:
            f.write(HEAD.format(shape=shape, what=what, params=params, consts=consts, groups=groups) + text)
