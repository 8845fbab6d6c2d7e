"""Fuzzing the dataset parsers (issue 13): per format, a hypothesis strategy draws a small valid
dataset and corruptions of some of its images' fields; `Format.write` writes the dataset in the
format's real on-disk layout with those corruptions in the bytes; `check` states the property
every parser must satisfy (see test_datasets_fuzz.py).

A corruption's `expect` says what the loader owes it:
  bad    a malformed or out-of-image value: the image is skipped with a specific reason (naming
         the file, and `label` when the reason names a field) or scored with a note;
  valid  a well-formed extreme the format allows (a 1-px-wide inclusive box, thousands of
         objects, an absent optional field): scored, its ground truth as `Format.oracle` says;
  hint   a value that is not ground truth (an image-size hint): ground truth unchanged;
  free   only: no crash, the image has its row.
"""

from __future__ import annotations

import functools
import io
import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st
from omegaconf import OmegaConf
from PIL import Image

from dataset_fixtures import photo
from wsl_bench.data import DecodedImages, ProtocolTransform, build_dataset
from wsl_bench.data.datasets.voc import VOC_CLASSES
from wsl_bench.data.imagenet_classes import imagenet_wnids
from wsl_bench.errors import DatasetLayoutError

CONF = Path(__file__).resolve().parent.parent / "conf"
SIZES = ((24, 32), (32, 24), (40, 48))
MANY = 1500  # objects added to one image by the "many_objects" corruption


# --- the clean dataset --------------------------------------------------------------------------

@dataclass(frozen=True)
class Obj:
    cls: int
    box: tuple[int, int, int, int]  # inclusive, 0-based, inside the image, at least 3 px wide and high
    difficult: bool = False


@dataclass(frozen=True)
class Img:
    height: int
    width: int
    objects: tuple[Obj, ...]


@dataclass(frozen=True)
class Corruption:
    image: int
    target: str  # "obj<k>.<field>", "<field>", or a whole-file / whole-image kind
    kind: str
    value: Any = None
    expect: str = "bad"
    label: str = ""


@st.composite
def inside_box(draw: Callable, height: int, width: int) -> tuple[int, int, int, int]:
    x0 = draw(st.integers(0, width - 3))
    y0 = draw(st.integers(0, height - 3))
    return x0, y0, draw(st.integers(x0 + 2, width - 1)), draw(st.integers(y0 + 2, height - 1))


@st.composite
def clean_images(draw: Callable, n_classes: int, max_objects: int = 3, one_class: bool = False) -> list[Img]:
    images = []
    for _ in range(draw(st.integers(2, 4))):
        height, width = draw(st.sampled_from(SIZES))
        first = draw(st.integers(0, n_classes - 1))
        objects = tuple(
            Obj(first if one_class else draw(st.integers(0, n_classes - 1)), draw(inside_box(height, width)), draw(st.booleans()))
            for _ in range(draw(st.integers(1, max_objects)))
        )
        images.append(Img(height, width, objects))
    return images


# --- malformed values, as text (XML, CSV, tables) and as JSON ---------------------------------------

TEXT_BAD = {
    "missing": st.just(None),
    "empty": st.sampled_from(["", " "]),
    "nan": st.sampled_from(["nan", "NaN", "-nan"]),
    "inf": st.sampled_from(["inf", "-inf", "Infinity"]),
    "wrong_type": st.sampled_from(["abc", "0x1A", "1_0", "[1]", "true", "\u0661\u0662", "12px", "1.2.3", "--1", "1 2", "1,5"]),
    "non_utf8": st.sampled_from([b"1\xff", b"\xfe\xfe", b"\xc3("]),
    "nul": st.just("1\x002"),
    "huge": st.sampled_from(["1e300", "-1e300", "9" * 400, "1e400", "1" + "0" * 30, "-1e19"]),
    "negative": st.integers(1, 10**6).map(lambda k: str(-k)),
}
JSON_BAD = {
    "null": st.just(None),
    "string": st.sampled_from(["12", "", "abc", "\x00"]),
    "nan": st.just(float("nan")),
    "inf": st.sampled_from([float("inf"), float("-inf")]),
    "wrong_type": st.sampled_from([[1], {"a": 1}, True, False]),
    "huge": st.sampled_from([1e308, -1e308, 10**30]),
    "huge_literal": st.just("RAW:" + "9" * 5000),  # an integer literal longer than int() accepts
    "negative": st.integers(1, 10**6).map(lambda k: -k),
}


