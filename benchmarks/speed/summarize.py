"""Turn a pytest-benchmark JSON (test_moment_metrics.py and/or test_pairwise.py) into the README's markdown tables."""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    with open(path) as f:
        data = json.load(f)
    rows: dict[tuple[int, int], dict[str, dict]] = defaultdict(dict)
    pairwise_rows: dict[tuple[str, int, int], dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        if "fn" in info:
            pairwise_rows[(info["fn"], info["n"], info["d"])][info["impl"]] = {
                **info,
                "median": bench["stats"]["median"],
            }
        elif "impl" in info:
            rows[(info["n"], info["d"])][info["impl"]] = {**info, "median": bench["stats"]["median"]}
    machine = data["machine_info"]
    print(
        f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, {machine.get('cpu', {}).get('count', '?')} cores; "
        f"float32 inputs; medians.\n"
    )
    if pairwise_rows:
        pairwise_table(pairwise_rows)
    if not rows:
        return
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


def pairwise_table(rows: dict[tuple[str, int, int], dict[str, dict]]) -> None:
    print(
        "| function | n | d | torchspectral (s) | dense torch (s) | ours / dense | NumPy reference (s) "
        "| peak beyond inputs: ours (MB) | dense (MB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for (fn, n, d), impls in sorted(rows.items(), key=lambda item: (item[0][1], item[0][0])):
        ours, dense, numpy = impls["torchspectral"], impls["dense"], impls.get("numpy")
        reference = f"{numpy['median']:.1f}" if numpy else "not run (hours)"
        print(
            f"| {fn} | {n:,} | {d} | {ours['median']:.3f} | {dense['median']:.3f} "
            f"| {ours['median'] / dense['median']:.2f}× | {reference} "
            f"| {ours['peak_beyond_inputs_mb']:.0f} | {dense['peak_beyond_inputs_mb']:.0f} |"
        )
    print()


if __name__ == "__main__":
    main(sys.argv[1])
