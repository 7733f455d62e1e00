"""Softmax over 4096 x 4096 (f16 and f32): the library's one-row-a-workgroup register kernel
against persistent workgroups of 256 or 512 threads that load their next row before they
reduce and write this one (the form the library runs for 32000-wide f16 rows), with several
workgroup counts. f32 gets a persistent entry point written from the f16 one.

python3 s29_persist_gen.py FOLDER; then `xtask probe FOLDER/p16_*.wgsl --mib 32 --half`,
`xtask probe FOLDER/p32_*.wgsl --mib 64`, and for 16384 rows `p16big_*` with `--mib 128 --half`,
`p32big_*` with `--mib 256`."""
import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe, B_SM

OUT = sys.argv[1]
LIB = shader("rows.wgsl") + shader("softmax.wgsl")
start = LIB.index("@compute @workgroup_size(WG)\nfn softmax_f16_persist(")
end = LIB.index("// ---- online variant")
F16P = LIB[start:end]
F32P = F16P.replace("fn softmax_f16_persist(", "fn softmax_f32_persist(")
F32P = edit(F32P, "var cur: array<vec2<u32>, KMAX>;", "var cur: array<vec4<f32>, KMAX>;")
F32P = edit(F32P, "var nxt: array<vec2<u32>, KMAX>;", "var nxt: array<vec4<f32>, KMAX>;")
F32P = edit(F32P, "x16[", "x32[", 2)
F32P = edit(F32P, "unpack16(cur[i])", "cur[i]", 3)
F32P = edit(F32P, "y16[r * nc + c] = vec2<u32>(pack2x16float(o.xy), pack2x16float(o.zw));", "y32[r * nc + c] = o;")
TEXT = LIB + "\n" + F32P


def head(what, consts, dispatches, rows):
    return [f"// softmax {rows} x 4096: {what}", f"// params {rows} 4096 0 0 0 0 0 0", "// uniform 31",
            f"// constants {consts}", f"// bind {B_SM}"] + [f"// dispatch {e} {g}" for e, g in dispatches]


for dt in ("16", "32"):
    for rows, tag in ((4096, ""), (16384, "big")):
        write_probe(OUT, f"p{dt}{tag}_reg", head("library, one row a workgroup", "WG=256,T=256,K=4,MODE=16",
                                                 [(f"softmax_f{dt}_reg", rows)], rows), TEXT)
        write_probe(OUT, f"p{dt}{tag}_pers256", head("persistent, 256 threads, 4 chunks", "WG=256,T=256,K=4,MODE=16",
                                                     [(f"softmax_f{dt}_persist", g) for g in (528, 1024, 1056, 2048)], rows), TEXT)
        write_probe(OUT, f"p{dt}{tag}_pers512", head("persistent, 512 threads, 2 chunks", "WG=512,T=512,K=2,MODE=16",
                                                     [(f"softmax_f{dt}_persist", g) for g in (264, 512, 528, 1024)], rows), TEXT)