def dump_json(doc: Any) -> str:
    """json.dumps, with "RAW:<text>" strings written as the raw token <text>."""
    raw: list[str] = []

    def mark(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("RAW:"):
            raw.append(value[4:])
            return f"@@RAW{len(raw) - 1}@@"
        if isinstance(value, list):
            return [mark(v) for v in value]
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        return value

    text = json.dumps(mark(doc))
    for i, token in enumerate(raw):
        text = text.replace(f'"@@RAW{i}@@"', token)
    return text


def cell(value: Any) -> bytes:
    """A value as it goes into a text file: bytes as they are (non-UTF-8 ones too), None as nothing."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else str(value).encode()


@functools.lru_cache(maxsize=64)
def jpeg_bytes(height: int, width: int, seed: int, exif_orientation: int | None = None) -> bytes:
    img = Image.fromarray(photo(height, width, seed))
    buffer = io.BytesIO()
    if exif_orientation is None:
        img.save(buffer, format="JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def write_jpeg(path: Path, img: Img, seed: int, corruptions: list[Corruption]) -> None:
    """The image file, or its corruption (1-px image, zero bytes, absent, EXIF-rotated)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    kinds = {c.kind for c in corruptions if c.target == "jpeg"}
    if "absent" in kinds:
        return
    if "zero_byte" in kinds:
        path.write_bytes(b"")
    elif "one_pixel" in kinds:
        path.write_bytes(jpeg_bytes(1, 1, seed))
    elif "exif_rotated" in kinds:
        path.write_bytes(jpeg_bytes(img.height, img.width, seed, 6))
    else:
        path.write_bytes(jpeg_bytes(img.height, img.width, seed))


JPEG_KINDS = [
    Corruption(0, "jpeg", "one_pixel", label="image too small"),
    Corruption(0, "jpeg", "zero_byte", label="zero-byte"),
    Corruption(0, "jpeg", "absent", label="file not found"),
    Corruption(0, "jpeg", "exif_rotated", expect="free"),
]


def many_objects(img: Img, seed: int) -> tuple[Obj, ...]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(MANY):
        x0, y0 = int(rng.integers(0, img.width - 2)), int(rng.integers(0, img.height - 2))
        out.append(Obj(img.objects[0].cls, (x0, y0, int(rng.integers(x0, img.width)), int(rng.integers(y0, img.height)))))
    return tuple(out)


# --- the formats ----------------------------------------------------------------------------------

class Format:
    """A dataset format: its clean strategy, its corruptions, its writer."""

    name = ""
    dataset = ""
    n_classes = 20
    max_objects = 3
    one_class = False
    files: tuple[str, ...] = ()  # file names a reason about an annotation must mention (one of)
    value_fields: tuple[str, ...] = ("xmin", "ymin", "xmax", "ymax")
    inclusive = True  # corner boxes (a 1-px box is x0 == x1); False: [x, y, w, h]
    image_files_listed = True  # False: the image folder is the listing (ImageNet), an absent file is not listed
    gt_fields = 4  # leading fields of `ground_truth` that `oracle` gives (labels, boxes, box labels, difficult)

    def images(self) -> st.SearchStrategy:
        return clean_images(self.n_classes, self.max_objects, self.one_class)

    options: dict[str, st.SearchStrategy] = {}  # layout choices drawn per example, the same for the clean fixture

    @st.composite
    def plan(draw: Callable, self: "Format") -> tuple[list[Img], list[Corruption], dict[str, Any]]:
        images = draw(self.images())
        options = {k: draw(v) for k, v in self.options.items()}
        # mostly some images stay clean (the property compares them with the clean dataset)
        most = len(images) if draw(st.integers(0, 4)) == 0 else len(images) - 1
        corrupted = draw(st.lists(st.integers(0, len(images) - 1), min_size=1, max_size=most, unique=True))
        corruptions = []
        for i in corrupted:
            for c in draw(st.lists(self.corruption(images[i], options), min_size=1, max_size=2, unique_by=lambda c: c.target)):
                corruptions.append(Corruption(i, c.target, c.kind, c.value, c.expect, c.label))
        return images, corruptions, options

    def corruption(self, img: Img, options: dict[str, Any]) -> st.SearchStrategy:
        """One corruption of image `img` (its index is set by `plan`)."""
        jpeg = [c for c in JPEG_KINDS if self.image_files_listed or c.kind != "absent"]
        # half of the corruptions are malformed box values, half the format's other kinds
        return st.one_of(self.value_corruption(img), st.one_of(st.sampled_from(jpeg), *self.extra_corruptions(img, options)))

    @st.composite
    def value_corruption(draw: Callable, self: "Format", img: Img) -> Corruption:
        k = draw(st.integers(0, len(img.objects) - 1))
        name = draw(st.sampled_from(self.value_fields))
        kind = draw(st.sampled_from(sorted(TEXT_BAD) + ["out_of_range", "swapped", "zero_size", "huge_coords"]))
        if kind in TEXT_BAD:
            return Corruption(0, f"obj{k}.{name}", kind, draw(TEXT_BAD[kind]), label=name)
        if kind == "out_of_range":
            # beyond the far edge by 2 px or more (a corner on the edge itself, x1 == width, is the
            # edge-coordinate convention: clipped silently)
            side = img.width if name in ("xmin", "xmax", "x0", "x1", "x_min", "x_max", "x", "width") else img.height
            return Corruption(0, f"obj{k}.{name}", kind, str(draw(st.integers(side + 2, side + 10**6))), label=name)
        return Corruption(0, f"obj{k}.box", kind, None, "valid" if kind == "zero_size" and self.inclusive else "bad", label="width|height")

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        return []

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        """Write the dataset; return its dataset config and {listed image id: index of its image}."""
        raise NotImplementedError

    def boxes_as_written(self, img: Img, i: int, corruptions: list[Corruption]) -> list[list[Any]]:
        """Per object the 4 box values as they go into the file (corrupted ones replaced)."""
        out = []
        for k, obj in enumerate(img.objects):
            x0, y0, x1, y1 = obj.box
            values: list[Any] = [x0, y0, x1, y1]
            mine = [c for c in corruptions if c.image == i and c.target.startswith(f"obj{k}.")]
            for c in sorted(mine, key=lambda c: not c.target.endswith(".box")):  # whole-box kinds first, then fields
                field_name = c.target.split(".", 1)[1]
                if field_name == "box":
                    if c.kind == "swapped":
                        values = [x1, y0, x0, y1] if (k + i) % 2 else [x0, y1, x1, y0]
                    elif c.kind == "zero_size":
                        values = [x0, y0, x0, y1] if (k + i) % 2 else [x0, y0, x1, y0]
                    elif c.kind == "huge_coords":
                        values = [-(10**9), y0, 10**9, y1]
                elif field_name in self.value_fields:
                    values[self.value_fields.index(field_name)] = c.value
            out.append(values)
        return out

    def objects_as_written(self, img: Img, i: int, corruptions: list[Corruption], name_of: Callable[[Obj], bytes]) -> list[tuple[int, Obj, Any, list[Any]]]:
        """(k, object, its class name, its 4 box values) as they go into the file."""
        written = self.boxes_as_written(img, i, corruptions)
        out = []
        for k, obj in enumerate(self.objects_of(img, i, corruptions)):
            name = next((c.value for c in corruptions if c.image == i and c.target == f"obj{k}.name"), name_of(obj))
            out.append((k, obj, name, written[k] if k < len(written) else list(obj.box)))
        return out

    def objects_of(self, img: Img, i: int, corruptions: list[Corruption]) -> tuple[Obj, ...]:
        extra = many_objects(img, i) if any(c.image == i and c.kind == "many_objects" for c in corruptions) else ()
        return img.objects + extra

    def oracle(self, img: Img, i: int, corruptions: list[Corruption], class_index: Callable[[int], int]) -> tuple:
        """The ground truth the format defines for image i with its `valid` corruptions applied:
        (labels, boxes, box_labels, box_difficult)."""
        objects = list(self.objects_of(img, i, corruptions))
        for c in corruptions:
            if c.image == i and c.kind == "zero_size":
                k = int(c.target[3 : c.target.index(".")])
                x0, y0, x1, y1 = objects[k].box
                objects[k] = Obj(objects[k].cls, (x0, y0, x0, y1) if (k + i) % 2 else (x0, y0, x1, y0), objects[k].difficult)
            if c.image == i and c.kind == "difficult_absent":
                k = int(c.target[3 : c.target.index(".")])
                objects[k] = Obj(objects[k].cls, objects[k].box, False)
        labels = tuple(sorted({class_index(o.cls) for o in objects}))
        return (labels, [list(o.box) for o in objects], [class_index(o.cls) for o in objects], [self.difficult_of(o) for o in objects])

    def difficult_of(self, obj: Obj) -> bool:
        return False

    def config(self, **overrides: Any) -> Any:
        return OmegaConf.merge(OmegaConf.load(CONF / "dataset" / f"{self.dataset}.yaml"), overrides)

    def class_index(self, cls: int) -> int:
        return cls


def xml_text(value: Any) -> bytes:
    from xml.sax.saxutils import escape

    return value if isinstance(value, bytes) else escape(str(value)).encode()


def xml_annotation(image_id: str, img: Img, objects: list[tuple[bytes | None, list[Any], Any]], size: tuple[Any, Any] | None,
                   extra: bytes = b"") -> bytes:
    """A VOC / ILSVRC XML: objects (name, [4 box values or None = element absent], difficult)."""
    parts = [b"<annotation><folder>VOC</folder><filename>", image_id.encode(), b".jpg</filename>"]
    if size is not None:
        parts.append(b"<size>")
        for tag, value in (("width", size[1]), ("height", size[0])):
            if value is not None:
                parts += [f"<{tag}>".encode(), xml_text(value), f"</{tag}>".encode()]
        parts.append(b"<depth>3</depth></size>")
    for name, box, difficult in objects:
        parts.append(b"<object>")
        if name is not None:
            parts += [b"<name>", name, b"</name>"]
        parts.append(b"<pose>Unspecified</pose><truncated>0</truncated>")
        if difficult is not None:
            parts += [b"<difficult>", xml_text(difficult), b"</difficult>"]
        if box is not None:
            parts.append(b"<bndbox>")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box):
                if value is not None:
                    parts += [f"<{tag}>".encode(), xml_text(value), f"</{tag}>".encode()]
            parts.append(b"</bndbox>")
        parts.append(b"</object>")
    parts += [extra, b"</annotation>\n"]
    return b"".join(parts)


