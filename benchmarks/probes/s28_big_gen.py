import os
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from probe_text import shader, edit, write_probe
OUT = sys.argv[1]
CP = shader("copy.wgsl")  # already reads p from the uniform at binding 31
for mib in (64, 256, 1024):
    ch = mib * 2**20 // 16
    head = [f"// the library copy over {mib} MiB: K chunks a thread", "// bind 0:src,1:dst", "// uniform 31", f"// params {ch} 0 0 0 0 0 0 0"]
    for k in (1, 2, 4, 8):
        write_probe(OUT, f"big{mib}_k{k}", head + [f"// constants WG=256,K={k}", f"// dispatch copy_f32 {ch // (256 * k)} {2 * mib}"], CP)
