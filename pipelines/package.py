"""Stage package: save the exported bundle into the BentoML model store for `bentoml serve` / `bentoml build`."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.params import load_params
from training.jsonio import write_json

log = logging.getLogger("textclf.package")
BUNDLE_FILES = ("model.onnx", "tokenizer.json", "meta.json")


def main() -> None:
    import bentoml

    p = parser(__doc__)
    p.add_argument("--bundle", default="artifacts/bundle")
    p.add_argument("--out", default="artifacts/bento_model.json")
    args = p.parse_args()
    params = load_params(args.params).package
    bundle = Path(args.bundle)
    missing = [f for f in BUNDLE_FILES if not (bundle / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{bundle} lacks {', '.join(missing)}: run the export stage first")
    meta = json.loads((bundle / "meta.json").read_text())
    labels = {"model": meta["model_name"], "registry_version": meta["version"],
              "data_hash": str(meta.get("data_hash"))}
    with bentoml.models.create(params.bento_model_name, labels=labels, metadata={
        "labels": meta["labels"], "max_len": meta["max_len"], "metrics": meta.get("metrics", {}),
    }) as model:
        for name in BUNDLE_FILES:
            shutil.copy(bundle / name, Path(model.path) / name)
    write_json(args.out, {"tag": str(model.tag), "labels": labels})
    log.info("package: saved %s to the BentoML model store", model.tag)


if __name__ == "__main__":
    run(main)
