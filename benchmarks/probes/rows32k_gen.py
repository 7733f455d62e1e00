#!/usr/bin/env python3
"""Writes probes of the library's row kernels over 4096 x 32000 (the rows that miss 97% of the
copy), each the library's shader (rows.wgsl + the op's file, as the library joins them) with
at most one edit. Writes into the folder given (default /tmp/r32). Each file's first comment
line says how to run it (`cargo xtask probe FILE --mib N [--half]`).

- f32 RMSNorm / add + RMSNorm, one row a 1024-thread workgroup (`*_reg`):
  `lib` as it is (and its looped form, `*_online`); `now` without the weight (the bound of the
  weight's loads); `wpreN` the weight of the first N chunks loaded before the row's reduction
  and used after it; `wfold` x * w formed before the reduction (weights loaded right after x).
- f16 persistent kernels (128 workgroups): `lib`; `d2` (softmax) the rows two ahead in flight
  instead of one; `wreg` (RMSNorm) the weight loaded once a workgroup, held across its rows.
Its outputs came from the shaders of `fc6c8ea`: the edits match that text and may not apply,
or may not mean the same, to a later one (check out `fc6c8ea` to write the same files).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_ADD, B_RMS, B_SM, edit, shader  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/r32"
ROWS = shader("rows.wgsl")
RMS = ROWS + shader("rms_norm.wgsl")
SM = ROWS + shader("softmax.wgsl")

P_RMS = "4096 32000 0.00001 0 0 0 0 0"
P_SM = "4096 32000 0 0 0 0 0 0"


def write(name, run, what, text, binds, params, mode, dispatches):
    os.makedirs(OUT, exist_ok=True)
    head = [
        f"// {what}",
        f"// run: cargo xtask probe {name}.wgsl {run}",
        f"// params {params}",
        f"// constants WG=1024,T=1024,K=8,MODE={mode}",
        f"// bind {binds}",
    ] + [f"// dispatch {d}" for d in dispatches]
    with open(os.path.join(OUT, name + ".wgsl"), "w") as f:
        f.write("\n".join(head) + "\n" + text)


WLOAD = "                    o *= load_w(f16, c - row.c0);\n"
INV = "    let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);\n    let weighted = (MODE & 1u) != 0u;\n"


def wpre(n):
    t = edit(RMS, INV, f"""    let weighted = (MODE & 1u) != 0u;
    var wp: array<vec4<f32>, KMAX>;
    if (aligned() && weighted) {{
        for (var i = 0u; i < {n}u; i++) {{
            let c = row.c0 + row.tid + i * T;
            if (i < K && c < row.c1) {{
                wp[i] = load_w(f16, c - row.c0);
            }}
        }}
    }}
    let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);
""")
    return edit(t, WLOAD, f"""                    if (i < {n}u) {{
                        o *= wp[i];
                    }} else {{
                        o *= load_w(f16, c - row.c0);
                    }}
""")


WFOLD = edit(edit(RMS, INV, """    if (aligned() && (MODE & 1u) != 0u) {
        for (var i = 0u; i < K; i++) {
            let c = row.c0 + row.tid + i * T;
            if (c < row.c1) {
                v[i] *= load_w(f16, c - row.c0);
            }
        }
    }
