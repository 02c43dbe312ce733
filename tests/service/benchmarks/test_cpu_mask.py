"""``--cpu avx2``: the bench's phase processes see an AVX2-only CPU, and a machine that cannot is refused by name."""

from __future__ import annotations

import json
import platform
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from anjian.service.benchmarks.cpu_mask import CpuMask, _cpu_flags, build_cpu_mask, masked_children

_FLAGS = _cpu_flags(Path("/proc/cpuinfo"))  # what the mask itself reads
needs_cpuid_faulting = pytest.mark.skipif(
    sys.platform != "linux"
    or platform.machine() != "x86_64"
    or "cpuid_fault" not in _FLAGS
    or "avx2" not in _FLAGS
    or not (shutil.which("cc") or shutil.which("gcc")),
    reason="masking CPUID needs Linux on an x86-64 CPU with CPUID faulting and AVX2, and a C compiler",
)

_SEEN = """
import ctypes, json, sys
import openvino as ov
from numpy._core._multiarray_umath import __cpu_features__ as numpy_sees
shim = ctypes.CDLL(sys.argv[1])
print(json.dumps({
    "avx512f": numpy_sees["AVX512F"], "avx2": numpy_sees["AVX2"],
    "avx_vnni": bool(shim.anjian_cpuid(7, 1, 0) >> 4 & 1),
    "amx_tile": bool(shim.anjian_cpuid(7, 0, 3) >> 24 & 1),
    "gfni": bool(shim.anjian_cpuid(7, 0, 2) >> 8 & 1),
    "openvino": ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
}))
"""


