"""Which torch build suits this machine: CPU, or CUDA where an NVIDIA GPU can run it.

The installers put the small CPU build in place so the app works at once; the first run (and
the tray's "GPU acceleration…" item) then offers the CUDA build this module chooses. The
choice follows PyTorch's wheels, not the driver alone: a V100 given a build by its driver
version got "no kernel image", so the compute capability decides the CUDA line and the driver
only whether that line can run.

- CUDA 13.0 and 12.8 wheels carry kernels for compute capability 7.5 (Turing) and newer only.
- CUDA 12.6 wheels cover Maxwell to Volta (5.0 – 7.0) but end after torch 2.14.
- Every CUDA 12 build runs on a driver of 525.60 (Linux) / 528.33 (Windows) or newer (minor
  version compatibility); CUDA 13 needs 580.65 / 580.88.

No torch import here: the tray decides before a runtime with CUDA exists.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

TORCH_VERSION = "2.13.0"
NVIDIA_PCI_VENDOR = "0x10de"
PCI_DEVICES = Path("/sys/bus/pci/devices")
NVIDIA_SMI_QUERY = (
    "nvidia-smi",
    "--query-gpu=name,compute_cap,driver_version",
    "--format=csv,noheader",
)
_PYTORCH_INDEX = "https://download.pytorch.org/whl/"
_CUDA12_DRIVER = {"linux": (525, 60), "windows": (528, 33)}
_CUDA13_DRIVER = {"linux": (580, 65), "windows": (580, 88)}


@dataclass(frozen=True)
class Variant:
    """One torch build: what a runtime installs from which index."""

    name: str  # "cpu", "cu126", …: the lock's and the state file's word for it
    label: str  # for the user
    min_compute_capability: tuple[int, int] | None  # None: runs without a GPU
    max_compute_capability: tuple[int, int] | None
    min_driver: dict[str, tuple[int, int]]  # per system; empty for the CPU build
    download_bytes: dict[str, int]  # what the torch step downloads, per system (approximate)

    @property
    def index_url(self) -> str:
        return _PYTORCH_INDEX + self.name

    @property
    def torch_requirement(self) -> str:
        return f"torch=={TORCH_VERSION}+{self.name}"

    @property
    def uses_gpu(self) -> bool:
        return self.min_compute_capability is not None


_GB = 10**9
CPU = Variant("cpu", "CPU", None, None, {}, {"linux": 2 * _GB // 10, "windows": 2 * _GB // 10})
CUDA_12_6 = Variant(
    "cu126",
    "CUDA 12.6 (older NVIDIA GPUs)",
    (5, 0),
    (9, 0),
    _CUDA12_DRIVER,
    {"linux": 27 * _GB // 10, "windows": 24 * _GB // 10},
)
CUDA_12_8 = Variant(
    "cu128",
    "CUDA 12.8",
    (7, 5),
    None,
    _CUDA12_DRIVER,
    {"linux": 30 * _GB // 10, "windows": 25 * _GB // 10},
)
CUDA_13_0 = Variant(
    "cu130",
    "CUDA 13.0",
    (7, 5),
    None,
    _CUDA13_DRIVER,
    {"linux": 30 * _GB // 10, "windows": 25 * _GB // 10},
)
# Best first: the first variant every GPU and the driver can run is the one chosen.
VARIANTS: tuple[Variant, ...] = (CUDA_13_0, CUDA_12_8, CUDA_12_6, CPU)


def variant_named(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise ValueError(
        f"Unknown torch variant {name!r}: one of {', '.join(v.name for v in VARIANTS)}"
    )


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: tuple[int, int]
    driver_version: str

    @property
    def driver(self) -> tuple[int, int]:
        """(major, minor) of the driver version, e.g. (580, 95) of "580.95.05"."""
        parts = [int(part) for part in self.driver_version.split(".")[:2] if part.isdigit()]
        return (parts[0], parts[1] if len(parts) > 1 else 0) if parts else (0, 0)


@dataclass(frozen=True)
class Survey:
    """What this machine showed of NVIDIA GPUs."""

    gpus: tuple[Gpu, ...]
    nvidia_on_pci: bool  # an NVIDIA device is on the PCI bus, whether or not nvidia-smi ran
    smi_problem: str | None  # why nvidia-smi gave nothing, if it did not


@dataclass(frozen=True)
class Choice:
    variant: Variant
    reason: str  # one line for the user: why this build
    warning: str | None = None  # something the user can fix, e.g. a driver update


def parse_nvidia_smi(output: str) -> list[Gpu]:
    """The GPUs in `nvidia-smi --query-gpu=name,compute_cap,driver_version
    --format=csv,noheader` output; lines that do not parse are skipped (and logged)."""
    gpus = []
    for line in output.splitlines():
        if not line.strip():
            continue
        # The name may hold commas ("NVIDIA GeForce RTX 4070, Laptop"): the last two fields
        # are the numbers.
        name, _, rest = line.strip().rpartition(",")
        name, _, capability = name.rpartition(",")
        try:
            major, minor = (int(part) for part in capability.strip().split("."))
        except ValueError:
            log.warning("nvidia-smi line not understood: %r", line)
            continue
        gpus.append(Gpu(name.strip(), (major, minor), rest.strip()))
    return gpus


def nvidia_on_pci(devices: Path = PCI_DEVICES) -> bool:
    """True when a device on the PCI bus has NVIDIA's vendor id (Linux only)."""
    try:
        vendors = [path.read_text().strip().lower() for path in devices.glob("*/vendor")]
    except OSError:
        return False
    return NVIDIA_PCI_VENDOR in vendors


