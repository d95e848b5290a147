"""`data.source: <folder>/` — an image folder, one subfolder per class (torchvision's ImageFolder
layout), PNG/JPEG/BMP/GIF/TIFF/WebP decoded by Pillow.

Every image is resized to `data.image_size` ([H, W], or one number for square; default: the first
image's size) with Pillow's bilinear filter (its antialiased resampling when shrinking) and read
as RGB — or as one grey channel when every image in the folder is greyscale. Pixels become
[0, 1] floats (÷255; 16-bit grey ÷65535; float images as they are); the array then goes through the array prep (alchemist.data.arrays) like a
.npy source: per-channel normalisation from the train images (PB-2). The folder's content hash
covers every file's relative path and bytes and the size, so renaming, editing or adding an image
reruns prep (`alchemist.dag.data_files` lists the image files as prep inputs). The decoded
images are kept, memory-mapped, in a per-user cache keyed by that hash (`cache_dir`), so a
folder larger than memory prepares as an .npy does, and it is decoded once.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from alchemist.atomic import replacing
from alchemist.errors import UserError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
WIDE_GREY = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I": 65535.0, "F": 1.0}  # → [0, 1]


def image_files(folder: str | Path) -> list[tuple[Path, str]]:
    """(file, class name) of every image, sorted by class folder then file name."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    found = [(f, c.name) for c in classes for f in sorted(c.rglob("*"))
             if f.is_file() and f.suffix.lower() in EXTENSIONS]
    if not classes:
        raise UserError(f"data.source: {folder} has no class subfolders (one folder per class, "
                        "each holding its images)")
    if not found:
        raise UserError(f"data.source: no images ({', '.join(EXTENSIONS)}) under {folder}")
    return found


def folder_notes(folder: str | Path) -> list[str]:
    """Warnings about what a folder holds besides images: class folders without any image (not
    classes), files that are not images (left out, named)."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    notes, others = [], []
    for c in classes:
        files = [f for f in sorted(c.rglob("*")) if f.is_file() and not f.name.startswith(".")]
        if not any(f.suffix.lower() in EXTENSIONS for f in files):
            notes.append(f"data.source: class folder '{c.name}' holds no image; it is not a class")
        others += [str(f.relative_to(folder)) for f in files if f.suffix.lower() not in EXTENSIONS]
    if others:
        shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        notes.append(f"data.source: {len(others)} file(s) that are not images "
                     f"({'/'.join(EXTENSIONS)}) are left out: {shown}")
    return notes


def _size(image_size, first: Path) -> tuple[int, int]:
    if image_size is None:
        from PIL import Image

        with Image.open(first) as img:
            return img.height, img.width
    size = [image_size] * 2 if isinstance(image_size, int) else list(image_size)
    if len(size) != 2 or min(size) < 1:
        raise UserError(f"data.image_size: {image_size!r}; [height, width] or one number expected")
    return int(size[0]), int(size[1])


def folder_digest(folder: str | Path, image_size=None) -> str:
    """The folder's content sha256: `image_size`, every image's relative path and bytes; nothing decoded."""
    files = image_files(folder)
    digest = hashlib.sha256(repr(image_size).encode())
    for path, _ in files:
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where decoded folders are kept: $ALCHEMIST_CACHE_DIR, else $XDG_CACHE_HOME/alchemist/images
    (~/.cache/alchemist/images)."""
    base = os.environ.get("ALCHEMIST_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alchemist" / "images"


def load_folder(folder: str | Path, image_size=None) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """(images (N, C, H, W) float32 in [0, 1], memory-mapped from the cache; class names (N,);
    content sha256; what decoding did, one line each: resizing from which sizes, grey images
    made RGB). A folder is decoded once per content and size (the parse-time check and the prep
    job share it; the notes are kept beside it), one image at a time into the mapped file:
    never all in memory."""
    from PIL import Image, UnidentifiedImageError

    files = image_files(folder)
    digest = folder_digest(folder, image_size)
    labels = np.array([c for _, c in files])
    cached = cache_dir() / f"{digest[:32]}.npy"
    notes_file = cached.with_suffix(".notes.json")
    if cached.exists() and notes_file.exists():
        notes = folder_notes(folder) + json.loads(notes_file.read_text())
        return np.load(cached, mmap_mode="r"), labels, digest, notes
    h, w = _size(image_size, files[0][0])
    grey_modes = ("1", "L", "LA", "I", "I;16", "F")
    modes, sizes = [], Counter()
    for path, _ in files:                       # headers only: the mode decides the channels
        try:
            with Image.open(path) as img:
                modes.append(img.mode)
                sizes[img.size] += 1
        except (UnidentifiedImageError, OSError) as err:
            raise UserError(f"data.source: cannot read image {path}: {err}") from None
    grey = all(m in grey_modes for m in modes)
    notes = decoding_notes(sizes, (w, h), sum(m in grey_modes for m in modes), grey, len(files))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with replacing(cached) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                        shape=(len(files), 1 if grey else 3, h, w))
        for i, (path, _) in enumerate(files):
            out[i] = decode(path, (h, w), grey, "data.source")
        out.flush()
        del out
    notes_file.write_text(json.dumps(notes))
    return np.load(cached, mmap_mode="r"), labels, digest, folder_notes(folder) + notes


def decode(image, size: tuple[int, int], grey: bool, what: str = "--data") -> np.ndarray:
    """One image (a path, bytes, or an array H×W[×C]) as prep decodes it: (C, H, W) float32 in
    [0, 1], grey (1 channel; 16-bit and float kept exact) or RGB (3), resized bilinearly to `size`
    (height, width). A file that does not decode is one line naming it."""
    import io

    from PIL import Image

    h, w = size
    try:
        if isinstance(image, np.ndarray):
            array = image if image.dtype == np.uint8 else (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
            img = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)
        else:
            img = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image)
        with img:
            if grey and img.mode in WIDE_GREY:    # 16-bit / float: convert("L") would clip
                img, scale = img.convert("F" if img.mode == "F" else "I"), WIDE_GREY[img.mode]
            else:
                img, scale = img.convert("L" if grey else "RGB"), 255.0
    except OSError as err:                      # not an image, or truncated: decodes only now
        name = "an image given as bytes" if isinstance(image, bytes) else image
        raise UserError(f"{what}: cannot read image {name}: {err}") from None
    if img.size != (w, h):
        img = img.resize((w, h), Image.BILINEAR)
    pixels = np.asarray(img, dtype=np.float32) / scale
    return pixels[None] if grey else pixels.transpose(2, 0, 1)


def decoding_notes(sizes: Counter, to: tuple[int, int], n_grey: int, grey: bool, n: int) -> list[str]:
    """What decoding a folder does to its images, one line each (prep prints them, prep.json keeps
    them): which sizes were resized to which, and grey images turned RGB among colour ones."""
    notes = []
    other = {size: k for size, k in sizes.items() if size != to}
    if other:
        shown = ", ".join(f"{k} of {sw}×{sh}" for (sw, sh), k in sorted(other.items(), key=lambda kv: -kv[1])[:5])
        notes.append(f"data: {sum(other.values())} of {n} images resized to {to[0]}×{to[1]} "
                     f"(width × height, bilinear; data.image_size): {shown}")
    if n_grey and not grey:
        notes.append(f"data: {n_grey} grey image(s) among colour ones: converted to RGB (3 equal channels)")
    if grey:
        notes.append("data: every image is grey: one channel")
    return notes
