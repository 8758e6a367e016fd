"""Plain-C kernels, compiled once on first use and loaded with ctypes; None (the torch kernels run) without a compiler.

The DNC's memory step costs about 150 small tensor operations per time step in torch, forward and backward;
on a CPU their per-operation overhead, not the arithmetic, sets the speed. ``dnc_native.c`` runs the same
equations as loops over one batch row at a time (``dnc_access.py`` lists them), in float32 and float64,
and the LSTM controller's pointwise step between the sequence's matmuls (``dnc_sequence.py``); float32 e^x is
vectorizable straight-line code (``exp_f32``, about 1 ulp), and the stored per-step states are asked to live on
huge pages (:func:`advise_huge`).
``rims_native.c`` does the same for the parts of a RIMs step between its matmuls (``rims_sequence.py``) and
draws its dropout noise. Both are compiled into one library.

The library is built from the C sources next to this module with the system C compiler (``$CC``, else
``cc``/``gcc``; plain C, no torch headers: about two seconds) into a cache folder (``$MNEMONET_CACHE_DIR``,
else ``$XDG_CACHE_HOME/mnemonet`` or ``~/.cache/mnemonet``), named by a hash of the sources, the flags, the
compiler and the CPU's features (``-march=native``), and written atomically (a temporary file, then a
rename), so concurrent first uses are safe and later processes load it at once. Without a working
compiler, or with ``MNEMONET_NATIVE=0`` in the environment, :func:`library` returns None and the torch
kernels run; :func:`unavailable_reason` says why.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

_ENV = "MNEMONET_NATIVE"
_DIR = Path(__file__).parent
_SOURCES = ("native_math.h", "dnc_native.c", "dnc_native_body.h", "rims_native.c", "rims_native_body.h")
_UNITS = ("dnc_native.c", "rims_native.c")  # compiled into one library
# reassociation lets sums vectorize (results agree to rounding, as torch's own kernels do); NaN and inf stay IEEE
_FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-std=c11", "-fno-math-errno", "-fno-signed-zeros")
_FLAGS += ("-fno-trapping-math", "-fassociative-math")
_P, _L = ctypes.c_void_p, ctypes.c_long
_R = ctypes.c_double  # stands for a REAL scalar argument: c_float or c_double per precision (_build)
#: argument types of the exported functions (dnc_native_body.h), per name without the precision suffix
_SIGNATURES = {
    "dnc_saved_size": ([_L] * 3, _L),
    "dnc_work_size": ([_L] * 3, _L),
    "dnc_access_forward": ([_L] * 4 + [_P, _L] + [_P] * 12 + [_P, _L, _P, _P, _P, _P], None),
    "dnc_argsort": ([_P, _P, _P, _P, _L], None),
    "dnc_access_backward": ([_L] * 4 + [_P, _L] + [_P] * 12 + [_P, _L] + [_P] * 6 + [_P, _L, _P], None),
    "dnc_lstm_forward": ([_L] * 2 + [_P] * 5 + [_L, _P, _P], None),
    "dnc_lstm_backward": ([_L] * 2 + [_P] * 4 + [_L, _P, _P], None),
    # rims_native_body.h: (dims...) then (pointer, module stride) pairs as there
    "rims_step_forward": ([_L] * 7 + [_P, _P, _P, _L, _P, _P, _L] + [_P] * 9 + [_L, _P, _P, _L], None),
    "rims_comm_forward": ([_L] * 5 + [_R, _P, _P, _P], None),
    "rims_out_forward": ([_L] * 3 + [_P] * 4 + [_L, _P, _L, _P, _P, _L], None),
    "rims_out_backward": ([_L] * 3 + [_P, _L] + [_P] * 6, None),
    "rims_comm_backward": ([_L] * 5 + [_R] + [_P] * 4 + [_L], None),
    "rims_step_backward": ([_L] * 5 + [_P] * 10 + [_L, _P, _P, _P, _P, _L, _P], None),
    "rims_dropout_noise": ([_L] * 5 + [_R, _P], None),
}
_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}

_library: ctypes.CDLL | None = None
_reason: str | None = None
_tried = False


def _cache_dir() -> Path:
    if os.environ.get("MNEMONET_CACHE_DIR"):
        return Path(os.environ["MNEMONET_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "mnemonet"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_signature() -> str:
    """What ``-march=native`` compiled for: the machine and, on Linux, the CPU's feature flags (so a cache
    folder shared between different CPUs never loads a library with instructions this one lacks)."""
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()} {flags.strip()}"


def _build() -> ctypes.CDLL:
    """Compile (unless cached) and load the library; raises OSError/RuntimeError on failure."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found ($CC, cc, gcc, clang)")
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((_DIR / name).read_bytes())
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    digest.update(" ".join((cc, version, *_FLAGS, _cpu_signature())).encode())
    folder = _cache_dir()
    target = folder / f"dnc_native-{digest.hexdigest()[:20]}.so"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=folder)
        os.close(fd)
        try:
            cmd = [cc, *_FLAGS, "-o", tmp, *(str(_DIR / unit) for unit in _UNITS), "-lm"]
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
            if out.returncode != 0:
                raise RuntimeError(f"{cc} failed: {out.stderr.strip()[-500:]}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    lib = ctypes.CDLL(str(target))
    lib.dnc_advise_huge.argtypes, lib.dnc_advise_huge.restype = [_P, _L], ctypes.c_int
    for dtype, suffix in _SUFFIX.items():
        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
        for name, (args, result) in _SIGNATURES.items():
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes, fn.restype = [real if a is _R else a for a in args], result
    return lib


def library() -> ctypes.CDLL | None:
    """The compiled library (built on the first call), or None where it cannot be built or is switched off."""
    global _library, _reason, _tried
    if not _tried:
        _tried = True
        if os.environ.get(_ENV, "1").strip().lower() in ("0", "false", "off", "no"):
            _reason = f"switched off by {_ENV}=0"
        else:
            try:
                _library = _build()
            except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as err:
                _reason = f"{type(err).__name__}: {err}"
    return _library


def unavailable_reason() -> str | None:
    """Why :func:`library` is None (None while it loads, or before its first call)."""
    return _reason


def advise_huge(x: torch.Tensor) -> None:
    """Ask the kernel to back ``x``'s storage with huge pages (see ``dnc_advise_huge``); a no-op without the library."""
    lib = library()
    if lib is not None and x.device.type == "cpu":
        lib.dnc_advise_huge(x.data_ptr(), x.untyped_storage().nbytes())


def functions(dtype: torch.dtype) -> dict[str, ctypes._CFuncPtr] | None:  # type: ignore[name-defined]
    """The library's functions for ``dtype`` (float32 or float64) by name without suffix, or None."""
    lib = library()
    suffix = _SUFFIX.get(dtype)
    if lib is None or suffix is None:
        return None
    return {name: getattr(lib, f"{name}_{suffix}") for name in _SIGNATURES}
