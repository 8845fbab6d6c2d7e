"""Writers of tiny datasets in their real on-disk layouts (real JPEG/PNG files, VOC/ILSVRC XML,
Kaggle CSV, COCO JSON, CUB text tables, wsolevaluation metadata), for loader and CLI tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

VOC_XML = """<annotation>
  <folder>VOC{year}</folder>
  <filename>{image_id}.jpg</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  <segmented>0</segmented>
{objects}</annotation>
"""
VOC_OBJECT = """  <object>
    <name>{name}</name>
    <pose>Unspecified</pose>
    <truncated>0</truncated>
    <difficult>{difficult}</difficult>
    <bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
  </object>
"""


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An RGB uint8 image with structure (a gradient and a bright square), not flat noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1), np.full_like(x, 90)], axis=-1)
    img = img + rng.integers(0, 20, size=img.shape)
    img[height // 4 : height // 2, width // 4 : width // 2] = (250, 240, 30)
    return img.clip(0, 255).astype(np.uint8)


def write_image(path: Path, height: int = 40, width: int = 48, seed: int = 0, mode: str = "RGB", fmt: str | None = None,
                exif_orientation: int | None = None) -> Path:
    """An image file of height x width stored pixels (with an EXIF orientation tag when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        extra["exif"] = exif.tobytes()
    Image.fromarray(photo(height, width, seed)).convert(mode).save(
        path, format=fmt or ("JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else None), quality=90, **extra)
    return path


def voc_xml(image_id: str, size: tuple[int, int], objects: list[tuple], year: int = 2007) -> str:
    """objects: (name, x0, y0, x1, y1[, difficult]) in VOC's 1-based pixel indices."""
    body = "".join(
        VOC_OBJECT.format(name=o[0], x0=o[1], y0=o[2], x1=o[3], y1=o[4], difficult=int(o[5]) if len(o) > 5 else 0)
        for o in objects
    )
    return VOC_XML.format(year=year, image_id=image_id, height=size[0], width=size[1], objects=body)


def write_voc(root: Path, images: dict[str, tuple[tuple[int, int], list[tuple]]], split: str = "test", year: int = 2007,
              write_xml: bool = True, split_ids: list[str] | None = None) -> Path:
    """VOCdevkit/VOC<year> with JPEGImages/, Annotations/ and ImageSets/Main/<split>.txt."""
    voc = root / "VOCdevkit" / f"VOC{year}"
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for i, (image_id, (size, objects)) in enumerate(images.items()):
        write_image(voc / "JPEGImages" / f"{image_id}.jpg", *size, seed=i)
        if write_xml:
            (voc / "Annotations" / f"{image_id}.xml").write_text(voc_xml(image_id, size, objects, year))
    (voc / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(split_ids or list(images)) + "\n")
    return voc


def ilsvrc_xml(image_id: str, size: tuple[int, int], objects: list[tuple]) -> str:
    """ILSVRC2012 bbox-val XML: objects (wnid, xmin, ymin, xmax, ymax)."""
    body = "".join(VOC_OBJECT.format(name=o[0], x0=o[1], y0=o[2], x1=o[3], y1=o[4], difficult=0) for o in objects)
    return (
        f"<annotation><folder>val</folder><filename>{image_id}</filename>"
        "<source><database>ILSVRC_2012</database></source>"
        f"<size><width>{size[1]}</width><height>{size[0]}</height><depth>3</depth></size>"
        f"<segmented>0</segmented>\n{body}</annotation>\n"
    )


def write_loc_solution(path: Path, rows: dict[str, list[tuple]]) -> Path:
    """Kaggle LOC_val_solution.csv: ImageId,PredictionString ('wnid x0 y0 x1 y1 ...')."""
    lines = ["ImageId,PredictionString"]
    for image_id, objects in rows.items():
        lines.append(f"{image_id}," + " ".join(" ".join(str(v) for v in o) for o in objects) + " ")
    path.write_text("\n".join(lines) + "\n")
    return path


def write_coco(root: Path, year: int, images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
    """<root>/val<year>/<file_name> images and annotations/instances_val<year>.json."""
    for i, info in enumerate(images):
        write_image(root / f"val{year}" / info["file_name"], info["height"], info["width"], seed=i)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    for i, ann in enumerate(annotations, 1):
        ann.setdefault("id", i)
        ann.setdefault("iscrowd", 0)
        ann.setdefault("area", float(ann["bbox"][2] * ann["bbox"][3]))
    doc = {"info": {"year": year}, "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / f"instances_val{year}.json").write_text(json.dumps(doc))
    return root


def write_cub(root: Path, images: list[tuple[str, int, tuple[float, float, float, float], int]], size=(40, 48)) -> Path:
    """CUB_200_2011 tables; images: (relative path, class id 1..200, (x, y, w, h), is_train)."""
    cub = root / "CUB_200_2011"
    cub.mkdir(parents=True, exist_ok=True)
    tables = {"images.txt": [], "image_class_labels.txt": [], "bounding_boxes.txt": [], "train_test_split.txt": []}
    for i, (relative, cls, (x, y, w, h), train) in enumerate(images, 1):
        write_image(cub / "images" / relative, *size, seed=i)
        tables["images.txt"].append(f"{i} {relative}")
        tables["image_class_labels.txt"].append(f"{i} {cls}")
        tables["bounding_boxes.txt"].append(f"{i} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
        tables["train_test_split.txt"].append(f"{i} {train}")
    for name, lines in tables.items():
        (cub / name).write_text("\n".join(lines) + "\n")
    (cub / "classes.txt").write_text("\n".join(f"{i} {i:03d}.Bird_{i}" for i in range(1, 201)) + "\n")
    return cub


def run_cli_batch(jobs: dict[str, tuple[list[str], Path, dict[str, str] | None]], parallel: int = 3, timeout: int = 300) -> dict:
    """Run several real CLI invocations (`python -m wsl_bench ...`), `parallel` at a time, so
    their start-up imports overlap. jobs: name -> (overrides, cwd, extra env). Returns name ->
    CompletedProcess."""
    import os
    import subprocess
    import sys
    import time

    pending = list(jobs.items())
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    done: dict[str, subprocess.CompletedProcess] = {}
    while pending or running:
        while pending and len(running) < parallel:
            name, (overrides, cwd, extra_env) = pending.pop(0)
            cwd.mkdir(parents=True, exist_ok=True)
            env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
            args = [sys.executable, "-m", "wsl_bench", *overrides, f"hydra.run.dir={cwd / 'run'}"]
            proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            running[name] = (proc, time.monotonic())
        for name, (proc, started) in list(running.items()):
            if proc.poll() is not None or time.monotonic() - started > timeout:
                if proc.returncode is None:
                    proc.kill()
                out, err = proc.communicate()
                done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
                del running[name]
        time.sleep(0.05)
    return done