""" + INV), WLOAD, "")

f32_rms = dict(run="--mib 500", binds=B_RMS, params=P_RMS)
for name, what, text, mode, ds in [
    ("rms32_lib", "library RMSNorm f32 4096x32000 (and its looped form)", RMS, 17, ["rms_norm_f32_reg 4096", "rms_norm_f32_online 4096"]),
    ("rms32_now", "library RMSNorm f32 4096x32000 without the weight", RMS, 16, ["rms_norm_f32_reg 4096"]),
    ("rms32_wpre8", "RMSNorm f32 4096x32000, all 8 weight chunks loaded before the reduction", wpre(8), 17, ["rms_norm_f32_reg 4096"]),
    ("rms32_wpre4", "RMSNorm f32 4096x32000, 4 weight chunks loaded before the reduction", wpre(4), 17, ["rms_norm_f32_reg 4096"]),
    ("rms32_wfold", "RMSNorm f32 4096x32000, x * w formed before the reduction", WFOLD, 17, ["rms_norm_f32_reg 4096"]),
]:
    write(name, what=what, text=text, mode=mode, dispatches=ds, **f32_rms)

f32_add = dict(run="--mib 500", binds=B_ADD, params=P_RMS)
for name, what, text, mode, ds in [
    ("add32_lib", "library add + RMSNorm f32 4096x32000 (and its looped form)", RMS, 17, ["add_rms_norm_f32_reg 4096 2000", "add_rms_norm_f32_online 4096 2000"]),
    ("add32_now", "library add + RMSNorm f32 4096x32000 without the weight", RMS, 16, ["add_rms_norm_f32_reg 4096 2000"]),
    ("add32_wpre8", "add + RMSNorm f32 4096x32000, all 8 weight chunks loaded before the reduction", wpre(8), 17, ["add_rms_norm_f32_reg 4096 2000"]),
    ("add32_wfold", "add + RMSNorm f32 4096x32000, x * w formed before the reduction", WFOLD, 17, ["add_rms_norm_f32_reg 4096 2000"]),
]:
    write(name, what=what, text=text, mode=mode, dispatches=ds, **f32_add)

write("sm32_lib", "--mib 500", "library softmax f32 4096x32000 (the reference: no weight)", SM, B_SM, P_SM, 16, ["softmax_f32_reg 4096"])

# f16, persistent.
SM_D2 = edit(SM, """    var cur: array<vec2<u32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = lid + i * T;
        if (c < nc && r < p.rows) {
            cur[i] = x16[r * nc + c];
        }
    }
    while (r < p.rows) {
        let rn = r + stride;
        var nxt: array<vec2<u32>, KMAX>;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc && rn < p.rows) {
                nxt[i] = x16[rn * nc + c];
            }
        }
""", """    var cur: array<vec2<u32>, KMAX>;
    var nx1: array<vec2<u32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = lid + i * T;
        if (c < nc && r < p.rows) {
            cur[i] = x16[r * nc + c];
        }
        if (c < nc && r + stride < p.rows) {
            nx1[i] = x16[(r + stride) * nc + c];
        }
    }
    while (r < p.rows) {
        let rn = r + stride;
        let r2 = rn + stride;
        var nx2: array<vec2<u32>, KMAX>;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc && r2 < p.rows) {
                nx2[i] = x16[r2 * nc + c];
            }
        }
""")
SM_D2 = edit(SM_D2, "        cur = nxt;\n        r = rn;\n", "        cur = nx1;\n        nx1 = nx2;\n        r = rn;\n")

RMS_WREG = edit(RMS, """    var nr: array<vec2<u32>, KMAX>;
""", """    var nr: array<vec2<u32>, KMAX>;
    var wr: array<vec2<u32>, KMAX>;
    if (weighted) {
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                wr[i] = w16[c];
            }
        }
    }
""")
RMS_WREG = edit(RMS_WREG, "                    o *= unpack4(w16[c]);\n", "                    o *= unpack4(wr[i]);\n")

h = dict(run="--mib 250 --half")
write("sm16_lib", what="library softmax f16 4096x32000, persistent", text=SM, binds=B_SM, params=P_SM, mode=16, dispatches=["softmax_f16_persist 128"], **h)
write("sm16_d2", what="softmax f16 4096x32000, persistent, two rows ahead", text=SM_D2, binds=B_SM, params=P_SM, mode=16, dispatches=["softmax_f16_persist 128"], **h)
write("rms16_lib", what="library RMSNorm f16 4096x32000, persistent", text=RMS, binds=B_RMS, params=P_RMS, mode=17, dispatches=["rms_norm_f16_persist 128"], **h)
write("rms16_wreg", what="RMSNorm f16 4096x32000, persistent, weight held across rows", text=RMS_WREG, binds=B_RMS, params=P_RMS, mode=17, dispatches=["rms_norm_f16_persist 128"], **h)
write("add16_lib", what="library add + RMSNorm f16 4096x32000, persistent", text=RMS, binds=B_ADD, params=P_RMS, mode=17, dispatches=["add_rms_norm_f16_persist 128 1000"], **h)
write("add16_wreg", what="add + RMSNorm f16 4096x32000, persistent, weight held across rows", text=RMS_WREG, binds=B_ADD, params=P_RMS, mode=17, dispatches=["add_rms_norm_f16_persist 128 1000"], **h)
