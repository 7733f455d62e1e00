#!/usr/bin/env python3
"""Writes a probe of LoRA's tiled form (4096 x 4096, rank 16, out 4096, base add) as ONE
dispatch: the library's x·A (wide two-row form, 2 k slices, 256 items) and t·B (T 256 column
chunks x K 4 row blocks, 256 items) as work items of a queue that persistent workgroups take in
order (an atomic counter). A t·B item waits (one thread spinning on an atomic) until every x·A
item of its rows is done; as items are taken in order, every item it waits on was taken by a
running workgroup, which waits on nothing. x·A items publish through `storageBarrier()`
(device-scope acquire / release in naga's SPIR-V) and one atomic add each. The last workgroup
to leave resets the counters, so every run starts from zeros.

`ORDER` lays the items out: `seq` all x·A items, then all t·B; `lagN` x·A items for the first
N t·B row tiles, then each t·B row tile followed by the x·A items N tiles ahead.

Writes `fused.wgsl` into the folder given (default /tmp/fu); run it with
`cargo xtask probe fused.wgsl --mib 64 --dump 4096` (the dumps of `fused_*` against `lora`
through the library are not comparable: y here is written over random base, x and A).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import edit, shader, write_probe  # noqa: E402

OUT = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fu"
LIB = shader("lora.wgsl")


# tb() with its own layout constants (the module's T and K are x·A's in this pipeline).
TB = LIB
for old, new in [
    ("    let rt = 16u * K;\n    // Rows between", "    let rt = 16u * TBK;\n    // Rows between"),
    ("    let rb = 4u * (WG / T);\n    let m0 = (g / p.col_blocks) * rt;", "    let rb = 4u * (WG / TBT);\n    let m0 = (g / p.col_blocks) * rt;"),
    ("    let cc = (g % p.col_blocks) * T + lid % T;", "    let cc = (g % p.col_blocks) * TBT + lid % TBT;"),
    ("    let rg = (lid / T) * 4u;\n    // Threads on whole", "    let rg = (lid / TBT) * 4u;\n    // Threads on whole"),
]:
    TB = edit(TB, old, new)

# Sizes: x·A tiles of 32 rows (2 rows x 16 row groups) x 2 slices; t·B tiles of 64 rows x 4
# column blocks.
FUSED = """
const TBT: u32 = 256u;
const TBK: u32 = 4u;
const XR: u32 = 32u;   // x·A rows a tile
const NXT: u32 = 128u; // x·A row tiles
const SL: u32 = 2u;    // k slices
const TR: u32 = 64u;   // t·B rows a tile
const NTT: u32 = 64u;  // t·B row tiles
const CB: u32 = 4u;    // t·B column blocks
const LAG: u32 = __LAG__u; // t·B row tiles whose x·A goes first (NTT: all of x·A first)

@group(0) @binding(15) var<storage, read_write> sync: array<atomic<u32>>;
var<workgroup> item_sh: u32;

// Item i of the queue: (0, x·A item) or (1, t·B item).
fn item_of(i: u32) -> vec2<u32> {
    let xpt = (TR / XR) * SL; // x·A items a t·B row tile
    let head = LAG * xpt;
    if (i < head) {
        return vec2<u32>(0u, i);
    }
    let j = i - head;
    let per = CB + xpt;
    let tile = j / per;
    let o = j % per;
    if (tile + LAG >= NTT) {
        // past the x·A items: t·B only
        let k = i - NTT * xpt;
        return vec2<u32>(1u, k);
    }
    if (o < CB) {
        return vec2<u32>(1u, tile * CB + o);
    }
    return vec2<u32>(0u, (tile + LAG) * xpt + o - CB);
}

fn fused(f16: bool, lid: u32, ngroups: u32) {
    let total = NXT * SL + NTT * CB;
    loop {
        if (lid == 0u) {
            item_sh = atomicAdd(&sync[0], 1u);
        }
        let i = workgroupUniformLoad(&item_sh);
        if (i >= total) {
            break;
        }
        let it = item_of(i);
        if (it.x == 0u) {
            xa(f16, it.y, lid);
            storageBarrier();
            if (lid == 0u) {
                atomicAdd(&sync[2u + it.y / SL], 1u);
            }
        } else {
            let tile = it.y / CB;
            if (lid == 0u) {
                for (var t = tile * TR / XR; t < (tile + 1u) * TR / XR; t++) {
                    loop {
                        if (atomicLoad(&sync[2u + t]) >= SL) {
                            break;
                        }
                    }
                }
            }
            storageBarrier();
            tb(f16, it.y, lid);
            // tb leaves threads at different places: meet before item_sh is written again.
            workgroupBarrier();
        }
    }
    if (lid == 0u) {
        if (atomicAdd(&sync[1], 1u) == ngroups - 1u) {
            for (var t = 0u; t < NXT; t++) {
                atomicStore(&sync[2u + t], 0u);
            }
            atomicStore(&sync[1], 0u);
            atomicStore(&sync[0], 0u);
        }
    }
}

@compute @workgroup_size(WG)
fn fused_f32(@builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    fused(false, lid, nwg.x * nwg.y);
}

@compute @workgroup_size(WG)
fn fused_f16(@builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    fused(true, lid, nwg.x * nwg.y);
}

@compute @workgroup_size(WG)
fn tbr_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tb(false, wid.x, lid);
}

@compute @workgroup_size(WG)
fn tbr_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    tb(true, wid.x, lid);
}
"""

BIND = "0:src,1:small,2:small,3:src,4:dst,5:dst2,8:src,9:small,10:small,11:src,12:dst,13:dst,14:src,15:zero"
for lag, name in [(64, "fused_seq"), (16, "fused_lag16"), (32, "fused_lag32")]:
    alone = name == "fused_seq"
    ds = (["lora_f32_xa 256 64", "tbr_f32 256 128"] if alone else []) + [f"fused_f32 {g} 192" for g in (264, 528)]
    ds += (["lora_f16_xa 256 32", "tbr_f16 256 64"] if alone else []) + [f"fused_f16 {g} 96" for g in (264, 528)]
    head = [
        f"// LoRA 4096x4096 r16 -> 4096 as one dispatch of queued items ({name})",
        f"// run: cargo xtask probe {name}.wgsl --mib 64 --dump 4096",
        "// params 4096 4096 16 4096 0.5 4 0 2",
        "// constants WG=256,T=16,K=16,MODE=81,RANK=16,N_OUT=4096",
        f"// bind {BIND}",
    ]
    write_probe(OUT, name, head + [f"// dispatch {d}" for d in ds], TB + FUSED.replace("__LAG__", str(lag)))