Runner = Callable[[Sequence[str]], str]


def _run_nvidia_smi(command: Sequence[str]) -> str:
    return subprocess.run(
        list(command), capture_output=True, text=True, timeout=20, check=True
    ).stdout


def survey(run: Runner = _run_nvidia_smi, pci_devices: Path = PCI_DEVICES) -> Survey:
    """Ask nvidia-smi; look at the PCI bus too, which tells a missing driver from no GPU."""
    problem = None
    gpus: list[Gpu] = []
    try:
        gpus = parse_nvidia_smi(run(NVIDIA_SMI_QUERY))
    except FileNotFoundError:
        problem = "nvidia-smi is not installed"
    except (OSError, subprocess.SubprocessError) as error:
        problem = f"nvidia-smi failed: {error}"
    return Survey(tuple(gpus), bool(gpus) or nvidia_on_pci(pci_devices), problem)


def _supports(variant: Variant, gpu: Gpu) -> bool:
    low, high = variant.min_compute_capability, variant.max_compute_capability
    return (low is None or gpu.compute_capability >= low) and (
        high is None or gpu.compute_capability <= high
    )


def _driver_text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]:02d}"


def choose_variant(found: Survey, system: str) -> Choice:
    """The best build that every GPU found and the installed driver can run."""
    if not found.gpus:
        if found.nvidia_on_pci:
            return Choice(
                CPU,
                "An NVIDIA GPU is present but its driver did not answer",
                f"Install NVIDIA's driver to use the GPU ({found.smi_problem or 'no GPU listed'})",
            )
        return Choice(CPU, "No NVIDIA GPU found")
    names = " + ".join(gpu.name for gpu in found.gpus)
    driver = min(gpu.driver for gpu in found.gpus)
    gpu_variants = [v for v in VARIANTS if v.uses_gpu]
    runnable = [v for v in gpu_variants if all(_supports(v, gpu) for gpu in found.gpus)]
    if not runnable:
        capability = min(gpu.compute_capability for gpu in found.gpus)
        return Choice(
            CPU, f"{names}: compute capability {capability[0]}.{capability[1]} is too old"
        )
    for variant in runnable:
        if driver >= variant.min_driver[system]:
            return Choice(variant, f"{names}, driver {_driver_text(driver)}")
    needed = runnable[-1].min_driver[system]
    return Choice(
        CPU,
        f"{names}: driver {_driver_text(driver)} is too old for {runnable[-1].label}",
        f"Update the NVIDIA driver to {_driver_text(needed)} or newer to use the GPU",
    )
