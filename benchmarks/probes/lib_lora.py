#!/usr/bin/env python3
"""Writes probes of the library's x·A dispatch (lora.wgsl, `lora_f32_xa` / `lora_f16_xa`) over
x 4096 x 4096, rank 16, each with one change: k slices (workgroups), or x loaded at its use
instead of a tile ahead. Writes into the folder given (default /tmp/lp), names starting with
the prefix given (default lib_xa).
Run each with: cargo xtask probe FILE --mib 64
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"
LIB = open(os.path.join(ROOT, "shaders/wgsl/lora.wgsl")).read()

# x: src (64 MiB: f32 4096 x 4096, or f16 over its first 32 MiB); A, B, base: small; y,
# scratch: dst. MODE 17: base + ALIGNED.
HEAD = """// Library x·A, 4096 rows x 4096 in, rank 16, {slices} k slices of {k} tiles; edit: {what}
// params 4096 4096 16 4096 0.5 16 0 {slices}
// constants WG=256,T=32,K={k},MODE=17
// bind 0:src,1:small,2:small,3:small,4:dst,5:dst,8:src,9:small,10:small,11:small,12:dst,13:dst
// dispatch lora_f32_xa {groups} 64
// dispatch lora_f16_xa {groups} 32
"""


def write(name, what, text, slices=2):
    k = 32 // slices
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name + ".wgsl"), "w") as f:
        f.write(HEAD.format(what=what, slices=slices, k=k, groups=128 * slices) + text)


def edit(text, old, new):
    assert old in text, old
    return text.replace(old, new)


PREFIX = sys.argv[2] if len(sys.argv) > 2 else "lib_xa"
write(PREFIX, "none", LIB)
write(PREFIX + "_s1", "1 k slice (128 workgroups)", LIB, slices=1)
write(PREFIX + "_s4", "4 k slices (512 workgroups)", LIB, slices=4)
write(PREFIX + "_s8", "8 k slices (1024 workgroups)", LIB, slices=8)
nop = edit(LIB, """            let n0 = x_at(f16, rm, 0u, nrow, kn + 4u * kl, k1, in_aligned);
            let n1 = x_at(f16, rm, 1u, nrow, kn + 4u * kl, k1, in_aligned);
            let n2 = x_at(f16, rm, 2u, nrow, kn + 4u * kl, k1, in_aligned);
            let n3 = x_at(f16, rm, 3u, nrow, kn + 4u * kl, k1, in_aligned);
""", "")
nop = edit(nop, """            x0 = n0;
            x1 = n1;
            x2 = n2;
            x3 = n3;
""", """            x0 = x_at(f16, rm, 0u, nrow, kn + 4u * kl, k1, in_aligned);
            x1 = x_at(f16, rm, 1u, nrow, kn + 4u * kl, k1, in_aligned);
            x2 = x_at(f16, rm, 2u, nrow, kn + 4u * kl, k1, in_aligned);
            x3 = x_at(f16, rm, 3u, nrow, kn + 4u * kl, k1, in_aligned);
""")
write(PREFIX + "_late", "x of the next tile loaded after the products (fewer registers)", nop)
write(PREFIX + "_late_s4", "x loaded late, 4 k slices", nop, slices=4)
