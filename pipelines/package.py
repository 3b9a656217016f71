"""Stage package: the champion's bundle into the BentoML model store and the release channel.

`bentoml serve` / `bentoml build` can take the bundle from the model store (TEXTCLF_BENTO_MODEL), and every
running service that follows the release channel (`package.release_channel`, the default of `make serve`)
switches to it within its reload interval, without a restart.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from pipelines.cli import parser, run
from pipelines.params import PackageParams, load_params
from serving.contract import BUNDLE_FILES, read_meta, require_complete
from serving.releases import publish
from training.jsonio import write_json

log = logging.getLogger("textclf.package")


def deploy(bundle: Path, params: PackageParams, out: Path, reason: str) -> dict:
    """Save `bundle` to the BentoML store, publish it to the release channel, and record both in `out`."""
    import bentoml

    require_complete(bundle, "run the export stage first")
    meta = read_meta(bundle)
    labels = {"model": meta.model_name, "registry_version": meta.version, "data_hash": str(meta.data_hash)}
    with bentoml.models.create(params.bento_model_name, labels=labels, metadata={
        "labels": list(meta.labels), "max_len": meta.max_len, "metrics": meta.metrics,
    }) as model:
        for name in BUNDLE_FILES:
            shutil.copy(bundle / name, Path(model.path) / name)
    release = publish(bundle, Path(params.release_channel), reason)
    record = {"tag": str(model.tag), "labels": labels,
              "release": {"channel": params.release_channel, "bundle": release.key, "version": release.version}}
    write_json(out, record)
    log.info("package: saved %s to the BentoML model store; %s now points at v%s (%s)", model.tag,
             params.release_channel, release.version, release.key)
    return record


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--bundle", default="artifacts/bundle")
    p.add_argument("--out", default="artifacts/bento_model.json")
    args = p.parse_args()
    deploy(Path(args.bundle), load_params(args.params).package, Path(args.out), "the champion after dvc repro")


if __name__ == "__main__":
    run(main)