def _seen_by_a_child(mask: CpuMask | None, library: Path) -> dict[str, object]:
    with masked_children(mask):
        done = subprocess.run(
            [sys.executable, "-c", _SEEN, str(library)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    return dict(json.loads(done.stdout))


@needs_cpuid_faulting
@pytest.mark.parametrize("level", ["avx2", "avx2_vnni"])
def test_a_child_under_the_mask_sees_no_avx512_or_amx_and_openvino_no_bf16(
    level: str, tmp_path: Path
) -> None:
    mask = build_cpu_mask(level, tmp_path)
    assert mask is not None
    seen = _seen_by_a_child(mask, mask.library)
    assert seen["avx2"] is True
    assert seen["avx512f"] is False and seen["amx_tile"] is False
    # avx2_vnni keeps AVX-VNNI where the CPU has it (Alder Lake and later Core), avx2 never shows it
    assert seen["avx_vnni"] == (level == "avx2_vnni" and "avx_vnni" in _FLAGS)
    assert seen["gfni"] == (level == "avx2_vnni" and "gfni" in _FLAGS)  # absent from Haswell to Comet Lake
    assert "BF16" not in seen["openvino"]  # type: ignore[operator]
    assert "FP32" in seen["openvino"]  # type: ignore[operator]
    # outside the block the children see the CPU as it is again
    unmasked = _seen_by_a_child(None, mask.library)
    assert unmasked["avx512f"] == ("avx512f" in _FLAGS)


def _run_masked(mask: CpuMask, code: str, *options: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    with masked_children(mask):
        return subprocess.run(
            [sys.executable, *options, "-c", code],
            cwd=cwd,  # a core file, where the limits allow one, lands there
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@needs_cpuid_faulting
@pytest.mark.parametrize(
    "crash",
    ["import ctypes; ctypes.string_at(8)", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
    ids=["a-fault", "a-sent-signal"],
)
def test_a_real_segmentation_fault_still_ends_a_masked_child(crash: str, tmp_path: Path) -> None:
    mask = build_cpu_mask("avx2", tmp_path)
    assert mask is not None
    assert _run_masked(mask, crash, cwd=tmp_path).returncode == -signal.SIGSEGV
    # with Python's fault handler on (-X dev turns it on too) it still reports the crash, then ends
    reported = _run_masked(mask, crash, "-X", "faulthandler", cwd=tmp_path)
    assert reported.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in reported.stderr


@needs_cpuid_faulting
@pytest.mark.parametrize("options", [("-X", "faulthandler"), ("-X", "dev")], ids=["faulthandler", "dev-mode"])
def test_a_child_with_its_own_segv_handler_keeps_the_mask(options: tuple[str, ...], tmp_path: Path) -> None:
    """multiprocessing gives the phases the parent's -X options: a handler installed after the preload's."""
    mask = build_cpu_mask("avx2", tmp_path)
    assert mask is not None
    code = (
        "import ctypes, sys; from numpy._core._multiarray_umath import __cpu_features__ as f; "
        f"shim = ctypes.CDLL({str(mask.library)!r}); print(f['AVX512F'], shim.anjian_cpuid(7, 0, 1) >> 16 & 1)"
    )
    seen = _run_masked(mask, code, *options, cwd=tmp_path)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.split() == ["False", "0"]


@needs_cpuid_faulting
def test_a_thread_that_blocks_every_signal_still_gets_masked_answers(tmp_path: Path) -> None:
    """A blocked SIGSEGV from a fault makes the kernel kill the process: the mask keeps it unblocked."""
    mask = build_cpu_mask("avx2", tmp_path)
    assert mask is not None
    code = (
        "import ctypes, signal, threading; "
        f"shim = ctypes.CDLL({str(mask.library)!r}); seen = []\n"
        "def worker():\n"
        "    signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())\n"
        "    seen.append(shim.anjian_cpuid(7, 0, 1) >> 16 & 1)\n"
        "thread = threading.Thread(target=worker); thread.start(); thread.join(); print(seen)"
    )
    seen = _run_masked(mask, code, cwd=tmp_path)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "[0]"


def test_native_needs_no_mask_and_leaves_the_environment_alone(tmp_path: Path) -> None:
    assert build_cpu_mask("native", tmp_path) is None
    with masked_children(None):
        pass
    assert not list(tmp_path.iterdir())


def test_an_unknown_level_is_refused_with_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--cpu 'avx512': unknown; one of native, avx2, avx2_vnni"):
        build_cpu_mask("avx512", tmp_path)


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the CPU checks are made on Linux x86-64",
)
def test_a_cpu_that_cannot_fault_cpuid_is_refused_by_name(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    with pytest.raises(ValueError, match=r"cannot fault CPUID \(no 'cpuid_fault' flag in .*cpuinfo\)"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx cpuid_fault\n")
    with pytest.raises(ValueError, match=r"no AVX2 to keep"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=cpuinfo)
    with pytest.raises(ValueError, match=r"cannot fault CPUID"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=tmp_path / "missing")


def test_the_environment_is_restored_after_the_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.setenv("LD_PRELOAD", "/opt/other.so")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.check=3")
    monkeypatch.delenv("ANJIAN_CPU_LEVEL", raising=False)
    mask = CpuMask("avx2", tmp_path / "anjian_cpu_mask.so")
    with masked_children(mask):
        assert os.environ["LD_PRELOAD"] == f"{mask.library} /opt/other.so"
        assert os.environ["ANJIAN_CPU_LEVEL"] == "avx2"
        assert os.environ["GLIBC_TUNABLES"].startswith("glibc.malloc.check=3:glibc.cpu.hwcaps=-AVX512F,")
    assert os.environ["LD_PRELOAD"] == "/opt/other.so"
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.check=3"
    assert "ANJIAN_CPU_LEVEL" not in os.environ


def test_the_command_refuses_an_unknown_cpu_before_any_phase() -> None:
    from typer.testing import CliRunner

    from anjian.service.cli import app

    result = CliRunner().invoke(app, ["bench", "pipeline", "--cpu", "pentium", "--phase", "naive"])
    assert result.exit_code == 2
    assert "--cpu 'pentium': unknown; one of native, avx2, avx2_vnni" in result.output
    assert "phase 'naive'" not in result.output


def test_the_report_names_the_cpu_its_phases_ran_as() -> None:
    from anjian.service.benchmarks.pipeline import PipelineBenchReport

    masked = CpuMask("avx2", Path("/tmp/anjian_cpu_mask.so"))
    report = PipelineBenchReport(4, "m.onnx", "clip.mp4", 2.0, 20.0, [], cpu=masked.description)
    assert (
        report.render()
        .splitlines()[0]
        .endswith(
            ", CPU as avx2 (CPUID masked: AVX2 and FMA: no AVX-512, AMX, AVX-VNNI, GFNI or VAES "
            "(Intel Haswell to Comet Lake, AMD Zen 1-3))"
        )
    )
    native = PipelineBenchReport(4, "m.onnx", "clip.mp4", 2.0, 20.0, [])
    assert "CPU as" not in native.render()


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the CPU checks are made on Linux x86-64",
)
def test_a_missing_or_failing_compiler_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anjian.service.benchmarks import cpu_mask

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx avx2 cpuid_fault\n")
    monkeypatch.setattr(cpu_mask.shutil, "which", lambda _name: None)
    with pytest.raises(ValueError, match=r"needs a C compiler \(cc or gcc\)"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=cpuinfo)
    monkeypatch.setattr(cpu_mask, "_compiler", lambda: "false")  # runs, builds nothing, exits 1
    with pytest.raises(ValueError, match=r"the CPUID mask did not compile"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=cpuinfo)
    monkeypatch.setattr(cpu_mask, "_compiler", lambda: str(tmp_path / "no-such-cc"))
    with pytest.raises(ValueError, match=r"could not build the CPUID mask"):
        build_cpu_mask("avx2", tmp_path, cpuinfo=cpuinfo)


@needs_cpuid_faulting
def test_a_probe_that_does_not_answer_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from anjian.service.benchmarks import cpu_mask

    monkeypatch.setattr(cpu_mask, "_PROBE", "print('a warning on stdout')")
    with pytest.raises(ValueError, match=r"the probe under the CPUID mask said 'a warning on stdout'"):
        build_cpu_mask("avx2", tmp_path)
    monkeypatch.setattr(cpu_mask, "_PROBE", "import sys; sys.exit('no numpy here')")
    with pytest.raises(ValueError, match=r"a process under the CPUID mask failed \(1\): no numpy here"):
        build_cpu_mask("avx2", tmp_path)
