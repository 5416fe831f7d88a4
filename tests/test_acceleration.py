"""The torch build chosen for a machine, from simulated nvidia-smi outputs and PCI buses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from nanodictate.core.acceleration import (
    CPU,
    CUDA_12_6,
    CUDA_12_8,
    CUDA_13_0,
    NVIDIA_SMI_QUERY,
    Choice,
    parse_nvidia_smi,
    survey,
    variant_named,
)
from nanodictate.core.acceleration import choose_variant as choose


def _simulated_smi(output: str):  # type: ignore[no-untyped-def]
    def run(command: Sequence[str]) -> str:
        assert tuple(command) == NVIDIA_SMI_QUERY
        return output

    return run


def _no_smi(command: Sequence[str]) -> str:
    raise FileNotFoundError("nvidia-smi")


def _pci_bus(tmp_path: Path, *vendors: str) -> Path:
    for number, vendor in enumerate(vendors):
        device = tmp_path / "pci" / f"0000:0{number}:00.0"
        device.mkdir(parents=True, exist_ok=True)
        (device / "vendor").write_text(vendor + "\n")
    return tmp_path / "pci"


def _choice(tmp_path: Path, smi_output: str, system: str = "linux") -> Choice:
    return choose(survey(_simulated_smi(smi_output), _pci_bus(tmp_path, "0x10de")), system)


def test_simulated_machine_without_gpu_gets_cpu_without_warning(tmp_path: Path) -> None:
    found = survey(_no_smi, _pci_bus(tmp_path, "0x8086", "0x1022"))
    choice = choose(found, "linux")
    assert (choice.variant, choice.reason, choice.warning) == (CPU, "No NVIDIA GPU found", None)


def test_simulated_nvidia_card_without_driver_is_seen_on_the_pci_bus(tmp_path: Path) -> None:
    choice = choose(survey(_no_smi, _pci_bus(tmp_path, "0x8086", "0x10de")), "linux")
    assert choice.variant is CPU
    assert choice.warning is not None and "Install NVIDIA's driver" in choice.warning
    assert "nvidia-smi is not installed" in choice.warning


def test_simulated_pascal_gets_cuda_12_6(tmp_path: Path) -> None:
    choice = _choice(tmp_path, "NVIDIA GeForce GTX 1080, 6.1, 580.95.05\n")
    assert choice.variant is CUDA_12_6
    assert choice.reason == "NVIDIA GeForce GTX 1080, driver 580.95"


def test_simulated_volta_with_a_new_driver_is_not_given_a_turing_only_build(
    tmp_path: Path,
) -> None:
    """The V100 case: its driver allows CUDA 13.0, its compute capability (7.0) does not."""
    assert _choice(tmp_path, "Tesla V100-SXM2-16GB, 7.0, 580.95.05").variant is CUDA_12_6


def test_simulated_turing_with_an_old_driver_stays_on_cpu_and_says_why(tmp_path: Path) -> None:
    choice = _choice(tmp_path, "NVIDIA GeForce RTX 2060, 7.5, 470.256.02")
    assert choice.variant is CPU
    assert "driver 470.256 is too old" in choice.reason
    assert choice.warning == "Update the NVIDIA driver to 525.60 or newer to use the GPU"


def test_simulated_turing_with_a_cuda_12_driver_gets_cuda_12_8(tmp_path: Path) -> None:
    assert _choice(tmp_path, "NVIDIA GeForce RTX 2060, 7.5, 550.120").variant is CUDA_12_8


@pytest.mark.parametrize(("system", "driver"), [("linux", "580.95.05"), ("windows", "581.57")])
def test_simulated_ada_with_a_current_driver_gets_cuda_13(
    tmp_path: Path, system: str, driver: str
) -> None:
    choice = _choice(tmp_path, f"NVIDIA GeForce RTX 4070, 8.9, {driver}", system)
    assert (choice.variant, choice.warning) == (CUDA_13_0, None)


def test_simulated_windows_driver_minimum_differs_from_linux(tmp_path: Path) -> None:
    # 580.76 is enough for CUDA 13 on Linux (580.65), not on Windows (580.88).
    output = "NVIDIA GeForce RTX 4070, 8.9, 580.76"
    assert _choice(tmp_path, output, "linux").variant is CUDA_13_0
    assert _choice(tmp_path, output, "windows").variant is CUDA_12_8


def test_simulated_two_equal_gpus_get_cuda_13(tmp_path: Path) -> None:
    output = "NVIDIA GeForce RTX 3090, 8.6, 580.95.05\nNVIDIA GeForce RTX 3090, 8.6, 580.95.05\n"
    choice = _choice(tmp_path, output)
    assert choice.variant is CUDA_13_0
    assert choice.reason.startswith("NVIDIA GeForce RTX 3090 + NVIDIA GeForce RTX 3090")


def test_simulated_two_gpus_of_different_ages_get_the_build_both_can_run(tmp_path: Path) -> None:
    output = "NVIDIA GeForce RTX 4090, 8.9, 580.95.05\nNVIDIA GeForce GTX 1070, 6.1, 580.95.05"
    assert _choice(tmp_path, output).variant is CUDA_12_6


def test_simulated_kepler_is_too_old_for_any_cuda_build(tmp_path: Path) -> None:
    choice = _choice(tmp_path, "NVIDIA GeForce GTX 780, 3.5, 470.256.02")
    assert choice.variant is CPU
    assert "compute capability 3.5 is too old" in choice.reason


def test_simulated_smi_lines_with_commas_in_the_name_and_garbage() -> None:
    gpus = parse_nvidia_smi("NVIDIA RTX A2000, Laptop GPU, 8.6, 575.64\n[N/A], [N/A]\n\n")
    assert [(g.name, g.compute_capability, g.driver) for g in gpus] == [
        ("NVIDIA RTX A2000, Laptop GPU", (8, 6), (575, 64))
    ]


def test_variants_name_their_pytorch_index() -> None:
    assert variant_named("cu130").index_url == "https://download.pytorch.org/whl/cu130"
    assert CPU.torch_requirement.endswith("+cpu") and not CPU.uses_gpu
    with pytest.raises(ValueError, match="Unknown torch variant"):
        variant_named("rocm")
