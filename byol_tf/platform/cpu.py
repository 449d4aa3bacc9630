"""Which CPU kernels TensorFlow runs here: oneDNN on by default, the CPU's vector ISA, the record.

TensorFlow 2.21 turns its oneDNN kernels on by default only on x86 CPUs with AVX-512 VNNI or
BF16, AVX-VNNI or AMX; on others (AVX2 laptops and VMs, AMD Zen 2 and 3) it runs its Eigen kernels,
about half as fast for our step, and its CPU allocator then keeps no statistics. byol-tf asks
for oneDNN (`TF_ENABLE_ONEDNN_OPTS=1`) unless the user set the variable: the value must be in
the environment before TensorFlow is imported, so `byol_tf/__init__.py` calls
`default_onednn_on` before importing anything that imports TensorFlow. A value the user set,
including one TensorFlow does not know, is passed through unchanged; TensorFlow 2.21 then logs
that it is neither '0', 'false', '1' nor 'true' and uses its own default for the CPU.

`machine()` is what every summary and benchmark report records about where it ran.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys

ONEDNN_VAR = "TF_ENABLE_ONEDNN_OPTS"
# oneDNN's own cap on the instruction set its kernels use (e.g. AVX2): recorded, never set.
ISA_VAR = "ONEDNN_MAX_CPU_ISA"
# Set beside ONEDNN_VAR when byol-tf chose the value, so child processes (the experiment
# runner, the local launcher) record it as byol-tf's default and not as the user's choice.
DEFAULT_MARKER = "BYOL_TF_ONEDNN_DEFAULT"

# Most capable first: the first whose /proc/cpuinfo flags are all present names the CPU.
_ISA_LEVELS = (
    ("amx", ("amx_tile",)),
    ("avx512_bf16", ("avx512_bf16",)),
    ("avx512_vnni", ("avx512_vnni",)),
    ("avx512", ("avx512f",)),
    ("avx_vnni", ("avx_vnni",)),  # AVX2 with VNNI (Alder Lake and later): oneDNN's default too
    ("avx2", ("avx2",)),
    ("avx", ("avx",)),
    ("sse4.2", ("sse4_2",)),
)

_warned = False


def default_onednn_on(environ=os.environ, tensorflow_imported: bool | None = None) -> str:
    """Sets TF_ENABLE_ONEDNN_OPTS=1 unless it is set or TensorFlow is already imported.

    Returns what happened: "set" (byol-tf set it now or in a parent process), "user" (the user
    set it), or "too late" (TensorFlow was imported first: its choice stands).
    """
    if tensorflow_imported is None:
        tensorflow_imported = "tensorflow" in sys.modules
    if environ.get(DEFAULT_MARKER) == "1" and environ.get(ONEDNN_VAR) == "1":
        return "set"
    if ONEDNN_VAR in environ:
        return "user"
    if tensorflow_imported:
        return "too late"
    environ[ONEDNN_VAR] = "1"
    environ[DEFAULT_MARKER] = "1"
    return "set"


def warn_if_onednn_off(how: str) -> bool:
    """Warns once when TensorFlow was imported before byol-tf with oneDNN off by its default.

    Returns True if it warned (now or before).
    """
    global _warned
    if how != "too late" or onednn_enabled() is not False:
        return _warned
    if not _warned:
        from absl import logging

        logging.warning(
            "TensorFlow was imported before byol_tf with its oneDNN kernels off (its default on "
            "CPUs without AVX-512 VNNI/BF16, AVX-VNNI or AMX): training runs about half as fast. Set "
            "%s=1 before importing TensorFlow, or import byol_tf first.",
            ONEDNN_VAR,
        )
        _warned = True
    return True


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs oneDNN kernels (None if it cannot say)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def vector_isa(flags: set[str] | None = None) -> str:
    """The CPU's most capable vector instruction set, from /proc/cpuinfo ("unknown" elsewhere)."""
    if flags is None:
        flags = _cpuinfo_flags()
    for name, needed in _ISA_LEVELS:
        if all(flag in flags for flag in needed):
            return name
    return "unknown"


