"""`torchspectral embed` on a tiny random-weight CLIP saved to a temporary folder (offline, seconds)."""

from __future__ import annotations

import argparse
import json
import string
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import expect_audit_error

pytest.importorskip("transformers")
PIL = pytest.importorskip("PIL.Image")

from safetensors import safe_open  # noqa: E402

from torchspectral.audit.embed import add_embed_parser, embed, read_captions, run_embed  # noqa: E402
from torchspectral.audit.manifest import load_manifest  # noqa: E402
from torchspectral.audit.readers import PairedEmbeddings, read_run  # noqa: E402


def tiny_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary over a–z (word-final forms with </w>) plus two merges, CLIP's format."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for letter in string.ascii_lowercase:
        vocab[letter] = len(vocab)
        vocab[f"{letter}</w>"] = len(vocab)
    merges = [("c", "a"), ("ca", "t</w>")]
    vocab["ca"] = len(vocab)
    vocab["cat</w>"] = len(vocab)
    return vocab, merges


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer
    from transformers.utils import logging as hf_logging

    vocab, merges = tiny_vocab()
    # Built from our own vocabulary: CLIPTokenizer.from_pretrained("openai/…") offline silently returns a
    # 2-token placeholder in transformers 5, which would make every caption the same.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    assert len(tokenizer) == len(vocab) == 56
    assert tokenizer("a cat")["input_ids"] == [0, vocab["a</w>"], vocab["cat</w>"], 1]
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 24, "bos_token_id": 0, "eos_token_id": 1,
                     "pad_token_id": 1},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    torch.manual_seed(0)
    model = CLIPModel(config).eval()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        folder = tmp_path_factory.mktemp("tiny-clip")
        model.save_pretrained(folder)
        CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)
    finally:
        hf_logging.set_verbosity(verbosity)
    return folder


def picture(path: Path, seed: int, size: tuple[int, int] = (40, 48)) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    PIL.fromarray(pixels).save(path)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    (folder / "imgs").mkdir(parents=True)
    for i in range(4):
        picture(folder / "imgs" / f"{i}.png", seed=i)
    # MIMIC-style: several rows for image 1 (also spelled differently), one each for the others.
    (folder / "captions.csv").write_text(
        "image,caption\n"
        "imgs/0.png,a cat on a mat\n"
        'imgs/1.png,"a dog, running"\n'
        "imgs/1.png,two dogs\n"
        "imgs/2.png,an x ray\n"
        "./imgs/1.png,a brown dog\n"
        "imgs/3.png,cat\n",
        encoding="utf-8",
    )
    return folder


expect_error = expect_audit_error


