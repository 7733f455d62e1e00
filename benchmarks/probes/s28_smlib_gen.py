import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe, B_SM
OUT = sys.argv[1]
LIB = shader("rows.wgsl") + shader("softmax.wgsl")
CONST = edit(LIB, "var<immediate> p: Params;", "const p = Params(4096u, 4096u, 0u, 0u, 0u, 0u, 0u, 0u);")
head = lambda what, params: [f"// library softmax f32 4096 x 4096, edit: {what}"] + (["// params 4096 4096 0 0 0 0 0 0"] if params else []) + [
    "// constants WG=256,T=256,K=4,MODE=16", f"// bind {B_SM}", "// dispatch softmax_f32_reg 4096 128"]
write_probe(OUT, "sm_lib", head("none", True), LIB)
write_probe(OUT, "sm_lib_const", [l.replace(f"// bind {B_SM}", "// bind 0:src,1:dst") for l in head("sizes as constants", False)], CONST)
write_probe(OUT, "sm_lib_constset", head("sizes as constants, immediates still set", True), CONST)
UNI = edit(LIB, "var<immediate> p: Params;", "@group(0) @binding(15) var<uniform> p: Params;")
write_probe(OUT, "sm_lib_uniform", head("sizes from a uniform buffer", True) + ["// uniform 15"], UNI)
CP = shader("copy.wgsl")
CPU = edit(edit(CP, "var<immediate> p: Params;", "@group(0) @binding(15) var<uniform> p: Params;"), "_p: array<u32, 7>,", "_p0: u32, _p1: u32, _p2: u32, _p3: u32, _p4: u32, _p5: u32, _p6: u32,")
CH = 64 * 2**20 // 16
for k in (1, 4):
    write_probe(OUT, f"cp_uniform_k{k}", [f"// library copy.wgsl, edit: sizes from a uniform buffer, K={k}", f"// params {CH} 0 0 0 0 0 0 0",
                f"// constants WG=256,K={k}", "// bind 0:src,1:dst", "// uniform 15", f"// dispatch copy_f32 {CH // (256 * k)} 128"], CPU)
