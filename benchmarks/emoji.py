"""A colour benchmark nobody here drew: the emoji images of the npm packages ``emoji-datasource-*``.

Each vendor's package (Google, Twitter, Apple) ships a 64 × 64 PNG per emoji and ``emoji.json``,
whose ``category`` is the class: 9 classes (the 5 skin-tone swatches of "Component" left out),
unbalanced (People & Body 386 emojis, Activities 85), in several vendors' styles. Only each
emoji's base image is used (its skin-tone variants would be near-copies). The split holds out
whole emojis: a seeded fifth of them, in every vendor's style, is the test split, so no test
image is another vendor's drawing of a training emoji.

    .venv/bin/python benchmarks/emoji.py --out emoji-data     # fetch (npm pack) and print the split

The images are composited on white and resized (antialiased) to ``--size``; the tensors are cached
as an ``.npz`` (no pickle) beside the packages.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

VENDORS = ("google", "twitter", "apple")
VERSION = "16.0.0"
LEFT_OUT = ("Component",)


def fetch(folder: Path, vendors: tuple[str, ...] = VENDORS) -> list[Path]:
    """The vendors' package tarballs in ``folder``, packed from the npm registry when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for vendor in vendors:
        path = folder / f"emoji-datasource-{vendor}-{VERSION}.tgz"
        if not path.is_file():
            subprocess.run(["npm", "pack", f"emoji-datasource-{vendor}@{VERSION}", "--silent"], cwd=folder, check=True)
        paths.append(path)
    return paths


def catalogue(tarball: Path) -> list[dict]:
    """``emoji.json`` of a package."""
    with tarfile.open(tarball) as archive:
        return json.load(archive.extractfile("package/emoji.json"))


def rgb_on_white(data: bytes, size: int) -> np.ndarray:
    """A PNG composited on white and resized to ``size`` × ``size``: (3, size, size) uint8."""
    with Image.open(io.BytesIO(data)) as image:
        rgba = image.convert("RGBA")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(white, rgba).convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb).transpose(2, 0, 1).copy()


def build(tarballs: list[Path], size: int, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Images, classes and the held-out split of every vendor's base emoji images."""
    emojis = [e for e in catalogue(tarballs[0]) if e["category"] not in LEFT_OUT]
    classes = sorted({e["category"] for e in emojis})
    held_out = np.random.RandomState(seed).permutation(len(emojis))[: round(test_fraction * len(emojis))]
    test_emojis = {emojis[i]["unified"] for i in held_out}
    images, labels, test = [], [], []
    for tarball in tarballs:
        vendor = tarball.name.split("-")[2]
        with tarfile.open(tarball) as archive:
            for emoji in emojis:
                if not emoji.get(f"has_img_{vendor}"):
                    continue
                member = archive.extractfile(f"package/img/{vendor}/64/{emoji['image']}")
                images.append(rgb_on_white(member.read(), size))
                labels.append(classes.index(emoji["category"]))
                test.append(emoji["unified"] in test_emojis)
    return {"images": np.stack(images), "labels": np.array(labels), "test": np.array(test), "classes": np.array(classes)}


def emoji_tensors(folder: Path, size: int = 32, test_fraction: float = 0.2, seed: int = 0):
    """(train_x, train_y, test_x, test_y, classes): floats in [0, 1], (N, 3, size, size)."""
    cache = folder / f"emoji-{VERSION}-{size}px-{test_fraction}-{seed}.npz"
    if not cache.is_file():
        np.savez_compressed(cache, **build(fetch(folder), size, test_fraction, seed))
    with np.load(cache, allow_pickle=False) as data:
        images = torch.from_numpy(data["images"]).float().div_(255)
        labels, test = torch.from_numpy(data["labels"]).long(), torch.from_numpy(data["test"])
        classes = [str(c) for c in data["classes"]]
    return images[~test], labels[~test], images[test], labels[test], classes


def emoji_dataset(folder: Path, name: str = "emoji", size: int = 32):
    """The emoji split as a FiftyOne dataset: PNGs under ``folder/<name>``, tags ``train`` / ``test``,
    labels in ``ground_truth`` (built once; reused when it exists)."""
    import fiftyone as fo
    from PIL import Image

    if fo.dataset_exists(name):
        return fo.load_dataset(name)
    train_x, train_y, test_x, test_y, classes = emoji_tensors(folder, size)
    media = folder / name
    media.mkdir(parents=True, exist_ok=True)
    samples = []
    for split, images, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        for index, (image, label) in enumerate(zip(images, labels)):
            path = media / f"{split}_{index:05d}.png"
            Image.fromarray(image.mul(255).round().byte().permute(1, 2, 0).numpy()).save(path)
            samples.append(fo.Sample(filepath=str(path), tags=[split],
                                     ground_truth=fo.Classification(label=classes[int(label)])))
    dataset = fo.Dataset(name, persistent=True)
    dataset.add_samples(samples)
    dataset.default_classes = classes
    dataset.save()
    return dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("emoji-data"))
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    train_x, train_y, test_x, test_y, classes = emoji_tensors(args.out, args.size)
    print(f"train {tuple(train_x.shape)}, test {tuple(test_x.shape)}")
    for index, name in enumerate(classes):
        print(f"{name:20s} train {int((train_y == index).sum()):5d}  test {int((test_y == index).sum()):4d}")


if __name__ == "__main__":
    main()