def test_embed_shapes_norms_pairing_and_file(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "tiny.safetensors"
    result = embed(clip_dir, data_dir, out, batch_size=3)
    assert isinstance(result, PairedEmbeddings)
    assert result.image.shape == (4, 16) and result.text.shape == (6, 16)
    assert result.image.dtype == result.text.dtype == torch.float32
    torch.testing.assert_close(result.image.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(result.text.norm(dim=1), torch.ones(6))
    assert result.caption_to_image.tolist() == [0, 1, 1, 2, 1, 3]
    # Different captions get different embeddings (a broken tokenizer would map them all to one vector).
    assert torch.cdist(result.text, result.text).add(torch.eye(6)).min() > 1e-4
    assert [p.name for p in out.parent.iterdir()] == ["tiny.safetensors"], "no temporary file left behind"
    with safe_open(str(out), framework="pt") as handle:
        assert set(handle.keys()) == {"image", "text", "caption_to_image"}
        metadata = handle.metadata()
    assert metadata["format"] == "torchspectral.embed/1" and metadata["n_captions"] == "6"


def test_round_trip_through_a_manifest(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    result = embed(clip_dir, data_dir, tmp_path / "e.safetensors")
    (tmp_path / "audit.toml").write_text(
        '[[run]]\nmodel = "tiny"\ndataset = "toy"\ndomain = "x"\nembeddings = "e.safetensors"\n', encoding="utf-8"
    )
    read = read_run(load_manifest(tmp_path / "audit.toml").runs[0])
    torch.testing.assert_close(read.image, result.image, rtol=0, atol=0)
    torch.testing.assert_close(read.text, result.text, rtol=0, atol=0)
    assert read.caption_to_image.tolist() == result.caption_to_image.tolist()


def test_matches_the_model_and_is_deterministic(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    from transformers import CLIPModel, CLIPProcessor

    first = embed(clip_dir, data_dir, tmp_path / "a.safetensors", batch_size=2)
    second = embed(clip_dir, data_dir, tmp_path / "b.safetensors", batch_size=64)  # other batching, same result
    torch.testing.assert_close(first.image, second.image, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.text, second.text, rtol=1e-5, atol=1e-6)
    again = embed(clip_dir, data_dir, tmp_path / "c.safetensors", batch_size=2)
    assert torch.equal(first.image, again.image) and torch.equal(first.text, again.text)
    for name in ("image", "text", "caption_to_image"):
        with (
            safe_open(str(tmp_path / "a.safetensors"), "pt") as a,
            safe_open(str(tmp_path / "c.safetensors"), "pt") as c,
        ):
            assert torch.equal(a.get_tensor(name), c.get_tensor(name))
    # Independent path: the model's own forward (which normalises image_embeds/text_embeds itself).
    model = CLIPModel.from_pretrained(clip_dir, local_files_only=True).eval()
    processor = CLIPProcessor.from_pretrained(clip_dir, local_files_only=True)
    images = [PIL.open(data_dir / "imgs" / f"{i}.png").convert("RGB") for i in range(4)]
    with torch.no_grad():
        output = model(**processor(images=images, text=["a cat on a mat", "cat"], return_tensors="pt", padding=True))
    torch.testing.assert_close(first.image, output.image_embeds, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(first.text[[0, 5]], output.text_embeds, rtol=1e-4, atol=1e-5)


def test_jsonl_with_caption_lists_and_custom_columns(clip_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "coco"
    folder.mkdir()
    picture(folder / "a.jpg", seed=1)
    picture(folder / "b.jpg", seed=2)
    rows = [{"file": "a.jpg", "text": ["one cat", "a cat", "cat"]}, {"file": str(folder / "b.jpg"), "text": "a dog"}]
    (folder / "captions.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    result = embed(clip_dir, folder, tmp_path / "coco.safetensors", image_column="file", caption_column="text")
    assert result.caption_to_image.tolist() == [0, 0, 0, 1] and result.text.shape == (4, 16)


def test_read_captions_roco_style_and_table_path(tmp_path: Path) -> None:
    picture(tmp_path / "x.png", seed=0)
    picture(tmp_path / "y.png", seed=1)
    table = tmp_path / "roco.csv"
    table.write_text("\ufeffimage,caption\nx.png,  Axial CT  \ny.png,OPG\n,\n", encoding="utf-8")  # BOM, blank row
    captions = read_captions(table)
    assert captions.captions == ("Axial CT", "OPG") and captions.caption_to_image == (0, 1)
    assert captions.images == (tmp_path / "x.png", tmp_path / "y.png")


# ── errors ────────────────────────────────────────────────────────────────────────────────────────


def test_hub_id_is_refused_with_a_hint(data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    expect_error(lambda: embed("openai/clip-vit-base-patch32", data_dir, tmp_path / "o.safetensors"),
                 "'openai/clip-vit-base-patch32' is not a local folder", "offline only", "--local-dir")  # fmt: skip
    assert not (tmp_path / "o.safetensors").exists()


def test_missing_or_invalid_model_folder(data_dir: Path, tmp_path: Path) -> None:
    expect_error(
        lambda: embed(tmp_path / "nope", data_dir, tmp_path / "o.safetensors"), "nope", "model folder not found"
    )
    (tmp_path / "empty").mkdir()
    expect_error(lambda: embed(tmp_path / "empty", data_dir, tmp_path / "o.safetensors"), "no config.json")
    (tmp_path / "file").write_text("x")
    expect_error(lambda: embed(tmp_path / "file", data_dir, tmp_path / "o.safetensors"), "must be a folder")


def test_missing_tokenizer_files(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    # Only the model, no processor/tokenizer files: refused with a clear message, never a placeholder tokenizer.
    folder = tmp_path / "model-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((clip_dir / name).read_bytes())
    expect_error(lambda: embed(folder, data_dir, tmp_path / "o.safetensors"), str(folder), "cannot load the")


def test_missing_image_named_in_the_csv(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    with (data_dir / "captions.csv").open("a", encoding="utf-8") as handle:
        handle.write("imgs/9.png,missing\n")
    expect_error(lambda: embed(clip_dir, data_dir, tmp_path / "o.safetensors"), "captions.csv", "line 8",
                 "image file not found", str(data_dir / "imgs" / "9.png"))  # fmt: skip
    assert not (tmp_path / "o.safetensors").exists()


def test_empty_csv(clip_dir: Path, tmp_path: Path) -> None:
    for content in ("", "image,caption\n"):
        (tmp_path / "captions.csv").write_text(content, encoding="utf-8")
        expect_error(lambda: embed(clip_dir, tmp_path, tmp_path / "o.safetensors"), "captions.csv", "no rows")


def test_caption_table_problems(tmp_path: Path) -> None:
    picture(tmp_path / "a.png", seed=0)
    expect_error(lambda: read_captions(tmp_path), "no caption table", "captions.csv")
    expect_error(lambda: read_captions(tmp_path / "absent"), "data folder not found")
    (tmp_path / "captions.csv").write_text("path,report\na.png,x\n", encoding="utf-8")
    expect_error(lambda: read_captions(tmp_path), "no column 'image'", "'path', 'report'", "--image-column")
    expect_error(lambda: read_captions(tmp_path, image_column="path"), "no column 'caption'", "--caption-column")
    (tmp_path / "captions.csv").write_text("image,caption\na.png,ok\na.png,  \n", encoding="utf-8")
    expect_error(lambda: read_captions(tmp_path), "line 3", "empty or missing 'caption'")
    (tmp_path / "captions.jsonl").write_text('{"image": "a.png", "caption": "x"}\n', encoding="utf-8")
    expect_error(lambda: read_captions(tmp_path), "several caption tables", "captions.csv, captions.jsonl")
    (tmp_path / "captions.csv").unlink()
    (tmp_path / "captions.jsonl").write_text('{"image": "a.png", "caption": "x"}\n{"image": \n', encoding="utf-8")
    expect_error(lambda: read_captions(tmp_path), "captions.jsonl", "line 2", "invalid JSON")
    (tmp_path / "captions.jsonl").write_text("[1, 2]\n", encoding="utf-8")
    expect_error(lambda: read_captions(tmp_path), "line 1", "expected a JSON object")


def test_parquet_without_pyarrow_or_pandas_says_so(tmp_path: Path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_parquet(name, *args, **kwargs):
        if name.split(".")[0] in ("pyarrow", "pandas"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_parquet)
    (tmp_path / "captions.parquet").write_bytes(b"PAR1")
    expect_error(lambda: read_captions(tmp_path), "captions.parquet", "needs pyarrow or pandas", "captions.csv")


def test_parquet_with_caption_lists(tmp_path: Path) -> None:
    """MIMIC-CXR style: one row per study image with a list of report sentences, read through pyarrow."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    picture(tmp_path / "p10_s1.png", seed=0)
    picture(tmp_path / "p10_s2.png", seed=1)
    table = pa.table(
        {
            "image": ["p10_s1.png", "p10_s2.png"],
            "caption": [["No acute findings.", "Heart size normal."], ["Effusion."]],
        }
    )
    pq.write_table(table, tmp_path / "captions.parquet")
    captions = read_captions(tmp_path)
    assert captions.captions == ("No acute findings.", "Heart size normal.", "Effusion.")
    assert captions.caption_to_image == (0, 0, 1)
    (tmp_path / "captions.parquet").write_bytes(b"PAR1 not really parquet")
    expect_error(lambda: read_captions(tmp_path), "captions.parquet", "unreadable parquet file")


def test_unreadable_image(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "imgs" / "2.png").write_bytes(b"not a png")
    expect_error(lambda: embed(clip_dir, data_dir, tmp_path / "o.safetensors"), "2.png", "unreadable image")


def test_output_must_be_safetensors(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    expect_error(lambda: embed(clip_dir, data_dir, tmp_path / "o.pt"), "o.pt", "must end in .safetensors")


# ── command line ──────────────────────────────────────────────────────────────────────────────────


def test_parser_and_handler(clip_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser(prog="torchspectral")
    add_embed_parser(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli.safetensors"
    args = parser.parse_args(["embed", "--model", str(clip_dir), "--data", str(data_dir), "--out", str(out),
                              "--batch-size", "2", "--device", "cpu", "--quiet"])  # fmt: skip
    assert args.handler is run_embed
    assert args.handler(args) == 0
    assert "4 images, 6 captions, dim 16" in capsys.readouterr().out
    assert out.exists()


def test_placeholder_tokenizer_is_refused(clip_dir: Path, data_dir: Path, tmp_path: Path) -> None:
    # Processor config present but tokenizer files missing: transformers 5 quietly builds a 2-token
    # CLIPTokenizer, which would give every caption the same embedding. embed must refuse it.
    folder = tmp_path / "no-tokenizer"
    folder.mkdir()
    for file in clip_dir.iterdir():
        if not file.name.startswith("tokenizer"):
            (folder / file.name).write_bytes(file.read_bytes())
    expect_error(lambda: embed(folder, data_dir, tmp_path / "o.safetensors"), str(folder), "only 2 tokens")


def test_siglip(data_dir: Path, tmp_path: Path) -> None:
    """SigLIP pools the last token, so captions are padded to max_length as in its training."""
    from transformers import CLIPTokenizer, SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    vocab, merges = tiny_vocab()
    # SigLIP's own tokenizer needs sentencepiece; any tokenizer of the right vocabulary size serves here.
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    text = {"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": 16, "bos_token_id": 0, "eos_token_id": 1,
            "pad_token_id": 1}  # fmt: skip
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    torch.manual_seed(0)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).eval()
    folder = tmp_path / "tiny-siglip"
    model.save_pretrained(folder)
    processor = SiglipProcessor(
        image_processor=SiglipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tokenizer
    )
    processor.save_pretrained(folder)

    result = embed(folder, data_dir, tmp_path / "siglip.safetensors", batch_size=4)
    assert result.image.shape == (4, 32) and result.text.shape == (6, 32)
    torch.testing.assert_close(result.text.norm(dim=1), torch.ones(6))
    captions = ["a cat on a mat", "cat"]
    with torch.no_grad():
        tokens = tokenizer(captions, padding="max_length", max_length=16, truncation=True, return_tensors="pt")
        expected = torch.nn.functional.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
    torch.testing.assert_close(result.text[[0, 5]], expected, rtol=1e-4, atol=1e-5)


# ── unquoted captions with commas ─────────────────────────────────────────────────────────────────


def captions_of(tmp_path: Path, content: str, **columns: str) -> tuple[str, ...]:
    for name in ("a.png", "b.png"):
        if not (tmp_path / name).exists():
            picture(tmp_path / name, seed=len(name))
    (tmp_path / "captions.csv").write_bytes(content.encode("utf-8"))
    return read_captions(tmp_path, **columns).captions


def test_unquoted_captions_with_commas_are_kept_whole(tmp_path: Path) -> None:
    # Kaggle/Karpathy Flickr lists: a header, then `image,caption` with the caption unquoted.
    content = (
        "image,caption\n"
        "a.png,a dog, running fast\n"
        "b.png,A child in a pink dress , climbing up a set of stairs , in an entry way .\n"
        'a.png,a "big" dog, jumping\n'
        "b.png,no comma here\n"
    )
    assert captions_of(tmp_path, content) == (
        "a dog, running fast",
        "A child in a pink dress , climbing up a set of stairs , in an entry way .",
        'a "big" dog, jumping',
        "no comma here",
    )
    # Windows line endings, and the caption column first (the image is then after the last comma).
    content = "caption,image\r\na dog, running fast,a.png\r\none, two, three,b.png\r\n"
    assert captions_of(tmp_path, content) == ("a dog, running fast", "one, two, three")
    table = read_captions(tmp_path)
    assert table.images == (tmp_path / "a.png", tmp_path / "b.png")
    # Custom column names work the same way.
    content = "path,report\na.png,Lungs clear, heart normal.\n"
    assert captions_of(tmp_path, content, image_column="path", caption_column="report") == (
        "Lungs clear, heart normal.",
    )


def test_quoted_csv_still_parses_exactly(tmp_path: Path) -> None:
    content = (
        "image,caption\n"
        'a.png,"a dog, running"\n'
        '"b.png","he said ""hi"", then left"\n'
        'a.png,"a report\nover two lines, with a comma"\n'
        "b.png,unquoted, in the same file\n"
    )
    assert captions_of(tmp_path, content) == (
        "a dog, running",
        'he said "hi", then left',
        "a report\nover two lines, with a comma",
        "unquoted, in the same file",
    )


def test_ambiguous_rows_are_refused_with_their_line(tmp_path: Path) -> None:
    # More fields than columns in a table with other columns: which one holds the comma is unknowable.
    content = "image,caption,split\na.png,ok,train\nb.png,a dog, running,test\n"
    expect_error(lambda: captions_of(tmp_path, content), "captions.csv", "line 3", "4 fields", "3 columns", "quote")
    # A quoted caption followed by more text: half quoted, half not.
    content = 'image,caption\na.png,ok\nb.png,"a dog", running\n'
    expect_error(lambda: captions_of(tmp_path, content), "captions.csv", "line 3", "quote")
    # An unclosed quote would swallow every later row into one caption.
    content = 'image,caption\na.png,"Stop sign\nb.png,a dog\nb.png,a cat\n'
    expect_error(lambda: captions_of(tmp_path, content), "captions.csv", "line 2", "unclosed quote")
    # The named columns are still checked first.
    content = "path,report\na.png,a dog, running\n"
    expect_error(lambda: captions_of(tmp_path, content), "no column 'image'", "--image-column")


# ── --out ─────────────────────────────────────────────────────────────────────────────────────────


def no_model_load(monkeypatch) -> None:
    """Fail the test if the model is loaded: --out problems are found before the slow part."""
    import torchspectral.audit.embed as embed_module

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr(embed_module, "_load_model", refuse)


def test_existing_out_is_refused_unless_force(clip_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "kept.safetensors"
    out.write_bytes(b"the user's earlier file")
    with monkeypatch.context() as patch:
        no_model_load(patch)
        expect_error(lambda: embed(clip_dir, data_dir, out), str(out), "exists", "--force")
    assert out.read_bytes() == b"the user's earlier file"
    result = embed(clip_dir, data_dir, out, force=True)
    with safe_open(str(out), framework="pt") as handle:
        assert torch.equal(handle.get_tensor("text"), result.text)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "kept.safetensors"], "no temporary file left"


def test_out_created_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    from torchspectral.audit.embed import write_embeddings

    pairs = PairedEmbeddings(torch.eye(2), torch.eye(2), torch.tensor([0, 1]))
    out = tmp_path / "e.safetensors"
    write_embeddings(out, pairs)
    first = out.read_bytes()
    expect_error(lambda: write_embeddings(out, PairedEmbeddings(-torch.eye(2), torch.eye(2), torch.tensor([0, 1]))),
                 str(out), "exists", "--force")  # fmt: skip
    assert out.read_bytes() == first and [p.name for p in tmp_path.iterdir()] == ["e.safetensors"]
    write_embeddings(out, PairedEmbeddings(-torch.eye(2), torch.eye(2), torch.tensor([0, 1])), force=True)
    assert out.read_bytes() != first


def test_out_that_is_a_folder_or_under_a_file(clip_dir: Path, data_dir: Path, tmp_path: Path, monkeypatch) -> None:
    no_model_load(monkeypatch)
    folder = tmp_path / "e.safetensors"
    folder.mkdir()
    for force in (False, True):
        expect_error(lambda force=force: embed(clip_dir, data_dir, folder, force=force), str(folder), "is a folder")
    (tmp_path / "file").write_text("x")
    expect_error(lambda: embed(clip_dir, data_dir, tmp_path / "file" / "e.safetensors"), "file", "not a folder")


def test_write_failure_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import errno

    import safetensors.torch

    from torchspectral.audit.embed import write_embeddings

    def disk_full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    out = tmp_path / "e.safetensors"
    pairs = PairedEmbeddings(torch.eye(2), torch.eye(2), torch.tensor([0, 1]))
    expect_error(lambda: write_embeddings(out, pairs), str(out), "cannot write", "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_cli_out_errors_exit_2_with_one_line(clip_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    from torchspectral.audit.cli import main

    out = tmp_path / "kept.safetensors"
    out.write_bytes(b"x")
    folder = tmp_path / "dir.safetensors"
    folder.mkdir()
    for target, extra, fragment in ((out, [], "--force"), (folder, ["--force"], "is a folder")):
        argv = ["embed", "--model", str(clip_dir), "--data", str(data_dir), "--out", str(target), "--quiet", *extra]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("torchspectral embed: error:") and "\n" not in err and fragment in err, err
    assert out.read_bytes() == b"x"
    argv = ["embed", "--model", str(clip_dir), "--data", str(data_dir), "--out", str(out), "--quiet", "--force"]
    assert main(argv) == 0 and out.stat().st_size > 1


# ── images outside --data ─────────────────────────────────────────────────────────────────────────


def test_images_outside_the_data_folder_are_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    picture(data / "imgs" / "in.png", seed=0)
    picture(tmp_path / "secret.png", seed=1)
    (data / "imgs" / "link-out.png").symlink_to(tmp_path / "secret.png")
    (data / "imgs" / "link-in.png").symlink_to(data / "imgs" / "in.png")
    outside = {
        "../secret.png": tmp_path / "secret.png",
        "imgs/../../secret.png": tmp_path / "secret.png",
        str(tmp_path / "secret.png"): tmp_path / "secret.png",
        "imgs/link-out.png": tmp_path / "secret.png",
        "../missing.png": tmp_path / "missing.png",  # refused as outside, not probed
    }
    for name, resolved in outside.items():
        (data / "captions.csv").write_text(f"image,caption\nimgs/in.png,fine\n{name},a secret\n", encoding="utf-8")
        message = expect_error(lambda: read_captions(data), "captions.csv", "line 3", "outside the data folder",
                               str(resolved), "--allow-outside-data")  # fmt: skip
        assert repr(name) in message
        # The table given as --data itself: its folder is the boundary.
        expect_error(lambda: read_captions(data / "captions.csv"), "line 3", "outside the data folder")
    # Inside: relative, absolute, through a symlink that stays inside, and through a symlinked data folder.
    (tmp_path / "linked-data").symlink_to(data)
    (data / "captions.csv").write_text(
        f"image,caption\nimgs/in.png,a\n{data / 'imgs' / 'in.png'},b\nimgs/link-in.png,c\n./imgs/../imgs/in.png,d\n",
        encoding="utf-8",
    )
    for folder in (data, tmp_path / "linked-data"):
        assert read_captions(folder).caption_to_image == (0, 0, 0, 0)
    # Opting in reads them.
    (data / "captions.csv").write_text("image,caption\n../secret.png,a\nimgs/link-out.png,b\n", encoding="utf-8")
    table = read_captions(data, allow_outside_data=True)
    assert table.images == ((tmp_path / "secret.png").resolve(),) and table.caption_to_image == (0, 0)


def test_cli_allow_outside_data(clip_dir: Path, data_dir: Path, tmp_path: Path, capsys) -> None:
    from torchspectral.audit.cli import main

    picture(tmp_path / "outside.png", seed=7)
    with (data_dir / "captions.csv").open("a", encoding="utf-8") as handle:
        handle.write("../outside.png,a cat\n")
    base = ["embed", "--model", str(clip_dir), "--data", str(data_dir), "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "line 8" in err and "--allow-outside-data" in err, err
    assert not (tmp_path / "a.safetensors").exists()
    assert main([*base, "--out", str(tmp_path / "b.safetensors"), "--allow-outside-data"]) == 0
    assert "5 images, 7 captions" in capsys.readouterr().out