XML_FILE_CORRUPTIONS = [
    Corruption(0, "xml", "absent", label="annotation file missing"),
    Corruption(0, "xml", "truncated", label="unreadable"),
    Corruption(0, "xml", "garbage", label="unreadable"),
]


def corrupt_file(data: bytes, kinds: set[str]) -> bytes | None:
    if "absent" in kinds:
        return None
    if "truncated" in kinds:
        return data[: len(data) // 2]
    if "garbage" in kinds:
        return b"\x89PNG\r\n\x1a\n\xff\xfe not xml"
    return data


class VocFormat(Format):
    name = "voc_xml"
    dataset = "voc"
    files = ("Annotations/", "difficult flag file", "test.txt")
    options = {"flags": st.booleans()}  # the difficult subset from a flag file, or computed

    def difficult_of(self, obj: Obj) -> bool:
        return obj.difficult

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        k = st.integers(0, len(img.objects) - 1)
        return [
            st.sampled_from(XML_FILE_CORRUPTIONS),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.name", "unknown_class", v, label="class"), k,
                      st.sampled_from([b"unicorn", b"", b"Dog", b"d\xffg"])),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.difficult", "bad_flag", v, label="difficult"), k,
                      st.sampled_from(["2", "-1", "abc", "nan", "", "0.5"])),
            k.map(lambda k: Corruption(0, f"obj{k}.difficult", "difficult_absent", None, "valid")),
            k.map(lambda k: Corruption(0, f"obj{k}.bndbox", "absent", None, label="bndbox")),
            st.builds(lambda f, v: Corruption(0, f"size.{f}", "size_hint", v, "hint"), st.sampled_from(["width", "height"]),
                      st.sampled_from([None, "", "nan", "-3", "0", "abc", "1e300", "99"])),
            st.just(Corruption(0, "listing", "duplicate", expect="hint")),
            st.just(Corruption(0, "listing", "class_split_form", expect="hint")),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ] + ([st.builds(lambda v: Corruption(0, "flags", "bad_flag_line", v, label="difficult flag file"),
                        st.sampled_from(["horse-drawn-cart", "dog extra", "99"]))] if options["flags"] else [])

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        voc = root / "VOCdevkit" / "VOC2007"
        (voc / "Annotations").mkdir(parents=True)
        (voc / "ImageSets" / "Main").mkdir(parents=True)
        ids, lines = {}, []
        flags = ["999999 dog"]  # a readable line for no listed image: the file is never wholly unreadable
        use_flags = options["flags"]
        for i, img in enumerate(images):
            image_id = f"{i + 1:06d}"
            ids[image_id] = i
            mine = [c for c in corruptions if c.image == i]
            write_jpeg(voc / "JPEGImages" / f"{image_id}.jpg", img, i, mine)
            objects = []
            for k, obj, name, values in self.objects_as_written(img, i, corruptions, lambda o: VOC_CLASSES[o.cls].encode()):
                box: list[Any] | None = [v + 1 if isinstance(v, int) else v for v in values]  # VOC pixel indices are 1-based
                difficult: Any = int(obj.difficult)
                for c in mine:
                    if c.target == f"obj{k}.difficult":
                        difficult = c.value
                    elif c.target == f"obj{k}.bndbox":
                        box = None
                objects.append((name, box, difficult))
            size: list[Any] = [img.height, img.width]
            for c in mine:
                if c.target.startswith("size."):
                    size[0 if c.target == "size.height" else 1] = c.value
            data = corrupt_file(xml_annotation(image_id, img, objects, tuple(size)), {c.kind for c in mine if c.target == "xml"})
            if data is not None:
                (voc / "Annotations" / f"{image_id}.xml").write_bytes(data)
            kinds = {c.kind for c in mine if c.target == "listing"}
            lines.append(f"{image_id} 1" if "class_split_form" in kinds else image_id)
            if "duplicate" in kinds:
                lines.insert(len(lines) // 2, image_id)
            if use_flags:
                bad = [c.value for c in mine if c.target == "flags"]
                flags += [f"{image_id} {bad[0]}"] if bad else [f"{image_id} {VOC_CLASSES[o.cls]}" for o in img.objects if o.difficult]
        (voc / "ImageSets" / "Main" / "test.txt").write_text("\n".join(lines) + "\n")
        overrides: dict[str, Any] = {"root": str(root / "VOCdevkit")}
        if use_flags:
            (root / "flags.txt").write_text("\n".join(flags) + "\n")
            overrides["difficult_flags"] = str(root / "flags.txt")
        return self.config(**overrides), ids


class ImagenetXmlFormat(Format):
    name = "imagenet_xml"
    dataset = "imagenet"
    n_classes = 10
    max_objects = 2
    files = ("ILSVRC2012_val_",)
    image_files_listed = False

    def class_index(self, cls: int) -> int:
        return cls  # wnids[0..9] are classes 0..9

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        k = st.integers(0, len(img.objects) - 1)
        return [
            st.sampled_from(XML_FILE_CORRUPTIONS),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.name", "unknown_class", v, label="class"), k,
                      st.sampled_from([b"n99999999", b"", b"N01440764", b"n0144\xff0764"])),
            st.builds(lambda f, v: Corruption(0, f"size.{f}", "size_hint", v, "hint"), st.sampled_from(["width", "height"]),
                      st.sampled_from([None, "", "nan", "-3", "abc", "1e300", "99"])),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ]

    def oracle(self, img: Img, i: int, corruptions: list[Corruption], class_index: Callable[[int], int]) -> tuple:
        labels, boxes, box_labels, difficult = super().oracle(img, i, corruptions, class_index)
        top = Counter(box_labels).most_common(1)[0][0]  # flat layout: the image's class is its most common box class
        return ((top,), boxes, box_labels, difficult)

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        wnids = imagenet_wnids()
        val, xml = root / "ILSVRC2012" / "val", root / "ILSVRC2012" / "val_bbox"
        xml.mkdir(parents=True)
        ids = {}
        for i, img in enumerate(images):
            image_id = f"ILSVRC2012_val_{i + 1:08d}"
            ids[image_id] = i
            mine = [c for c in corruptions if c.image == i]
            write_jpeg(val / f"{image_id}.JPEG", img, i, mine)
            objects = [(name, values, 0) for _, _, name, values in self.objects_as_written(img, i, corruptions, lambda o: wnids[o.cls].encode())]
            size: list[Any] = [img.height, img.width]
            for c in mine:
                if c.target.startswith("size."):
                    size[0 if c.target == "size.height" else 1] = c.value
            data = corrupt_file(xml_annotation(image_id, img, objects, tuple(size)), {c.kind for c in mine if c.target == "xml"})
            if data is not None:
                (xml / f"{image_id}.xml").write_bytes(data)
        return self.config(root=str(root / "ILSVRC2012")), ids


