#!/usr/bin/env python3
"""Writes probes of RMSNorm f32 over 4096 x 32000 (one row a 1024-thread workgroup, 8 chunks a
thread): the library's kernel beside persistent forms whose workgroups keep the weight chunks
that the library loads after the row's reduction (`wpre`: chunks 5..7) in workgroup memory,
loaded once a workgroup, so that no row waits on the L2 for its weight after its reduction.
Each thread reads back only the chunks it wrote itself (no barrier). Writes into the folder
given (default /tmp/r32p); run each file with `cargo xtask probe FILE --mib 500 --dump 262144`
(the dumps of one file must agree: same y).

- `rms32p_w.wgsl`: library `rms_norm_f32_reg` (4096 groups) against `pw` (early chunks loaded
  a row, as the library does) and `pwh` (early chunks held in registers across rows), at 128
  and 132 workgroups.
- `rms32p_now.wgsl`: the library's kernel without the weight (the bound the weight leaves).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import B_RMS, shader, write_probe  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/r32p"
RMS = shader("rows.wgsl") + shader("rms_norm.wgsl")
P_RMS = "4096 32000 0.00001 0 0 0 0 0"

PERSIST = """
// ---- probe: persistent RMSNorm f32, late weight chunks in workgroup memory ----
const WSN: u32 = 2880u; // 8000 chunks - 5 * 1024
var<workgroup> ws: array<vec4<f32>, WSN>;

fn rms_pw(hold: bool, wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sg: u32) {
    let stride = nwg.x * nwg.y;
    let nc = p.n / 4u;
    let pre = wpre();
    var r = wid.x + wid.y * nwg.x;
    var wp: array<vec4<f32>, KMAX>;
    for (var i = 0u; i < K; i++) {
        let c = lid + i * T;
        if (c < nc) {
            if (i >= pre) {
                ws[c - pre * T] = w32[c];
            } else if (hold) {
                wp[i] = w32[c];
            }
        }
    }
    while (r < p.rows) {
        var v: array<vec4<f32>, KMAX>;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                v[i] = x32[r * nc + c];
            }
        }
        if (!hold) {
            for (var i = 0u; i < K; i++) {
                let c = lid + i * T;
                if (c < nc && i < pre) {
                    wp[i] = w32[c];
                }
            }
        }
        var ss = 0.0;
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                ss += dot(v[i], v[i]);
            }
        }
        let inv = inverseSqrt(row_sum(ss, lid, sg) / f32(p.n) + p.eps);
        for (var i = 0u; i < K; i++) {
            let c = lid + i * T;
            if (c < nc) {
                var o = v[i] * inv;
                if (i < pre) {
                    o *= wp[i];
                } else {
                    o *= ws[c - pre * T];
                }
                y32[r * nc + c] = o;
            }
        }
        r += stride;
    }
}

@compute @workgroup_size(WG)
fn pw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    rms_pw(false, wid, nwg, lid, sg);
}

@compute @workgroup_size(WG)
fn pwh(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_size) sg: u32) {
    rms_pw(true, wid, nwg, lid, sg);
}
"""


def write(name, what, text, mode, dispatches):
    run = f"cargo xtask probe {name}.wgsl --mib 500 --dump 262144"
    consts = f"WG=1024,T=1024,K=8,MODE={mode}"
    head = [f"// {what}", f"// run: {run}", f"// params {P_RMS}", f"// constants {consts}", f"// bind {B_RMS}"]
    write_probe(OUT, name, head + [f"// dispatch {d}" for d in dispatches], text)


# MODE: 1 weight, 16 aligned, 5 << 8 five weight chunks before the reduction (the library's rule).
W = 1 | 16 | 5 << 8
write("rms32p_w", "RMSNorm f32 4096x32000: library against persistent forms with the late weight in workgroup memory",
      RMS + PERSIST, W, ["rms_norm_f32_reg 4096", "pw 128", "pwh 128", "pw 132", "pwh 132", "rms_norm_f32_reg 4096"])
write("rms32p_now", "RMSNorm f32 4096x32000 without the weight (library)", RMS, 16, ["rms_norm_f32_reg 4096"])
