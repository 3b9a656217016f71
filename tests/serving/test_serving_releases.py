"""The release channel and a worker's follower, in process: what the REST tests rely on, case by case."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from serving.releases import KEEP, POINTER, ReleaseError, is_channel, publish, read_release
from serving.rollout import Follower


def versioned(bundle: Path, tmp: Path, version: str) -> Path:
    """The same model under another version (another release folder)."""
    out = tmp / f"bundle-{version}"
    shutil.copytree(bundle, out)
    meta = json.loads((out / "meta.json").read_text())
    (out / "meta.json").write_text(json.dumps({**meta, "version": version}))
    return out


def test_a_release_is_readable_by_every_user_whatever_the_publishers_umask(bundle: Path, tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        release = publish(bundle, tmp_path / "channel", "first")
    finally:
        os.umask(old)
    for path in [tmp_path / "channel", release.bundle, tmp_path / "channel" / POINTER,
                 *release.bundle.iterdir()]:
        assert path.stat().st_mode & stat.S_IROTH, path
    assert read_release(tmp_path / "channel") == release


def test_publishing_again_reuses_the_folder_and_old_releases_are_pruned(bundle: Path, tmp_path: Path) -> None:
    channel = tmp_path / "channel"
    first = publish(bundle, channel, "first")
    assert publish(bundle, channel, "again").key == first.key
    keys = [publish(versioned(bundle, tmp_path, str(v)), channel, "next").key for v in range(2, 2 + KEEP + 2)]
    (channel / ".v9-stale.tmp").mkdir()  # a crashed publisher's staging folder, too fresh to prune yet
    publish(versioned(bundle, tmp_path, "99"), channel, "last")
    folders = {p.name for p in channel.iterdir() if p.is_dir() and not p.name.startswith(".")}
    assert len(folders) == KEEP and keys[-1] in folders and first.key not in folders
    assert (channel / ".v9-stale.tmp").is_dir()


def test_a_path_with_no_pointer_and_no_bundle_is_a_channel_waiting_to_be_published(bundle, tmp_path: Path) -> None:
    assert is_channel(tmp_path / "nothing-yet") and not is_channel(bundle)
    with pytest.raises(ReleaseError, match=r"has no champion\.json"):
        read_release(tmp_path / "nothing-yet")


def test_the_follower_waits_for_an_incomplete_release_refuses_a_broken_one_and_swaps(bundle, tmp_path) -> None:
    channel = tmp_path / "channel"
    publish(bundle, channel, "first")
    outcomes: list[str] = []
    follower = Follower(channel, interval_s=0, threads=1, on_reload=outcomes.append)
    follower.start()
    first = follower.current

    # The pointer is visible before the folder (a shared filesystem's caching): wait, do not refuse.
    second = publish(versioned(bundle, tmp_path, "2"), channel, "second")
    hidden = second.bundle.with_name("hidden")
    second.bundle.rename(hidden)
    follower.check()
    assert follower.current is first and "not complete yet" in follower.refused["reason"] and outcomes == []
    hidden.rename(second.bundle)
    follower.check()
    assert follower.current.version == "2" and follower.refused is None and outcomes == ["swapped"]

    broken = versioned(bundle, tmp_path, "3")
    (broken / "model.onnx").write_bytes(b"not an onnx model")
    publish(broken, channel, "broken")
    follower.check()
    follower.check()  # refused once, not again and again
    assert follower.current.version == "2" and follower.refused["version"] == "3"
    assert outcomes == ["swapped", "refused"]
    described = follower.describe()
    assert described["release"] == second.key and described["refused"]["version"] == "3"