class KaggleCsvFormat(ImagenetXmlFormat):
    name = "imagenet_loc_csv"
    files = ("LOC_val_solution.csv",)

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        k = st.integers(0, len(img.objects) - 1)
        return [
            st.builds(lambda k, v: Corruption(0, f"obj{k}.name", "unknown_class", v, label="class"), k,
                      st.sampled_from([b"n99999999", b"N01440764", b"n0144\xff0764", b"12"])),
            st.sampled_from([
                Corruption(0, "row", "absent", label="no row"),
                Corruption(0, "row", "duplicate_same", expect="hint"),
                Corruption(0, "row", "duplicate_different", label="different values"),
                Corruption(0, "row", "token_dropped", label="PredictionString"),
                Corruption(0, "row", "extra_comma", label="PredictionString|not a number"),
                Corruption(0, "row", "empty_prediction", label="PredictionString"),
            ]),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ]

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        wnids = imagenet_wnids()
        top = root / "kaggle"
        val = top / "ILSVRC" / "Data" / "CLS-LOC" / "val"
        ids, rows = {}, [b"ImageId,PredictionString"]
        for i, img in enumerate(images):
            image_id = f"ILSVRC2012_val_{i + 1:08d}"
            ids[image_id] = i
            mine = [c for c in corruptions if c.image == i]
            write_jpeg(val / f"{image_id}.JPEG", img, i, mine)
            tokens = []
            for _, _, name, values in self.objects_as_written(img, i, corruptions, lambda o: wnids[o.cls].encode()):
                tokens += [name] + [cell(v) for v in values]
            kinds = {c.kind for c in mine if c.target == "row"}
            if "token_dropped" in kinds:
                tokens = tokens[:-1]
            prediction = b" ".join(tokens) + b" "
            if "empty_prediction" in kinds:
                prediction = b""
            if "extra_comma" in kinds:
                prediction = prediction.replace(b" ", b",", 1)
            line = image_id.encode() + b"," + prediction
            if "absent" not in kinds:
                rows.append(line)
            if "duplicate_same" in kinds:
                rows.append(line)
            if "duplicate_different" in kinds:
                rows.append(image_id.encode() + b"," + wnids[0].encode() + b" 0 0 3 3")
        (top / "LOC_val_solution.csv").parent.mkdir(parents=True, exist_ok=True)
        (top / "LOC_val_solution.csv").write_bytes(b"\n".join(rows) + b"\n")
        return self.config(root=str(top)), ids


class WsolFormat(Format):
    name = "wsol_metadata"
    dataset = "imagenet"
    n_classes = 1000
    max_objects = 2
    one_class = True
    files = ("localization.txt", "class_labels.txt", "image_ids.txt", "image_sizes.txt")
    value_fields = ("x0", "y0", "x1", "y1")

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        return [
            st.builds(lambda v: Corruption(0, "label", "bad_label", v, label="class label"),
                      st.sampled_from(["1000", "-1", "abc", "nan", "", "1.5", "\xff", "99999999999999999999"])),
            st.sampled_from([
                Corruption(0, "label", "absent", label="class label"),
                Corruption(0, "label", "duplicate_different", label="different values"),
                Corruption(0, "label", "malformed_line", label="fields"),
                Corruption(0, "boxes", "absent", label="no box"),
                Corruption(0, "boxes", "malformed_line", label="fields"),
                Corruption(0, "listing", "duplicate", expect="hint"),
                Corruption(0, "sizes", "malformed_line", expect="hint"),
                Corruption(0, "sizes", "nan", expect="hint"),
                Corruption(0, "sizes", "absent", expect="hint"),
            ]),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ]

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        data, meta = root / "wsol" / "ILSVRC", root / "wsol" / "metadata"
        meta.mkdir(parents=True)
        ids, listing, labels, boxes, sizes = {}, [], [], [], []
        for i, img in enumerate(images):
            image_id = f"val2/{img.objects[0].cls}/img{i}.jpeg"
            ids[image_id] = i
            mine = [c for c in corruptions if c.image == i]
            kinds = {(c.target, c.kind): c for c in mine}
            write_jpeg(data / image_id, img, i, mine)
            listing += [image_id] * (2 if ("listing", "duplicate") in kinds else 1)
            label = kinds[("label", "bad_label")].value if ("label", "bad_label") in kinds else str(img.objects[0].cls)
            if ("label", "malformed_line") in kinds:
                labels.append(f"{image_id},{label},7")
            elif ("label", "absent") not in kinds:
                labels.append(f"{image_id},{label}")
            if ("label", "duplicate_different") in kinds:
                labels.append(f"{image_id},{(img.objects[0].cls + 1) % 1000}")
            written = self.boxes_as_written(img, i, corruptions)
            for k, obj in enumerate(self.objects_of(img, i, corruptions)):
                values = written[k] if k < len(written) else list(obj.box)
                boxes.append(b",".join([image_id.encode(), *(cell(v) for v in values)]))
            if ("boxes", "absent") in kinds:
                boxes = [b for b in boxes if not b.startswith(image_id.encode() + b",")]
            if ("boxes", "malformed_line") in kinds:
                boxes.append(f"{image_id},1,2,3".encode())
            if ("sizes", "absent") not in kinds:
                width = "nan" if ("sizes", "nan") in kinds else str(img.width)
                sizes.append(f"{image_id},{width},{img.height}" + (",9" if ("sizes", "malformed_line") in kinds else ""))
        (meta / "image_ids.txt").write_text("\n".join(listing) + "\n")
        (meta / "class_labels.txt").write_text("\n".join(labels) + "\n")
        (meta / "localization.txt").write_bytes(b"\n".join(boxes) + b"\n")
        (meta / "image_sizes.txt").write_text("\n".join(sizes) + "\n")
        return self.config(root=str(data), metadata=str(meta)), ids


