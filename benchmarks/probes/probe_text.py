"""Shared pieces of the probe generators in this folder: the library's WGSL files as text, a
checked text edit, and the `// bind` lines that map the library's row-kernel bindings onto the
buffers of `cargo xtask probe` (src, dst, small, src2, dst2)."""
import os

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")

# softmax.wgsl: 0 x, 1 y (f32); 8 x, 9 y, 10 y as words (f16).
B_SM = "0:src,1:dst,8:src,9:dst,10:dst"
# rms_norm.wgsl without a residual: x and r on src, the weight on small, y and h on dst.
B_RMS = "0:src,1:small,2:src,3:dst,4:dst,8:src,9:small,10:src,11:dst,12:dst,13:dst,14:dst"
# add + RMSNorm: x on src, r on src2, y on dst, h on dst2.
B_ADD = "0:src,1:small,2:src2,3:dst,4:dst2,8:src,9:small,10:src2,11:dst,12:dst2,13:dst,14:dst2"


def shader(name):
    """The text of shaders/wgsl/NAME."""
    with open(os.path.join(ROOT, "shaders/wgsl", name)) as f:
        return f.read()


def edit(text, old, new, count=1):
    """text with `old` (found exactly `count` times) replaced by `new`."""
    assert text.count(old) == count, old
    return text.replace(old, new)


def write_probe(folder, name, head, text):
    """Writes FOLDER/NAME.wgsl: the `//` header lines `head`, then the shader text."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name + ".wgsl"), "w") as f:
        f.write("\n".join(head) + "\n" + text)
