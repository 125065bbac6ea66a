"""The `torchspectral` command line. For now one subcommand: `demo`."""

from __future__ import annotations

import argparse
import sys
import time

import torchspectral as ts
from torchspectral.demo import PLANTED, planted_pairs

# One line per report key: what it measures, and whether it is directional.
DESCRIPTIONS = {
    "sas_x_to_y": "SAS image→text: image's top eigenmodes found in text",
    "sas_y_to_x": "SAS text→image: text's top eigenmodes found in image",
    "sas_symmetric": "mean of the two SAS directions",
    "sas_imbalance": "ΔSAS = image→text − text→image (directional)",
    "cka_linear": "linear CKA (biased)",
    "cka_linear_unbiased": "linear CKA (unbiased HSIC)",
    "svcca": "mean canonical corr. of top-99% PCA subspaces",
    "coral": "‖C_img − C_txt‖²_F / 4d² (lower = closer)",
    "modality_gap": "‖mean x̂ − mean ŷ‖ (lower = closer)",
    "l2i": "mean ‖x̂_i − ŷ_i‖ over true pairs",
    "true_pair_cosine": "mean cosine of true pairs",
    "cosine_gap": "true-pair cosine − non-pair cosine",
    "rmg": "relative modality gap (lower = closer)",
    "cka_rbf": "RBF-kernel CKA (biased, Kornblith bandwidth)",
    "mmd": "unbiased MMD², median bandwidth (lower = closer)",
    "i2t_r1": "image→text recall@1",
    "t2i_r1": "text→image recall@1",
    "rsum": "retrieval rSum (max 600)",
}


def run_demo(n: int, seed: int) -> int:
    started = time.perf_counter()
    print("torchspectral demo: synthetic image–text pairs with a planted alignment imbalance")
    print(f"n = {n} pairs, d = 256, 48 latent factors, seed {seed}. Generative model: torchspectral/demo.py\n")
    reports = {}
    for model in PLANTED:
        image, text = planted_pairs(model, n=n, seed=seed)
        reports[model.name] = ts.alignment_report(image, text)
    names = [model.name for model in PLANTED]
    print(f"| {'metric':<20} | " + " | ".join(f"{name:>10}" for name in names) + " | meaning")
    print(f"|{'-' * 22}|" + "|".join("-" * 12 for _ in names) + "|" + "-" * 48)
    for key, meaning in DESCRIPTIONS.items():
        print(f"| {key:<20} | " + " | ".join(f"{reports[name][key]:>10.4g}" for name in names) + f" | {meaning}")
    print()
    lossy, balanced = reports["text-lossy"]["sas_imbalance"], reports["balanced"]["sas_imbalance"]
    recovered = lossy > 0 and abs(balanced) < 0.05
    print("Planted: in 'text-lossy' the text tower misses 40% of the factors and carries a strong text-only")
    print("style subspace, so the image's dominant eigenspace should be recovered from text better than the")
    print("reverse (ΔSAS > 0); in 'balanced' both towers see the same factors (ΔSAS ≈ 0).")
    print(
        f"Measured: ΔSAS(text-lossy) = {lossy:+.4f}, ΔSAS(balanced) = {balanced:+.4f} → planted direction "
        f"{'RECOVERED' if recovered else 'NOT recovered'}."
    )
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0 if recovered else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="torchspectral", description=ts.__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="report on synthetic pairs with a planted imbalance")
    demo.add_argument("--n", type=int, default=10_000, help="number of pairs per model (default 10000)")
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.n < 4:
            parser.error("--n must be at least 4")
        return run_demo(args.n, args.seed)
    return 2  # unreachable: argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
