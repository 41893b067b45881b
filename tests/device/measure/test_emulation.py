"""`emulated` in `info`: the decision on /proc contents recorded from real systems, and on this host."""
from __future__ import annotations

from device.measure.sysinfo import detect_emulation

# Recorded under qemu-aarch64 10.0 (user mode, binfmt) on an x86_64 host: qemu fakes cpuinfo.
QEMU_USER_CPUINFO = """processor\t: 0
model name\t: ARMv8 Processor rev 0 (v8l)
BogoMIPS\t: 100.00
Features\t: fp asimd aes pmull sha1 sha2 crc32 atomics
CPU implementer\t: 0x00
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0x051
CPU revision\t: 0
"""
PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model name\t: AMD EPYC
flags\t\t: fpu vme de pse tsc msr sse sse2
"""


def _reader(files: dict):
    return lambda path: files.get(path)


def test_qemu_user_on_x86_kernel_is_emulated():
    files = {"/proc/sys/kernel/arch": "x86_64", "/proc/cpuinfo": QEMU_USER_CPUINFO}
    got = detect_emulation(_reader(files), "aarch64", {})
    assert got["emulated"] is True and got["emulator"] == "qemu-user"
    assert any("x86_64 kernel" in r for r in got["reasons"])


def test_old_kernel_without_arch_sysctl_still_caught():
    # older qemu passed the host's cpuinfo through; newer fakes it with implementer 0x00
    for cpuinfo in (X86_CPUINFO, QEMU_USER_CPUINFO):
        got = detect_emulation(_reader({"/proc/cpuinfo": cpuinfo}), "aarch64", {})
        assert got["emulated"] is True, cpuinfo


def test_real_pi_and_real_x86_are_not_emulated():
    pi = {"/proc/sys/kernel/arch": "aarch64", "/proc/cpuinfo": PI4_CPUINFO}
    assert detect_emulation(_reader(pi), "aarch64", {})["emulated"] is False
    pi32 = {"/proc/sys/kernel/arch": "aarch64", "/proc/cpuinfo": PI4_CPUINFO}  # 32-bit OS, 64-bit kernel
    assert detect_emulation(_reader(pi32), "armv7l", {})["emulated"] is False
    x86 = {"/proc/sys/kernel/arch": "x86_64", "/proc/cpuinfo": X86_CPUINFO}
    assert detect_emulation(_reader(x86), "x86_64", {})["emulated"] is False


def test_qemu_system_virt_board_and_explicit_flag():
    virt = {"/proc/sys/kernel/arch": "aarch64", "/proc/cpuinfo": PI4_CPUINFO,
            "/sys/firmware/devicetree/base/compatible": "linux,dummy-virt\x00"}
    assert detect_emulation(_reader(virt), "aarch64", {})["emulator"] == "qemu-system"
    plain = {"/proc/sys/kernel/arch": "aarch64", "/proc/cpuinfo": PI4_CPUINFO}
    assert detect_emulation(_reader(plain), "aarch64", {"EDGEKIT_EMULATED": "1"})["emulated"] is True


def test_this_host():
    got = detect_emulation()
    assert got["emulated"] is False, got  # CI runs natively
