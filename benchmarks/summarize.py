"""Turn a pytest-benchmark JSON of test_moment_metrics.py into the README's markdown table."""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    rows: dict[tuple[int, int], dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "impl" in info:
            rows[(info["n"], info["d"])][info["impl"]] = {**info, "median": bench["stats"]["median"]}
    machine = data["machine_info"]
    print(
        f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} cores; "
        f"float32 inputs; medians.\n"
    )
    print(
        "| n | d | report (s) | floor (s) | report / floor | NumPy reference (s) | speed-up | peak beyond inputs (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for (n, d), impls in sorted(rows.items()):
        torch_, floor, numpy = impls["torch"], impls["floor"], impls["numpy"]
        bound = "" if numpy.get("complete") else " (≥, no CKA/RMG)"
        ratio = torch_["median"] / floor["median"]
        print(
            f"| {n:,} | {d} | {torch_['median']:.3f} | {floor['median']:.3f} | {ratio:.2f}× "
            f"| {numpy['median']:.2f}{bound} | {numpy['median'] / torch_['median']:.0f}×{'+' if bound else ''} "
            f"| {torch_['peak_beyond_inputs_mb']:.0f} (floor {floor['peak_beyond_inputs_mb']:.0f}) |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