# ONEDNN_MAX_CPU_ISA values (oneDNN 3.7) and the level of _ISA_LEVELS they allow at most.
_ISA_CAPS = {
    "SSE41": "sse4.2",
    "AVX": "avx",
    "AVX2": "avx2",
    "AVX2_VNNI": "avx_vnni",
    "AVX2_VNNI_2": "avx_vnni",
    "AVX512_CORE": "avx512",
    "AVX512_CORE_VNNI": "avx512_vnni",
    "AVX512_CORE_BF16": "avx512_bf16",
}
# Levels whose oneDNN f32 kernels block channels by 8 (AVX-512's block by 16).
AVX2_CLASS = ("avx_vnni", "avx2", "avx")


def onednn_isa(environ=os.environ, flags: set[str] | None = None) -> str:
    """The vector ISA oneDNN's kernels use: the CPU's, lowered by ONEDNN_MAX_CPU_ISA if set."""
    own = vector_isa(flags)
    cap = _ISA_CAPS.get(environ.get(ISA_VAR, "").strip().upper())
    order = [name for name, _ in _ISA_LEVELS]
    if cap is None or own not in order:
        return own
    return order[max(order.index(own), order.index(cap))]


def onednn_faulty_convolutions(model, isa: str, onednn_on: bool | None) -> list[str]:
    """Paths of `model`'s built Conv2D layers whose kernel gradient oneDNN gets wrong here.

    oneDNN 3.7 (TensorFlow 2.21) computes the kernel gradient of a 1x1 convolution with stride
    2 and fewer than 8 input channels wrongly with its AVX2 kernels (`jit_1x1:avx2`,
    backward_weights): errors as large as the values, different from call to call, and at
    times a corrupted heap. Measured under ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU against
    NumPy (3 and 4 input channels wrong; 8, 12, 16 and more right; stride 1 right); the AVX-512
    kernels and TF's Eigen kernels are right. A ResNet has such a layer in its projection
    shortcuts only below base width 8.
    """
    if not onednn_on or isa not in AVX2_CLASS:
        return []
    import keras  # here: this module is imported before TensorFlow (default_onednn_on)

    found = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        kernel = getattr(layer, "kernel", None)
        if not isinstance(layer, keras.layers.Conv2D) or kernel is None:
            continue
        if tuple(layer.kernel_size) == (1, 1) and max(layer.strides) > 1 and kernel.shape[-2] < 8:
            found.append(kernel.path.rsplit("/", 1)[0])
    return found


def _cpuinfo_field(name: str) -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _cpuinfo_flags() -> set[str]:
    return set(_cpuinfo_field("flags").split())


def onednn_setting(environ=os.environ) -> dict:
    """The oneDNN variables as the run saw them, and who chose TF_ENABLE_ONEDNN_OPTS."""
    value = environ.get(ONEDNN_VAR)
    if value is None:
        chosen_by = None
    elif environ.get(DEFAULT_MARKER) == "1" and value == "1":
        chosen_by = "byol-tf"
    else:
        chosen_by = "user"
    return {
        ONEDNN_VAR: value,
        "onednn_chosen_by": chosen_by,
        ISA_VAR: environ.get(ISA_VAR),
    }


def machine() -> dict:
    """What a measurement ran on: CPU, its vector ISA, oneDNN, versions, cores and date."""
    import keras
    import tensorflow as tf

    return {
        "cpu": _cpuinfo_field("model name") or platform.processor(),
        "cpu_vector_isa": vector_isa(),
        "cpu_cores": os.cpu_count(),
        "onednn_enabled": onednn_enabled(),
        **onednn_setting(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "date": datetime.date.today().isoformat(),
    }
