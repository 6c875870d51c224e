"""The GPU issue's targets as ratios from one result file of `gradbench run --profile gpu`
(scripts/gpu-check runs it), on the classic network (784-50-10, batch 100, float64):

- gradbench's naive central differences on the GPU over torch's batched ones: at most 1;
- gradbench's backprop on the GPU over torch CUDA autograd: at most 0.5;
- gradbench's incremental central differences on the GPU over its backprop there: at most 10.

Usage: python scripts/gpu_targets.py RESULT_FILE
"""

import sys

from gradbench import results


def main(path: str) -> int:
    rs = results.load_set(path)
    df = rs.cases
    ok = df[(df["status"] == "ok") & df["classic"] & (df["dtype"] == "float64")]
    t = {(r.method, r.device): r.median for r in ok.itertuples()}
    print(f"{path}: classic network, float64, median seconds per call")
    for (method, device), s in sorted(t.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"  {device:5s} {method:34s} {s:12.6g}")
    for name, record in results.Document.load(path).devices.items():
        print(f"  {name}: {record}")
    rows = [
        ("naive central, ours / torch batched (target <= 1)",
         ("numerical:central:naive", "cuda"), ("torch:central", "cuda"), 1.0),
        ("backprop, ours / torch CUDA autograd (target <= 0.5)",
         ("backprop", "cuda"), ("torch:backprop", "cuda"), 0.5),
        ("incremental central / backprop, both ours on the GPU (target <= 10)",
         ("numerical:central:incremental", "cuda"), ("backprop", "cuda"), 10.0),
        ("naive central, GPU / CPU (ours)",
         ("numerical:central:naive", "cuda"), ("numerical:central:naive", "cpu"), None),
        ("backprop, GPU / CPU (ours)", ("backprop", "cuda"), ("backprop", "cpu"), None),
    ]
    missed = 0
    for text, a, b, target in rows:
        if a not in t or b not in t:
            print(f"{text}: not measured ({a if a not in t else b} missing)")
            missed += target is not None
            continue
        ratio = t[a] / t[b]
        verdict = "" if target is None else ("  met" if ratio <= target else "  MISSED")
        missed += target is not None and ratio > target
        print(f"{text}: {ratio:.3g}{verdict}")
    return 1 if missed else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
