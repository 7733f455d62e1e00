"""The timing floor of peers.py's method on the GPU: `do_bench` (CUDA events, 256 MiB written
before every call, median) of torch's copy over the byte counts of the row benchmarks' copies,
and of an empty Triton kernel, so that "% of copy" for Triton and PyTorch can be read against a
copy timed the way they are. Prints one JSON object per line."""
import json
import torch
import triton
import triton.language as tl
from triton.testing import do_bench


@triton.jit
def _empty(x_ptr):
    pass


def bench(fn):
    return do_bench(fn, warmup=25, rep=200, return_mode="median") * 1e3


def main():
    x = torch.empty(4, device="cuda")
    us = bench(lambda: _empty[(1,)](x))
    print(json.dumps({"peer": "triton", "op": "empty", "us": us}), flush=True)
    for mib in (0, 0.5, 32, 64, 128, 256):
        n = max(4, int(mib * (1 << 20)) // 4)
        src = torch.randn(n, device="cuda")
        dst = torch.empty_like(src)
        us = bench(lambda: dst.copy_(src))
        print(json.dumps({"peer": "copy", "op": "copy", "bytes_each_way": n * 4, "us": us, "gbps": 2 * n * 4 / us / 1e3}), flush=True)


if __name__ == "__main__":
    main()
