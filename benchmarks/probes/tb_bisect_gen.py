#!/usr/bin/env python3
"""Writes probes of the library's t·B dispatch (lora.wgsl, `lora_f32_tb` / `lora_f16_tb`: y =
base + s·t·B over 4096 x 4096, rank 16, with base, t from one k slice of scratch) at two
layouts (T 64 column chunks x K 8 row blocks, 512 workgroups, the layout of `tb.wgsl`'s
`tb_k8`; T 256 x K 4, 256 workgroups, the rule's), each as the library has it and with one
edit a file, to find what separates the library's loop from `tb.wgsl`'s:
  lib      the library;
  const    the immediates as a module constant (sizes, rank, scale known when compiled);
  norank   no loop over ranks past 16 in the products (rank 16 never enters it);
  nocheck  no row checks in base_raw / put_whole (every tile here is whole);
  crank, cout, crankout: only the rank, only `out`, or both written as numbers;
  cgrid    only the rows, column blocks and k slices written as numbers.
Also the x·A dispatch alone (the rule's wide two-row form, 2 and 4 k slices): as the library
has it, with every immediate a constant, or only the rank or only `in` as a number.
`--rule` writes only the rule's layouts (t·B T 256 x K 4, x·A 2 slices).
Writes into the folder given (default /tmp/lp) and `order.txt`; each file's second line says
how to run it (`cargo xtask probe FILE --mib 64`).
"""
import os
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/lp"
LIB = open(os.path.join(ROOT, "shaders/wgsl/lora.wgsl")).read()


def edit(text, old, new, count=1):
    assert text.count(old) == count, old
    return text.replace(old, new)


BIND_TB = "0:src,1:small,2:small,3:src,4:dst,5:dst,8:src,9:small,10:small,11:src,12:dst,13:dst,14:src"
BIND_XA = "0:src,1:small,2:small,3:small,4:dst,5:dst,8:src,9:small,10:small,11:small,12:dst,13:dst,14:src"

ROW_WHOLE = """    var acc = tb_row16(m, rq, v, q0, q1, q2, q3);
    for (var q = 4u; q < rq; q++) {
        acc += b_quad_whole(f16, 4u * q, col) * t4[m * rq + q];
    }
    return acc;
"""
BASE_CHECK = """fn base_raw(f16: bool, m: u32, col: u32, m0: u32, tm: u32) -> vec4<u32> {
    if (m >= tm || mode() == 0u) {"""
PUT_CHECK = """fn put_whole(f16: bool, m: u32, col: u32, m0: u32, tm: u32, v: vec4<f32>) {
    if (m >= tm) {
        return;
    }"""


def consts(text, cb, slices):
    return edit(text, "var<immediate> p: Params;", f"const p = Params(4096u, 4096u, 16u, 4096u, 0.5, {cb}u, 1u, {slices}u);")


def sub(text, old, new):
    assert old in text, old
    return text.replace(old, new)


EDITS = {
    "lib": lambda t, cb: t,
    "const": lambda t, cb: consts(t, cb, 1),
    "crank": lambda t, cb: sub(t, "p.rank", "16u"),
    "cout": lambda t, cb: sub(t, "p.n_out", "4096u"),
    "crankout": lambda t, cb: sub(sub(t, "p.rank", "16u"), "p.n_out", "4096u"),
    "cgrid": lambda t, cb: sub(sub(sub(t, "p.rows", "4096u"), "p.col_blocks", f"{cb}u"), "p.slices", "1u"),
    "norank": lambda t, cb: edit(t, ROW_WHOLE, "    return tb_row16(m, rq, v, q0, q1, q2, q3);\n"),
    "nocheck": lambda t, cb: edit(edit(t, BASE_CHECK, BASE_CHECK.replace("m >= tm || ", "")), PUT_CHECK,
                                  PUT_CHECK.replace("    if (m >= tm) {\n        return;\n    }", "")),
}

LAYOUTS = [(256, 4)] if "--rule" in sys.argv else [(64, 8), (256, 4)]
os.makedirs(OUT, exist_ok=True)
order = []
for t, k in LAYOUTS:
    cb = 1024 // t
    groups = 4096 // (16 * k) * cb
    for name, f in EDITS.items():
        file = f"tb_{name}_c{t}k{k}"
        with open(os.path.join(OUT, file + ".wgsl"), "w") as out:
            out.write(f"// Library t·B, 4096 x 4096 r16 with base, T {t}, K {k}: {name}\n// run: --mib 64\n"
                      f"// params 4096 4096 16 4096 0.5 {cb} 0 1\n// constants WG=256,T={t},K={k},MODE=17\n"
                      f"// bind {BIND_TB}\n// dispatch lora_f32_tb {groups} 128\n// dispatch lora_f16_tb {groups} 64\n"
                      + f(LIB, cb))
        order.append(file)
XA_EDITS = {
    "lib": lambda t: t,
    "const": lambda t: consts(t, 4, 2),
    "crank": lambda t: sub(t, "p.rank", "16u"),
    "ckin": lambda t: sub(t, "p.k_in", "4096u"),
}
for slices, k in [(2, 16)] if "--rule" in sys.argv else [(2, 16), (4, 8)]:
    for name, f in XA_EDITS.items():
        file = f"xa_{name}_s{slices}"
        with open(os.path.join(OUT, file + ".wgsl"), "w") as out:
            out.write(f"// Library x·A alone (wide two-row form), 4096 x 4096 r16, {slices} k slices of {k} tiles: {name}\n// run: --mib 64\n"
                      f"// params 4096 4096 16 4096 0.5 4 0 {slices}\n// constants WG=256,T=16,K={k},MODE=81\n"
                      f"// bind {BIND_XA}\n// dispatch lora_f32_xa {128 * slices} 64\n// dispatch lora_f16_xa {128 * slices} 32\n" + f(LIB))
        order.append(file)
with open(os.path.join(OUT, "order.txt"), "w") as f:
    f.write("\n".join(order) + "\n")