class CubFormat(Format):
    name = "cub_tables"
    dataset = "cub"
    n_classes = 200
    max_objects = 1
    files = ("bounding_boxes.txt", "image_class_labels.txt", "images.txt", "train_test_split.txt")
    value_fields = ("x", "y", "width", "height")
    inclusive = False

    def class_index(self, cls: int) -> int:
        return cls

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        return [
            st.builds(lambda v: Corruption(0, "label", "bad_label", v, label="class id"),
                      st.sampled_from(["0", "201", "-1", "abc", "nan", "1.0", "\xff"])),
            st.builds(lambda v: Corruption(0, "split", "bad_flag", v, label="is_training_image"),
                      st.sampled_from(["2", "-1", "abc", "nan", "0.0"])),
            st.sampled_from([
                Corruption(0, "label", "absent", label="class label"),
                Corruption(0, "label", "duplicate_different", label="different values"),
                Corruption(0, "boxes", "absent", label="bounding box"),
                Corruption(0, "boxes", "duplicate_same", expect="hint"),
                Corruption(0, "boxes", "duplicate_different", label="different values"),
                Corruption(0, "split", "absent", label="train_test_split.txt"),
                Corruption(0, "listing", "duplicate", expect="hint"),
                Corruption(0, "listing", "same_path_other_id", expect="hint"),
                Corruption(0, "listing", "no_path", label="fields", expect="free"),
            ]),
        ]

    def boxes_as_written(self, img: Img, i: int, corruptions: list[Corruption]) -> list[list[Any]]:
        """[x, y, w, h] per object, corrupted fields replaced; box-level kinds: swapped = a
        negative extent, zero_size = w or h 0, huge_coords = from -1e9 over 2e9 px."""
        out = []
        for k, obj in enumerate(img.objects):
            x0, y0, x1, y1 = obj.box
            values: list[Any] = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
            mine = [c for c in corruptions if c.image == i and c.target.startswith(f"obj{k}.")]
            for c in sorted(mine, key=lambda c: not c.target.endswith(".box")):  # whole-box kinds first, then fields
                field_name = c.target.split(".", 1)[1]
                if field_name in self.value_fields:
                    values[self.value_fields.index(field_name)] = c.value
                elif c.kind == "swapped":
                    values[2 + (k + i) % 2] = -values[2 + (k + i) % 2]
                elif c.kind == "zero_size":
                    values[2 + (k + i) % 2] = 0
                elif c.kind == "huge_coords":
                    values[0], values[2] = -1e9, 2e9
            out.append(values)
        return out

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        cub = root / "CUB_200_2011"
        cub.mkdir(parents=True)
        tables: dict[str, list[bytes]] = defaultdict(list)
        ids = {}
        for i, img in enumerate(images):
            key = str(i + 1)
            relative = f"{img.objects[0].cls + 1:03d}.Bird/img{i}.jpg"
            mine = [c for c in corruptions if c.image == i]
            kinds = {(c.target, c.kind): c for c in mine}
            write_jpeg(cub / "images" / relative, img, i, mine)
            no_path = ("listing", "no_path") in kinds
            ids[f"images.txt image id {key}" if no_path else relative] = i
            tables["images.txt"] += [key.encode() if no_path else f"{key} {relative}".encode()]
            if ("listing", "duplicate") in kinds:
                tables["images.txt"].append(f"{key} {relative}".encode())
            label = cell(kinds[("label", "bad_label")].value) if ("label", "bad_label") in kinds else str(img.objects[0].cls + 1).encode()
            labels = [] if ("label", "absent") in kinds else [key.encode() + b" " + label]
            if ("label", "duplicate_different") in kinds:
                labels.append(f"{key} {(img.objects[0].cls + 1) % 200 + 1}".encode())
            line = b" ".join([key.encode(), *(cell(v) for v in self.boxes_as_written(img, i, corruptions)[0])])
            box_lines = [] if ("boxes", "absent") in kinds else [line]
            if ("boxes", "duplicate_same") in kinds:
                box_lines.append(line)
            if ("boxes", "duplicate_different") in kinds:
                box_lines.append(f"{key} 0.0 0.0 3.0 3.0".encode())
            split = cell(kinds[("split", "bad_flag")].value) if ("split", "bad_flag") in kinds else b"0"
            splits = [] if ("split", "absent") in kinds else [key.encode() + b" " + split]
            if ("listing", "same_path_other_id") in kinds:  # the same image again under a new id, same annotations
                other = str(100 + i).encode()
                tables["images.txt"].append(other + f" {relative}".encode())
                for group in (labels, box_lines, splits):
                    group += [other + g[len(key):] for g in list(group)[:1]]
            tables["image_class_labels.txt"] += labels
            tables["bounding_boxes.txt"] += box_lines
            tables["train_test_split.txt"] += splits
        for name, lines in tables.items():
            (cub / name).write_bytes(b"\n".join(lines) + b"\n")
        return self.config(root=str(cub)), ids


class CocoFormat(Format):
    name = "coco_json"
    dataset = "coco14"
    n_classes = 3
    files = ("instances_val2014.json",)
    value_fields = ("x", "y", "width", "height")
    inclusive = False
    categories = (1, 3, 18)

    def difficult_of(self, obj: Obj) -> bool:
        return obj.difficult  # iscrowd

    @st.composite
    def value_corruption(draw: Callable, self: "CocoFormat", img: Img) -> Corruption:
        k = draw(st.integers(0, len(img.objects) - 1))
        name = draw(st.sampled_from(self.value_fields))
        kind = draw(st.sampled_from(sorted(JSON_BAD) + ["zero_size", "negative_extent", "huge_coords"]))
        if kind in JSON_BAD:  # a negative x or y reaches outside the image: clipped with a note, or all outside
            return Corruption(0, f"obj{k}.{name}", kind, draw(JSON_BAD[kind]), label=name + "|bbox")
        return Corruption(0, f"obj{k}.box", kind, None, label="width|height")

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        k = st.integers(0, len(img.objects) - 1)
        return [
            st.builds(lambda k, v: Corruption(0, f"obj{k}.category_id", "unknown_class", v, label="category"), k,
                      st.sampled_from([999, "1", None, 1.5, [1], float("nan")])),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.iscrowd", "bad_flag", v, label="iscrowd"), k,
                      st.sampled_from([2, -1, "1", 0.5, [0], float("nan")])),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.bbox", "bad_bbox", v, label="bbox"), k,
                      st.sampled_from(["absent", None, [1, 2, 3], [1, 2, 3, 4, 5], "1,2,3,4", {}])),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.segmentation", "bad_segmentation", v, label="segmentation"), k,
                      st.sampled_from(["nan_vertex", "string_vertex", "odd", "too_short", "not_list", "partial_rle", "negative_rle",
                                       "rle_bad_string", "rle_bad_size", "rle_counts_type", "number"])),
            st.builds(lambda k, v: Corruption(0, f"obj{k}.segmentation", "segmentation_fallback", v, "bad", label="segmentation"), k,
                      st.sampled_from(["absent", "empty_list", "null", "rle_other_size", "polygon_outside", "degenerate"])),
            st.builds(lambda k: Corruption(0, f"obj{k}.segmentation", "polygon_far_outside", None, "bad"), k),
            st.builds(lambda f, v: Corruption(0, f"size.{f}", "size_hint", v, "hint"), st.sampled_from(["width", "height"]),
                      st.sampled_from(["absent", None, "40", float("nan"), -3, 0, 10**30, 99])),
            st.sampled_from([
                Corruption(0, "entry", "duplicate_same", expect="hint"),
                Corruption(0, "entry", "duplicate_different", label="different entries"),
                Corruption(0, "annotations", "absent", label="no object annotations"),
            ]),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ]

    def class_index(self, cls: int) -> int:
        return cls

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        coco = root / "coco"
        (coco / "annotations").mkdir(parents=True)
        entries, anns, ids = [], [], {}
        for i, img in enumerate(images):
            mine = [c for c in corruptions if c.image == i]
            file_name = f"COCO_val2014_{i + 1:012d}.jpg"
            ids[file_name] = i
            write_jpeg(coco / "val2014" / file_name, img, i, mine)
            entry: dict[str, Any] = {"id": i + 1, "file_name": file_name, "height": img.height, "width": img.width}
            for c in mine:
                if c.target.startswith("size."):
                    if c.value == "absent":
                        del entry[c.target[5:]]
                    else:
                        entry[c.target[5:]] = c.value
            entries.append(entry)
            kinds = {(c.target, c.kind) for c in mine}
            if ("entry", "duplicate_same") in kinds:
                entries.append(dict(entry))
            if ("entry", "duplicate_different") in kinds:
                entries.append({**entry, "file_name": f"other_{i}.jpg"})
                ids[f"other_{i}.jpg"] = i
            if ("annotations", "absent") in kinds:
                continue
            for k, obj in enumerate(self.objects_of(img, i, corruptions)):
                x0, y0, x1, y1 = obj.box
                bbox: Any = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
                segmentation: Any = [[x0, y0, x1 + 1, y0, x1 + 1, y1 + 1, x0, y1 + 1]]
                ann: dict[str, Any] = {"id": len(anns) + 1, "image_id": i + 1, "category_id": self.categories[obj.cls],
                                       "iscrowd": int(obj.difficult), "area": float(bbox[2] * bbox[3])}
                if obj.difficult:  # crowd regions are RLEs, as in COCO
                    mask = np.zeros((img.height, img.width), dtype=np.uint8)
                    mask[y0 : y1 + 1, x0 : x1 + 1] = 1
                    segmentation = rle_of(mask)
                for c in mine:
                    if not c.target.startswith(f"obj{k}."):
                        continue
                    field_name = c.target.split(".", 1)[1]
                    if field_name in self.value_fields:
                        bbox[self.value_fields.index(field_name)] = c.value
                    elif field_name == "box":
                        bbox = {"zero_size": [x0, y0, 0, bbox[3]] if (k + i) % 2 else [x0, y0, bbox[2], 0],
                                "negative_extent": [x1, y0, -bbox[2], bbox[3]],
                                "huge_coords": [-1e9, y0, 2e9, bbox[3]]}[c.kind]
                    elif field_name == "category_id":
                        ann["category_id"] = c.value
                    elif field_name == "iscrowd":
                        ann["iscrowd"] = c.value
                    elif field_name == "bbox":
                        bbox = c.value
                    elif field_name == "segmentation":
                        segmentation = bad_segmentation(c.value if c.value is not None else "polygon_far_outside", img, obj)
                if bbox != "absent":
                    ann["bbox"] = bbox
                if segmentation != "absent":
                    ann["segmentation"] = segmentation
                anns.append(ann)
        doc = {"info": {"year": 2014}, "licenses": [], "images": entries, "annotations": anns,
               "categories": [{"id": c, "name": n} for c, n in zip(self.categories, ("person", "car", "dog"))]}
        (coco / "annotations" / "instances_val2014.json").write_text(dump_json(doc))
        return self.config(root=str(coco)), ids


