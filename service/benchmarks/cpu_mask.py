"""Run a bench's phases as on an older x86 CPU: CPUID masked, so every library picks that CPU's kernels.

Most plants' edge boxes compute with AVX2 only (no AVX-512, no AMX, no native bf16). A newer
development machine can be held to AVX2 for oneDNN alone (``ONEDNN_MAX_CPU_ISA=AVX2``, which
OpenVINO's CPU plugin honours), but ONNX Runtime (the naive loop's runtime), numpy, OpenCV and
FFmpeg read the processor's flags themselves and keep AVX-512: measured on a 2-core AMX Xeon, the
naive loop ran 78.6 analysed frames/s under that cap and 56.7 as on an AVX2 CPU, so the ratio
against it read 1.43x where an AVX2 box gives 1.74x.

The mask is ``cpu_mask.c``, built here with the system's C compiler and preloaded into each phase's
process: it turns on the kernel's CPUID faulting (``arch_prctl(ARCH_SET_CPUID)``; Intel since Ivy
Bridge, the ``cpuid_fault`` flag of ``/proc/cpuinfo``) and answers every CPUID from the real one
with the newer extensions cleared. What it does not change is the microarchitecture: caches,
clocks and execution ports stay this CPU's, so absolute frames/s are this machine's cores running
AVX2 code; ratios within one run are what carry over.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["CPU_LEVELS", "CpuMask", "build_cpu_mask", "masked_children"]

CPU_LEVELS: dict[str, str] = {
    "native": "the CPU as it is",
    "avx2": "AVX2 and FMA: no AVX-512, AMX, AVX-VNNI, GFNI or VAES (Intel Haswell to Comet Lake, AMD Zen 1-3)",
    "avx2_vnni": "AVX2 with AVX-VNNI int8 dot products, no AVX-512 or AMX (Intel Alder Lake and later Core)",
}
"""The CPUs a bench can run as (``--cpu``), with what each keeps."""

_LEVEL_VARIABLE = "ANJIAN_CPU_LEVEL"
_GLIBC_WITHOUT_AVX512 = "glibc.cpu.hwcaps=" + ",".join(
    f"-AVX512{name}" for name in ("F", "CD", "BW", "DQ", "ER", "PF", "VL")
)
"""glibc picks its string functions and library folders before any preload runs: its own switch holds them back."""
_PROBE = """
import ctypes, json, sys
try:
    from numpy._core._multiarray_umath import __cpu_features__ as features
except ImportError:
    from numpy.core._multiarray_umath import __cpu_features__ as features
shim = ctypes.CDLL(sys.argv[1])
print(json.dumps({"armed": shim.anjian_cpu_mask_armed(), "numpy": features}))
"""


@dataclass(frozen=True, slots=True)
class CpuMask:
    """A built CPUID mask: preload ``library`` with ``ANJIAN_CPU_LEVEL=level`` to run as that CPU.

    Attributes:
        level: A key of ``CPU_LEVELS`` other than ``native``.
        library: The shared library built from ``cpu_mask.c``.
    """

    level: str
    library: Path

    @property
    def description(self) -> str:
        """How a report names the CPU the phases saw."""
        return f"{self.level} (CPUID masked: {CPU_LEVELS[self.level]})"


def _cpu_flags(cpuinfo: Path) -> set[str]:
    """The first processor's ``flags`` in ``cpuinfo`` (``/proc/cpuinfo``); empty when unreadable."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return set()


def _compiler() -> str:
    """The C compiler to build the mask with.

    Raises:
        ValueError: Neither ``cc`` nor ``gcc`` is on the PATH.
    """
    found = shutil.which("cc") or shutil.which("gcc")
    if found is None:
        raise ValueError("--cpu builds a small C library to mask CPUID and needs a C compiler (cc or gcc)")
    return found


