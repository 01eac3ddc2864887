"""Where the engine computes: CUDA when present, else the CPU; decided once.

Mixed precision: fp16/bf16 autocast on CUDA, bf16 autocast on CPUs with native
bf16 support (AVX512-BF16 / AMX), where it roughly doubles encoder speed.
"""
from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    amp_dtype: torch.dtype | None  # None: run in fp32
    threads: int

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        amp = str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32"
        name = torch.cuda.get_device_name(self.device) if self.is_cuda else "cpu"
        return f"{name} ({amp}, {self.threads} threads)"


def _cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


@functools.cache
def get_device(preference: str | None = None) -> DeviceInfo:
    """Choose the device once per process. ``preference``: auto | cpu | cuda."""
    pref = (preference or os.environ.get("AIGC_DEVICE") or "auto").lower()
    if pref not in {"auto", "cpu", "cuda"}:
        raise ValueError(f"AIGC_DEVICE must be auto, cpu or cuda, not {pref!r}")
    if pref == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("AIGC_DEVICE=cuda but no CUDA device is visible")
    use_cuda = pref == "cuda" or (pref == "auto" and torch.cuda.is_available())
    # Half the cores by default: a host runs web and worker processes side by
    # side, and oversubscribed torch threads slow small models many-fold.
    threads = int(os.environ.get("AIGC_THREADS", "0")) or max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(threads)
    amp_off = os.environ.get("AIGC_AMP", "1").lower() in {"0", "false", "off"}
    if use_cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return DeviceInfo(torch.device("cuda"), None if amp_off else dtype, threads)
    return DeviceInfo(torch.device("cpu"), None if amp_off or not _cpu_has_bf16() else torch.bfloat16, threads)


def autocast(info: DeviceInfo | None = None, enabled: bool = True):
    """Autocast context for the chosen device, or a no-op when AMP is off."""
    info = info or get_device()
    if not enabled or info.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=info.device.type, dtype=info.amp_dtype)
