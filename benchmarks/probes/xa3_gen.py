#!/usr/bin/env python3
"""Writes probes of LoRA's x·A (x 4096 x 4096, rank 16) in the row-lane layout of
`xa2_gen.py`, with every loop unrolled here (no register arrays), and ablations: `full`,
`nomac` (x summed, no A), `rega` (A from registers, no shared-memory reads), and `r2` (two rows
a thread, so that each read of A feeds 32 products). One file per variant and dtype, into the
folder given (default /tmp/xa3). Run each with: cargo xtask probe FILE --mib 64
"""
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/xa3"


def gen(dtype, j, variant):
    f16 = dtype == "f16"
    ch = 8 if f16 else 4
    rows_t = 2 if variant == "r2" else 1
    wg = 256
    rw = wg // 4  # row slots a workgroup
    rows_wg = rw * rows_t
    krw = 4 * j * ch
    slices = 4096 // krw
    groups = (4096 // rows_wg) * slices
    nc = 4096 // ch
    xt = "vec4<u32>" if f16 else "vec4<f32>"
    at = "vec2<u32>" if f16 else "vec4<f32>"
    mib = (32 if f16 else 64) + slices * 4096 * 16 * 4 / (1 << 20)
    L = []
    w = L.append
    w(f"// x·A probe {dtype} {variant}: {rows_wg} rows x {krw} k a workgroup, {j} chunks a thread, {slices} slices")
    w(f"// dispatch xa {groups} {mib}")
    w(f"@group(0) @binding(0) var<storage, read> src: array<{xt}>;")
    w("@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;")
    w(f"@group(0) @binding(2) var<storage, read> small: array<{at}>;")
    w(f"var<workgroup> a_s: array<vec4<f32>, {krw * 4 + krw // ch}>;")
    w(f"fn aq(k: u32, q: u32) -> vec4<f32> {{")
    if f16:
        w("    let v = small[k * 4u + q];\n    return vec4<f32>(unpack2x16float(v.x), unpack2x16float(v.y));\n}")
    else:
        w("    return small[k * 4u + q];\n}")
    w("@compute @workgroup_size(256)")
    w("fn xa(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {")
    w("    let g = wid.x + wid.y * nwg.x;")
    w(f"    let tile = g / {slices}u;")
    w(f"    let s = g % {slices}u;")
    w("    let ks = lid % 4u;")
    w(f"    let row = tile * {rows_wg}u + lid / 4u;")
    w(f"    let kb = s * {krw}u;")
    for r in range(rows_t):
        for jj in range(j):
            w(f"    let x{r}_{jj} = src[(row + {r * rw}u) * {nc}u + kb / {ch}u + ks + {4 * jj}u];")
    if variant != "nomac":
        w(f"    for (var i = lid; i < {krw * 4}u; i += 256u) {{")
        w(f"        let kk = i / 4u;")
        w(f"        a_s[kk * 4u + i % 4u + kk / {ch}u] = aq(kb + kk, i % 4u);")
        w("    }")
        w("    workgroupBarrier();")
    if variant == "rega":
        for q in range(4):
            w(f"    let ra{q} = a_s[lid % 64u * 4u + {q}u];")
    for r in range(rows_t):
        for q in range(4):
            w(f"    var c{r}_{q} = vec4<f32>(0.0);")
    for jj in range(j):
        for r in range(rows_t):
            if f16:
                for p in range(4):
                    w(f"    let h{r}_{jj}_{p} = unpack2x16float(x{r}_{jj}[{p}]);")
        for e in range(ch):
            kexpr = f"(ks + {4 * jj}u) * {ch}u + {e}u"
            if variant == "full" or variant == "r2":
                w(f"    let at_{jj}_{e} = ({kexpr}) * 4u + (ks + {4 * jj}u);")
                for q in range(4):
                    w(f"    let a_{jj}_{e}_{q} = a_s[at_{jj}_{e} + {q}u];")
            for r in range(rows_t):
                xe = f"h{r}_{jj}_{e // 2}[{e % 2}]" if f16 else f"x{r}_{jj}[{e}]"
                for q in range(4):
                    if variant == "nomac":
                        if q == 0:
                            w(f"    c{r}_0 += vec4<f32>({xe});")
                        if q == 0 and jj == 0 and e == 0:
                            w(f"    c{r}_1 += aq(ks, 0u);")
                    elif variant == "rega":
                        w(f"    c{r}_{q} += {xe} * ra{q};")
                    else:
                        w(f"    c{r}_{q} += {xe} * a_{jj}_{e}_{q};")
    for r in range(rows_t):
        for sh in (1, 2):
            for q in range(4):
                w(f"    c{r}_{q} += subgroupShuffleXor(c{r}_{q}, {sh}u);")
        w(f"    var m{r} = c{r}_0;")
        for q in range(1, 4):
            w(f"    if (ks == {q}u) {{ m{r} = c{r}_{q}; }}")
        w(f"    dst[(s * 4096u + row + {r * rw}u) * 4u + ks] = m{r};")
    w("}")
    name = f"xa3_{dtype}_j{j}_{variant}.wgsl"
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        f.write("\n".join(L) + "\n")
    return name


for dtype, j in (("f32", 8), ("f16", 4)):
    for v in ("full", "nomac", "rega", "r2"):
        print(gen(dtype, j, v))
print(gen("f16", 8, "full"))
print(gen("f32", 4, "full"))
