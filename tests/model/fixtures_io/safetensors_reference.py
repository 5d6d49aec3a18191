"""Reference side of the safetensors parity test, using the `safetensors` package.

  safetensors_reference.py check  FILE   -- read a file Chorus wrote, compare with expected_tensors()
  safetensors_reference.py write  FILE   -- write expected_tensors() with the reference writer
Exit status 0 on success; mismatches are printed.
"""
import sys

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def expected_tensors():
    """The same values the C++ test builds: arange-based, one tensor per dtype."""
    out = {}
    base = torch.arange(24, dtype=torch.float64).reshape(2, 3, 4) / 8 - 1
    for name, dtype in [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16),
                        ("f64", torch.float64)]:
        out["weights." + name] = base.to(dtype)
    ints = torch.arange(-12, 12, dtype=torch.int64).reshape(4, 6)
    for name, dtype in [("i64", torch.int64), ("i32", torch.int32), ("i16", torch.int16), ("i8", torch.int8)]:
        out["ints." + name] = ints.to(dtype)
    out["ints.u8"] = torch.arange(0, 250, 10, dtype=torch.uint8)
    out["mask.bool"] = (torch.arange(10) % 3 == 0)
    out["scalar"] = torch.tensor(2.5, dtype=torch.float32)
    out["empty"] = torch.zeros(0, 5, dtype=torch.float32)
    return out


def main():
    mode, path = sys.argv[1], sys.argv[2]
    expected = expected_tensors()
    if mode == "write":
        save_file(expected, path, metadata={"format": "pt", "source": "reference"})
        return 0
    failures = 0
    with safe_open(path, framework="pt") as f:
        names = set(f.keys())
        if names != set(expected):
            print("names differ:", sorted(names ^ set(expected)))
            failures += 1
        if f.metadata() != {"format": "pt", "source": "chorus"}:
            print("metadata differs:", f.metadata())
            failures += 1
        for name in sorted(names & set(expected)):
            got = f.get_tensor(name)
            want = expected[name]
            if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
                print(f"tensor {name}: got {got.dtype} {tuple(got.shape)}, want {want.dtype} {tuple(want.shape)}")
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