def rle_of(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE of a [H, W] 0/1 mask (column-major runs, starting with 0s)."""
    flat = mask.T.ravel()
    change = np.flatnonzero(np.diff(flat)) + 1
    edges = np.concatenate([[0], change, [len(flat)]])
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"counts": counts, "size": [int(mask.shape[0]), int(mask.shape[1])]}


def bad_segmentation(kind: str, img: Img, obj: Obj) -> Any:
    """The segmentation a corruption kind writes for `obj` (COCO JSON values)."""
    x0, y0, x1, y1 = obj.box
    poly = [x0, y0, x1 + 1, y0, x1 + 1, y1 + 1, x0, y1 + 1]
    return {
        "nan_vertex": [[float("nan")] + poly[1:]],
        "string_vertex": [["1"] + poly[1:]],
        "odd": [poly[:-1]],
        "too_short": [poly[:4]],
        "not_list": [5],
        "number": 5,
        "partial_rle": {"counts": [3, 4], "size": [img.height, img.width]},
        "negative_rle": {"counts": [-3, img.height * img.width + 3], "size": [img.height, img.width]},
        "rle_bad_string": {"counts": "\x01\x02 bad", "size": [img.height, img.width]},
        "rle_bad_size": {"counts": [img.height * img.width], "size": [img.height, "w"]},
        "rle_counts_type": {"counts": 12, "size": [img.height, img.width]},
        "absent": "absent",
        "empty_list": [],
        "null": None,
        "rle_other_size": {"counts": [6], "size": [2, 3]},
        "polygon_outside": [[-50, -50, -40, -50, -40, -40]],
        "degenerate": [[x0, y0, x0, y0, x0, y0]],
        "polygon_far_outside": [[x0, y0, 1e9, y0, x1 + 1, y1 + 1, x0, y1 + 1]],
    }[kind]


class DemoFormat(Format):
    name = "demo_csv"
    dataset = "demo"
    n_classes = 1000
    max_objects = 1
    files = ("annotations.csv",)
    value_fields = ("x_min", "y_min", "x_max", "y_max")
    header = "image_id,package,file,width,height,class_index,class_name,x_min,y_min,x_max,y_max"

    def images(self) -> st.SearchStrategy:
        return st.lists(st.sampled_from(range(7)), min_size=2, max_size=3, unique=True).map(lambda rows: [self.shipped()[r] for r in rows])

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def shipped() -> tuple[Img, ...]:
        from wsl_bench.data.datasets.demo import ANNOTATIONS

        import csv
        rows = list(csv.DictReader(line for line in ANNOTATIONS.read_text().splitlines() if not line.startswith("#")))
        DemoFormat.rows = rows
        return tuple(Img(int(r["height"]), int(r["width"]), (Obj(int(r["class_index"]), tuple(int(r[k]) for k in ("x_min", "y_min", "x_max", "y_max"))),))
                     for r in rows)

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        return [
            st.builds(lambda v: Corruption(0, "class_index", "bad_label", v, label="class_index"),
                      st.sampled_from(["1000", "-1", "abc", "nan", "", "1.5"])),
            st.builds(lambda f, v: Corruption(0, f"size.{f}", "size_hint", v, "hint"), st.sampled_from(["width", "height"]),
                      st.sampled_from(["", "nan", "abc", "1e300", "99"])),
            st.sampled_from([
                Corruption(0, "package", "unknown", label="package"),
                Corruption(0, "file", "absent", label="file not found"),
                Corruption(0, "row", "duplicate_same", expect="hint"),
                Corruption(0, "row", "duplicate_different", label="different values"),
                Corruption(0, "row", "extra_field", label="fields"),
            ]),
        ]

    def corruption(self, img: Img, options: dict[str, Any]) -> st.SearchStrategy:
        return st.one_of(self.value_corruption(img), st.one_of(*self.extra_corruptions(img, options)))

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        root.mkdir(parents=True, exist_ok=True)
        by_image = dict(zip(self.shipped(), self.rows))
        columns = self.header.split(",")
        lines, ids = [self.header.encode()], {}
        for i, img in enumerate(images):
            row = dict(by_image[img])
            ids[row["image_id"]] = i
            mine = [c for c in corruptions if c.image == i]
            values: dict[str, Any] = {**row, **dict(zip(self.value_fields, self.boxes_as_written(img, i, corruptions)[0]))}
            kinds = {(c.target, c.kind) for c in mine}
            for c in mine:
                if c.target == "class_index":
                    values["class_index"] = c.value
                elif c.target.startswith("size."):
                    values[c.target[5:]] = c.value
            if ("package", "unknown") in kinds:
                values["package"] = "no_such_package_xyz"
            if ("file", "absent") in kinds:
                values["file"] = "data/no_such_file.png"
            cells = [cell(values[k]) for k in columns]
            if ("row", "extra_field") in kinds:
                cells.append(b"extra")
            line = b",".join(c if b"," not in c else b'"' + c + b'"' for c in cells)
            lines.append(line)
            if ("row", "duplicate_same") in kinds:
                lines.append(line)
            if ("row", "duplicate_different") in kinds:
                other = list(cells)
                other[columns.index("x_min")] = b"1" if other[columns.index("x_min")] != b"1" else b"2"
                lines.append(b",".join(other))
        (root / "annotations.csv").write_bytes(b"\n".join(lines) + b"\n")
        return self.config(annotations=str(root / "annotations.csv")), ids


@functools.lru_cache(maxsize=256)
def mask_png(height: int, width: int, box: tuple[int, int, int, int] | None, kind: str = "") -> bytes:
    """A mask PNG of the inclusive `box` (None: all zero), 255 inside (kind "value_1": 1;
    "rgb": red on black, an RGB PNG); "truncated": a noise PNG cut after its header."""
    mask = np.zeros((height, width), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        mask[y0 : y1 + 1, x0 : x1 + 1] = 1 if kind == "value_1" else 255
    if kind == "truncated":
        mask = (np.random.default_rng(0).random((height, width)) > 0.5).astype(np.uint8) * 255
    img = Image.fromarray(np.stack([mask, mask * 0, mask * 0], axis=-1) if kind == "rgb" else mask)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()[:120] if kind == "truncated" else buffer.getvalue()


def region(height: int, width: int, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def packed(mask: np.ndarray) -> tuple:
    return (mask.shape, np.packbits(mask).tobytes())


class OpenImagesFormat(Format):
    """wsolevaluation's OpenImages30k: instance mask PNGs per object (the object's box filled),
    an ignore PNG per image (its top-left quarter), metadata/OpenImages/test/*.txt."""

    name = "openimages_masks"
    dataset = "openimages"
    n_classes = 100
    one_class = True
    files = ("class_labels.txt", "localization.txt", "image_ids.txt", "mask PNG")
    gt_fields = 7  # the masks and the ignore region are the ground truth too

    def corruption(self, img: Img, options: dict[str, Any]) -> st.SearchStrategy:
        return st.one_of(st.sampled_from(JPEG_KINDS), *self.extra_corruptions(img, options))

    def extra_corruptions(self, img: Img, options: dict[str, Any]) -> list[st.SearchStrategy]:
        k = st.integers(0, len(img.objects) - 1)
        return [
            st.builds(lambda v: Corruption(0, "label", "bad_label", v, label="class label"),
                      st.sampled_from(["100", "-1", "abc", "nan", "", "1.5", b"1\xff", "9" * 400, "1e2", "0x1"])),
            st.sampled_from([
                Corruption(0, "label", "absent", label="class label"),
                Corruption(0, "label", "duplicate_same", expect="hint"),
                Corruption(0, "label", "duplicate_different", label="different values"),
                Corruption(0, "label", "malformed_line", label="fields"),
                Corruption(0, "masks", "absent", label="no mask"),
                Corruption(0, "masks", "malformed_line", label="fields"),
                Corruption(0, "masks", "duplicate_line", expect="hint"),
                Corruption(0, "listing", "duplicate", expect="hint"),
                Corruption(0, "ignore", "absent_file", label="ignore PNG"),
                Corruption(0, "ignore", "not_png", label="ignore PNG"),
                Corruption(0, "ignore", "truncated", label="ignore PNG"),
                Corruption(0, "ignore", "wrong_size", label="ignore mask"),
                Corruption(0, "ignore", "not_listed", label="ignore mask"),
                Corruption(0, "ignore", "on_last_line", expect="hint"),
                Corruption(0, "ignore", "two_different", label="different ignore masks"),
            ]),
            st.builds(lambda k, kind: Corruption(0, f"obj{k}.mask", kind, label="mask PNG|mask path|mask"), k,
                      st.sampled_from(["absent_file", "not_png", "zero_byte", "truncated", "wrong_size", "empty_path", "path_non_utf8",
                                       "path_huge", "path_nul", "path_outside"])),
            st.builds(lambda k, kind: Corruption(0, f"obj{k}.mask", kind, expect="valid"), k, st.sampled_from(["value_1", "rgb", "all_zero"])),
            st.just(Corruption(0, "objects", "many_objects", expect="valid")),
        ]

    def oracle(self, img: Img, i: int, corruptions: list[Corruption], class_index: Callable[[int], int]) -> tuple:
        """Labels, no boxes, the union of the instance masks and the ignore region minus it."""
        objects = list(self.objects_of(img, i, corruptions))
        empty = {int(c.target[3 : c.target.index(".")]) for c in corruptions if c.image == i and c.kind == "all_zero"}
        union = region(img.height, img.width, [o.box for k, o in enumerate(objects) if k not in empty])
        ignore = region(img.height, img.width, [self.ignore_box(img)]) & ~union
        return ((objects[0].cls,), [], [], [], (), {objects[0].cls: packed(union)}, packed(ignore))

    @staticmethod
    def ignore_box(img: Img) -> tuple[int, int, int, int]:
        return (0, 0, img.width // 2 - 1, img.height // 2 - 1)

    def write(self, root: Path, images: list[Img], corruptions: list[Corruption], options: dict[str, Any]) -> tuple[Any, dict[str, int]]:
        data, meta = root / "wsol" / "dataset" / "OpenImages", root / "wsol" / "metadata" / "OpenImages" / "test"
        meta.mkdir(parents=True)
        ids, listing, labels, lines = {}, [], [], []
        for i, img in enumerate(images):
            folder = f"test/c{img.objects[0].cls}"
            image_id = f"{folder}/img{i}.jpg"
            ids[image_id] = i
            mine = [c for c in corruptions if c.image == i]
            kinds = {(c.target, c.kind) for c in mine}
            write_jpeg(data / image_id, img, i, mine)
            listing += [image_id] * (2 if ("listing", "duplicate") in kinds else 1)
            label = next((cell(c.value) for c in mine if c.kind == "bad_label"), str(img.objects[0].cls).encode())
            if ("label", "malformed_line") in kinds:
                labels.append(image_id.encode() + b"," + label + b",7")
            elif ("label", "absent") not in kinds:
                labels += [image_id.encode() + b"," + label] * (2 if ("label", "duplicate_same") in kinds else 1)
            if ("label", "duplicate_different") in kinds:
                labels.append(f"{image_id},{(img.objects[0].cls + 1) % 100}".encode())
            ignore = f"{folder}/img{i}_ignore.png"
            ignore_kind = next((kind for target, kind in kinds if target == "ignore"), "")
            ignore_png = {"not_png": b"not a png", "truncated": mask_png(img.height, img.width, None, "truncated"),
                          "wrong_size": mask_png(img.height // 2, img.width // 2, (0, 0, img.width // 4 - 1, img.height // 4 - 1))
                          }.get(ignore_kind, mask_png(img.height, img.width, self.ignore_box(img)))
            if ignore_kind != "absent_file":
                (data / ignore).write_bytes(ignore_png)
            image_lines: list[list[bytes]] = []
            for k, obj in enumerate(self.objects_of(img, i, corruptions)):
                mask = f"{folder}/img{i}_mc{obj.cls}_{k}.png"
                kind = next((c.kind for c in mine if c.target == f"obj{k}.mask"), "")
                path: bytes = {"empty_path": b"", "path_non_utf8": f"{folder}/img{i}_\xff.png".encode("latin-1"),
                               "path_huge": f"{folder}/{'m' * 300}.png".encode(), "path_nul": f"{folder}/a\x00b.png".encode(),
                               "path_outside": b"../../../../../../../../etc/hostname"}.get(kind, mask.encode())
                special = {"not_png": b"\x89PNG but not really", "zero_byte": b"",
                           "wrong_size": mask_png(img.height // 2, img.width // 2, tuple(v // 2 for v in obj.box)),
                           "all_zero": mask_png(img.height, img.width, None)}
                png = special[kind] if kind in special else mask_png(img.height, img.width, obj.box, kind)
                if kind != "absent_file":
                    (data / mask).write_bytes(png)
                image_lines.append([image_id.encode(), path, b""])
            first = -1 if ignore_kind == "on_last_line" else 0
            if ignore_kind != "not_listed":
                image_lines[first][2] = ignore.encode()
            if ignore_kind == "two_different":
                image_lines.append([image_id.encode(), image_lines[0][1], f"{folder}/other_ignore.png".encode()])
            if ("masks", "duplicate_line") in kinds:
                image_lines.append(list(image_lines[0]))
            if ("masks", "malformed_line") in kinds:
                image_lines.append([image_id.encode(), image_lines[0][1], b"", b"extra"])
            if ("masks", "absent") not in kinds:
                lines += [b",".join(line) for line in image_lines]
        (meta / "image_ids.txt").write_text("\n".join(listing) + "\n")
        (meta / "class_labels.txt").write_bytes(b"\n".join(labels) + b"\n")
        (meta / "localization.txt").write_bytes(b"\n".join(lines) + b"\n")
        (meta / "image_sizes.txt").write_text("")  # wsolevaluation ships it empty for OpenImages
        return self.config(root=str(data)), ids


FORMATS = {f.name: f for f in (VocFormat(), ImagenetXmlFormat(), KaggleCsvFormat(), WsolFormat(), CubFormat(), CocoFormat(), DemoFormat(), OpenImagesFormat())}


# --- loading and the property -------------------------------------------------------------------------

@dataclass
class Loaded:
    error: str | None
    samples: dict[str, Any]
    rejected: dict[str, str]


TRANSFORM = ProtocolTransform("squash", 32, (0.5,) * 3, (0.5,) * 3)


def load(cfg: Any) -> Loaded:
    """The real loading path: build_dataset, then every entry through DecodedImages."""
    try:
        data = build_dataset(cfg)
    except DatasetLayoutError as exc:
        return Loaded(str(exc), {}, {})
    ids = [e.image_id for e in data.entries] + [i for i, _ in data.rejected]
    assert len(ids) == len(set(ids)), f"an image has two rows: {[i for i, n in Counter(ids).items() if n > 1]}"
    decoded = DecodedImages(data.entries, TRANSFORM)
    return Loaded(None, {e.image_id: decoded[i] for i, e in enumerate(data.entries)}, dict(data.rejected))


def ground_truth(sample: Any) -> tuple:
    entry = sample.entry
    masks = entry.masks() if entry.masks is not None else {}
    ignore = entry.ignore() if entry.ignore is not None else None
    return (entry.labels, entry.boxes.tolist(), entry.box_labels.tolist(), entry.box_difficult.tolist(),
            entry.difficult_classes, {k: packed(v) for k, v in sorted(masks.items())}, None if ignore is None else packed(ignore))


# reasons that need not name the annotation file: they say what the image or its ground truth lacks
DECODE_REASONS = re.compile(r"^(file not found|image too small|unreadable image|zero-byte file|all \d+ ground-truth box|no object annotations"
                            r"|no (objects|boxes|annotations) of known (classes|categories)|annotation lists no)")


def template(text: str) -> str:
    """A reason or note with its values masked, for tallies: '...' and numbers become placeholders."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\[[^\]]*\]", "[…]", text)
    text = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e[+-]?\d+)?", "N", text)
    return text


def check(fmt: Format, images: list[Img], corruptions: list[Corruption], clean: Loaded, clean_ids: dict[str, int], bad: Loaded,
          listed: dict[str, int], tally: dict[str, Counter]) -> None:
    """The property (issue 13) for one example; adds each corrupted image's outcome to `tally`.
    clean_ids / listed: {image id: image index} of the clean and the corrupted dataset."""
    assert clean.error is None and not clean.rejected, clean
    assert all(s.skip_reason is None for s in clean.samples.values()), "the clean fixture must load"
    reference = {i: clean.samples[image_id] for image_id, i in clean_ids.items()}
    by_image: dict[int, list[Corruption]] = defaultdict(list)
    for c in corruptions:
        by_image[c.image].append(c)
    kinds = {i: "+".join(sorted(f"{c.target.split('.')[-1]}:{c.kind}" for c in cs)) for i, cs in by_image.items()}
    if bad.error is not None:
        assert "\n" not in bad.error
        assert len(by_image) == len(images), f"a layout error although some images are uncorrupted: {bad.error}"
        for i in by_image:
            tally[kinds[i]]["layout error: " + template(bad.error)] += 1
        return
    assert set(bad.samples) | set(bad.rejected) == set(listed), (sorted(bad.samples), sorted(bad.rejected), listed)
    assert not set(bad.samples) & set(bad.rejected)
    for image_id, i in listed.items():
        sample = bad.samples.get(image_id)
        reason = bad.rejected.get(image_id) or (sample.skip_reason if sample is not None else None)
        before = reference[i]
        if i not in by_image:
            assert reason is None, f"uncorrupted {image_id} skipped: {reason}"
            assert ground_truth(sample) == ground_truth(before), f"uncorrupted {image_id} changed"
            assert sample.notes == before.notes
            continue
        mine = by_image[i]
        expects = {c.expect for c in mine}
        if reason is not None:
            assert reason and not reason.startswith(("could not prepare", "error:")), reason
            assert expects != {"hint"} and expects != {"valid"}, f"{image_id} skipped for a well-formed value: {reason} ({mine})"
            names_file = any(name in reason for name in fmt.files)
            assert names_file or DECODE_REASONS.match(reason), f"{image_id}: vague reason {reason!r} ({mine})"
            labels = [c.label for c in mine if c.label and c.expect == "bad"]
            if names_file and labels and len(mine) == 1:
                assert re.search(labels[0] + r"|expected \d+ fields|PredictionString|unreadable", reason), (reason, mine)
            outcome = "skipped: " + template(reason)
        else:
            noted = sample.notes != before.notes  # a note the clean image does not have
            got = ground_truth(sample)
            if "valid" in expects or "hint" in expects:
                n = fmt.gt_fields
                expected = fmt.oracle(images[i], i, corruptions, fmt.class_index) if "valid" in expects else ground_truth(before)[:n]
                if got[:n] != tuple(expected):
                    assert noted, f"{image_id}: ground truth changed without a note ({mine}): {got[:n]} != {expected}"
                    assert "bad" in expects or "free" in expects, f"{image_id}: well-formed input scored differently ({mine})"
            elif got != ground_truth(before):
                assert noted, f"{image_id}: ground truth changed without a note ({mine})"
            if "bad" in expects:
                assert noted, f"{image_id}: a malformed value was accepted without a note ({mine})"
            outcome = ("repaired: " + template(sample.notes)) if noted else "scored unchanged"
        tally[kinds[i]][outcome] += 1
