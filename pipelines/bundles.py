"""The champion's bundle on disk: fetched from its MLflow Model, stamped with its registry facts, swapped in whole.

Shared by export and rollback; no torch or ONNX here, so a rollback starts in the time MLflow takes to import.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from serving.contract import MODEL_FILE, is_complete, read_meta, write_meta
from serving.pyfunc import download_bundle
from training.tokenizer import file_sha256


def stamp(bundle: Path, **fields: str) -> None:
    """Write registry facts (version, run, model URI) into the bundle's meta.json."""
    write_meta(bundle, read_meta(bundle).stamped(**fields))


def champion_bundle(client, champion, name: str, out: Path) -> None:
    """Make `out` the champion's bundle, downloading it from the registry unless it is already there."""
    if (is_complete(out) and read_meta(out).registered_model == name
            and champion.tags.get("onnx_sha256") == file_sha256(out / MODEL_FILE)):
        return
    with tempfile.TemporaryDirectory() as tmp:
        replace_dir(fetch_bundle(name, str(champion.version), tmp), out)


def fetch_bundle(name: str, version: str, dst: str) -> Path:
    """Version `version`'s bundle from its MLflow Model, into `dst`, stamped with its registry facts.

    A version registered before the champion was an MLflow Model fails with a FileNotFoundError."""
    uri = f"models:/{name}/{version}"
    bundle = download_bundle(uri, dst)
    stamp(bundle, version=version, model_uri=uri, registered_model=name)
    return bundle


def replace_dir(src: Path, dest: Path) -> None:
    """Make `dest` a copy of `src`; a failed copy leaves the old `dest` whole."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    shutil.rmtree(staging)
    shutil.copytree(src, staging)
    if dest.exists():
        old = staging.with_name(staging.name + ".old")
        dest.rename(old)
        staging.rename(dest)
        shutil.rmtree(old)
    else:
        staging.rename(dest)