def build_cpu_mask(level: str, work_dir: Path, *, cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuMask | None:
    """Build the CPUID mask for ``level`` under ``work_dir`` and check that a child process sees it.

    Args:
        level: A key of ``CPU_LEVELS``; ``native`` needs no mask.
        work_dir: Where the library is written.
        cpuinfo: The kernel's CPU description (a test gives another).

    Returns:
        The mask, or ``None`` for ``native``.

    Raises:
        ValueError: The level is unknown; this is not Linux on x86-64; the CPU or kernel cannot fault
            CPUID (no ``cpuid_fault`` flag: a virtual machine whose host hides it, most AMD CPUs); no C
            compiler; or the probe child does not see the masked CPU.
    """
    if level not in CPU_LEVELS:
        raise ValueError(f"--cpu {level!r}: unknown; one of {', '.join(CPU_LEVELS)}")
    if level == "native":
        return None
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ValueError(
            f"--cpu {level} masks x86 CPUID through Linux; this is {sys.platform} on {platform.machine()}"
        )
    flags = _cpu_flags(cpuinfo)
    if "cpuid_fault" not in flags:
        raise ValueError(
            f"--cpu {level}: this CPU or kernel cannot fault CPUID (no 'cpuid_fault' flag in {cpuinfo}); "
            "run the bench on such a CPU itself, or cap OpenVINO alone with ONEDNN_MAX_CPU_ISA"
        )
    if "avx2" not in flags:
        raise ValueError(f"--cpu {level}: this CPU has no AVX2 to keep ({cpuinfo} lists no 'avx2' flag)")
    library = work_dir / "anjian_cpu_mask.so"
    if any(mark in str(library) for mark in (" ", ":", "\t", "\n")):
        raise ValueError(
            f"--cpu {level}: LD_PRELOAD cannot name {library} (a space or colon in the path): set TMPDIR"
        )
    source = resources.files("anjian.service.benchmarks").joinpath("cpu_mask.c")
    compiler = _compiler()
    with resources.as_file(source) as source_path:
        built = _run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source_path), "-ldl"],
            failure=f"--cpu {level}: {compiler} could not build the CPUID mask",
        )
    if built.returncode != 0:
        raise ValueError(f"--cpu {level}: the CPUID mask did not compile: {built.stderr.strip()[-400:]}")
    mask = CpuMask(level, library)
    _check_probe(mask)
    return mask


def _run(command: list[str], *, failure: str) -> subprocess.CompletedProcess[str]:
    """Run ``command`` for its output (two minutes at most).

    Raises:
        ValueError: ``failure`` and why: the program is missing or not runnable, or it hung.
    """
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ValueError(f"{failure}: {exc}") from None


def _check_probe(mask: CpuMask) -> None:
    """Run a Python child under ``mask`` and refuse a mask that it does not see.

    Raises:
        ValueError: The child failed, was not masked, or numpy in it still sees AVX-512.
    """
    with masked_children(mask):
        probe = _run(
            [sys.executable, "-c", _PROBE, str(mask.library)],
            failure=f"--cpu {mask.level}: a process under the CPUID mask did not run",
        )
    if probe.returncode != 0:
        raise ValueError(
            f"--cpu {mask.level}: a process under the CPUID mask failed ({probe.returncode}): "
            f"{probe.stderr.strip()[-400:]}"
        )
    try:  # the last line: a library may print before it
        seen = json.loads(probe.stdout.strip().splitlines()[-1])
        numpy_sees, is_armed = dict(seen["numpy"]), bool(seen["armed"])
    except (ValueError, IndexError, KeyError, TypeError):
        raise ValueError(
            f"--cpu {mask.level}: the probe under the CPUID mask said {probe.stdout.strip()[-200:]!r}"
        ) from None
    if not is_armed or numpy_sees.get("AVX512F") or not numpy_sees.get("AVX2"):
        raise ValueError(
            f"--cpu {mask.level}: the CPUID mask did not take in a child process (armed: {is_armed}, "
            f"numpy there sees AVX2 {numpy_sees.get('AVX2')}, AVX512F {numpy_sees.get('AVX512F')})"
        )


@contextmanager
def masked_children(mask: CpuMask | None) -> Iterator[None]:
    """Within the block, processes started from this one (spawned or exec'ed) run as ``mask``'s CPU.

    This process itself is not masked (the preload acts when a program starts). glibc's tunables
    hold its own AVX-512 string functions back in the children too.
    """
    if mask is None:
        yield
        return
    names = ("LD_PRELOAD", _LEVEL_VARIABLE, "GLIBC_TUNABLES")
    saved = {name: os.environ.get(name) for name in names}
    preloads = [str(mask.library), *os.environ.get("LD_PRELOAD", "").split()]
    os.environ["LD_PRELOAD"] = " ".join(preloads)
    os.environ[_LEVEL_VARIABLE] = mask.level
    os.environ["GLIBC_TUNABLES"] = ":".join(filter(None, (saved["GLIBC_TUNABLES"], _GLIBC_WITHOUT_AVX512)))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
