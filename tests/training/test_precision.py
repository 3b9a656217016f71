import pytest

from training import precision


@pytest.mark.parametrize(("flags", "native"), [("fpu avx2 avx512f avx512_bf16 avx512_vnni", True),
                                               ("fpu avx2 amx_bf16 amx_tile", True),
                                               ("fpu avx2 avx512f avx512bw", False)])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, flags, native):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert precision.cpu_has_native_bf16(info) is native
    assert precision.cpu_has_native_bf16(tmp_path / "missing") is False


def test_auto_picks_bf16_only_on_native_hardware_and_a_named_precision_is_kept(monkeypatch):
    monkeypatch.setattr(precision.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16-mixed"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", "auto") == "32-true"
    assert precision.resolve_precision("16-mixed", "cpu") == "16-mixed"
