#!/usr/bin/env python3
"""Writes probes of a row-lane layout for LoRA's x·A (x 4096 x 4096, rank 16), one file per
layout and dtype, into the folder given (default /tmp/xa2).

Layout: 4 neighbouring threads share a row of x (k lanes); a subgroup of 32 holds 8 rows, so
each read of A from shared memory is shared by 8 rows (4 distinct addresses a subgroup, no
bank conflicts). A thread keeps 16 accumulators (its row x 16 ranks) and loads all J of its
16-byte chunks of x at once; A's rows of the workgroup's k range are staged in shared memory
once, behind one barrier, so no barrier waits while loads of x are in flight. G groups of k
lanes a workgroup split its k range and meet in shared memory at the end; the 4 k lanes meet
by two shuffles. Partial sums (one per k slice) go to dst, as the library's scratch.

Run each with: cargo xtask probe FILE --mib 64
"""
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/xa2"

TEMPLATE = """// x·A row-lane probe: {dtype}, WG {wg}, {g} k groups, {j} chunks a thread: {rw} rows x {kwg} k a
// workgroup, {slices} k slices, {groups} workgroups; MiB moved = x + partials
// dispatch xa {groups} {mib}

@group(0) @binding(0) var<storage, read> src: array<{xtype}>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> small: array<{atype}>;

const WG: u32 = {wg}u;
const G: u32 = {g}u;
const RW: u32 = {rw}u;
const J: u32 = {j}u;
const CH: u32 = {ch}u;
const KRW: u32 = {krw}u;
const KWG: u32 = {kwg}u;
const SLICES: u32 = {slices}u;
const NC: u32 = {nc}u;
const ROWS: u32 = 4096u;

var<workgroup> a_s: array<vec4<f32>, {ash}>;
var<workgroup> red: array<vec4<f32>, {red}>;

fn aidx(kk: u32, q: u32) -> u32 {{
    return kk * 4u + q + kk / CH;
}}

fn a_quad(k: u32, q: u32) -> vec4<f32> {{
{aload}
}}

fn elem(c: {xtype}, e: u32) -> f32 {{
{elem}
}}

@compute @workgroup_size({wg})
fn xa(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {{
    let g = wid.x + wid.y * nwg.x;
    let tile = g / SLICES;
    let s = g % SLICES;
    let ks = lid % 4u;
    let rl = (lid / 4u) % RW;
    let kg = lid / (4u * RW);
    let row = tile * RW + rl;
    let kbase = s * KWG + kg * KRW;
    var xv: array<{xtype}, J>;
    for (var j = 0u; j < J; j++) {{
        xv[j] = src[row * NC + kbase / CH + ks + 4u * j];
    }}
    for (var i = lid; i < KWG * 4u; i += WG) {{
        let kk = i / 4u;
        a_s[aidx(kk, i % 4u)] = a_quad(s * KWG + kk, i % 4u);
    }}
    workgroupBarrier();
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    for (var j = 0u; j < J; j++) {{
        for (var e = 0u; e < CH; e++) {{
            let kk = kg * KRW + (ks + 4u * j) * CH + e;
            let xe = elem(xv[j], e);
            let at = aidx(kk, 0u);
            c0 += xe * a_s[at];
            c1 += xe * a_s[at + 1u];
            c2 += xe * a_s[at + 2u];
            c3 += xe * a_s[at + 3u];
        }}
    }}
    c0 += subgroupShuffleXor(c0, 1u);
    c1 += subgroupShuffleXor(c1, 1u);
    c2 += subgroupShuffleXor(c2, 1u);
    c3 += subgroupShuffleXor(c3, 1u);
    c0 += subgroupShuffleXor(c0, 2u);
    c1 += subgroupShuffleXor(c1, 2u);
    c2 += subgroupShuffleXor(c2, 2u);
    c3 += subgroupShuffleXor(c3, 2u);
    var mine = c0;
    if (ks == 1u) {{ mine = c1; }}
    if (ks == 2u) {{ mine = c2; }}
    if (ks == 3u) {{ mine = c3; }}
{tail}
}}
"""

TAIL1 = """    dst[(s * ROWS + row) * 4u + ks] = mine;"""
TAILG = """    red[(kg * RW + rl) * 4u + ks] = mine;
    workgroupBarrier();
    if (kg == 0u) {
        var t = mine;
        for (var h = 1u; h < G; h++) {
            t += red[(h * RW + rl) * 4u + ks];
        }
        dst[(s * ROWS + row) * 4u + ks] = t;
    }"""


def write(dtype, wg, g, j):
    f16 = dtype == "f16"
    ch = 8 if f16 else 4
    rw = wg // (4 * g)
    krw = 4 * j * ch
    kwg = g * krw
    slices = 4096 // kwg
    groups = (4096 // rw) * slices
    xmib = 32 if f16 else 64
    mib = xmib + slices * 4096 * 16 * 4 / (1 << 20)
    text = TEMPLATE.format(
        dtype=dtype, wg=wg, g=g, j=j, rw=rw, kwg=kwg, krw=krw, ch=ch, slices=slices, groups=groups, mib=mib,
        nc=4096 // ch, ash=kwg * 4 + kwg // ch, red=max(wg, 4),
        xtype="vec4<u32>" if f16 else "vec4<f32>",
        atype="vec2<u32>" if f16 else "vec4<f32>",
        aload=("    let w = small[k * 4u + q];\n    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));" if f16
               else "    return small[k * 4u + q];"),
        elem=("    return unpack2x16float(c[e / 2u])[e % 2u];" if f16 else "    return c[e];"),
        tail=TAIL1 if g == 1 else TAILG,
    )
    os.makedirs(OUT, exist_ok=True)
    name = f"xa2_{dtype}_wg{wg}_g{g}_j{j}.wgsl"
    with open(os.path.join(OUT, name), "w") as f:
        f.write(text)
    return name


LAYOUTS = {
    "f32": [(256, 1, 8), (256, 4, 8), (512, 4, 8), (256, 2, 16), (256, 1, 16)],
    "f16": [(256, 1, 8), (256, 2, 8), (512, 2, 8), (256, 4, 4), (256, 1, 4)],
}
for dtype, layouts in LAYOUTS.items():
    for wg, g, j in layouts:
        print(write(dtype, wg, g, j))
