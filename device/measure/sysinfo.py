"""`info`: what the board is, so every number can be read in context (and emulation is never
mistaken for a real board).

Everything here reads /proc, /sys and a few commands, and degrades to None when they are absent.
It is in every command's start-up, so it asks os.uname and os.confstr rather than importing
platform and socket, and imports subprocess only on a Pi, where there is a vcgencmd to run.
"""
from __future__ import annotations

import glob
import os
import shutil
import sys
from typing import Optional

from device import __version__
from device.runtimes import registry as runtime

_ARCH_FAMILY = {"x86_64": "x86", "amd64": "x86", "i386": "x86", "i686": "x86",
                "aarch64": "arm", "arm64": "arm", "armv7l": "arm", "armv8l": "arm", "armv6l": "arm",
                "riscv64": "riscv", "ppc64le": "ppc", "s390x": "s390"}


def _numpy_version() -> Optional[str]:
    """NumPy's version without importing it (the import is most of the parent's start-up time)."""
    if "numpy" in sys.modules:
        return sys.modules["numpy"].__version__
    return runtime.dist_version("numpy", "numpy")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, errors="replace") as f:
            return f.read().strip()
    except OSError:
        return None


def _cpuinfo(read=_read) -> dict:
    fields = {}
    text = read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


def detect_emulation(read=_read, machine: Optional[str] = None, environ=os.environ) -> dict:
    """Is this process running under an emulator (qemu-user, or a qemu-system arm board)?

    qemu-user fakes uname and /proc/self/* (and, since qemu 8, /proc/cpuinfo for ARM), but not the
    kernel's own sysctl /proc/sys/kernel/arch, so a user-space arch whose family differs from the
    kernel's means translation. Host /proc/cpuinfo fields under an ARM process, or qemu's
    "CPU implementer 0x00", are the fallback signals on kernels without that sysctl.
    `read`, `machine` and `environ` are parameters so the decision can be checked on recorded files.
    """
    machine = (machine or os.uname().machine).lower()
    family = _ARCH_FAMILY.get(machine, machine)
    reasons = []
    kernel_arch = read("/proc/sys/kernel/arch")
    if kernel_arch and _ARCH_FAMILY.get(kernel_arch.lower(), kernel_arch.lower()) != family:
        reasons.append(f"user-space arch {machine} on a {kernel_arch} kernel")
    cpu = _cpuinfo(read)
    cpu_family = None
    if "vendor_id" in cpu or "cpu family" in cpu:
        cpu_family = "x86"
    elif "cpu implementer" in cpu or "cpu architecture" in cpu:
        cpu_family = "arm"
    if cpu_family and cpu_family != family and family in ("x86", "arm"):
        reasons.append(f"/proc/cpuinfo describes an {cpu_family} CPU under {machine}")
    if cpu.get("cpu implementer", "").lower() in ("0x00", "0x0") and family == "arm":
        # implementer 0 is reserved for software: what qemu-user's emulated /proc/cpuinfo shows
        reasons.append("/proc/cpuinfo CPU implementer 0x00 (software-emulated CPU)")
    if "qemu-" in (read("/proc/self/maps") or ""):
        reasons.append("qemu mapped into this process")
    if environ.get("EDGEKIT_EMULATED", "").lower() in ("1", "true", "yes"):
        reasons.append("EDGEKIT_EMULATED is set")
    if reasons:
        return {"emulated": True, "emulator": "qemu-user", "reasons": reasons}
    # A full-system qemu arm machine (virt board) is TCG-emulated unless run with KVM on arm.
    compatible = (read("/sys/firmware/devicetree/base/compatible") or "").replace("\x00", ",")
    vendor = read("/sys/class/dmi/id/sys_vendor") or ""
    if "dummy-virt" in compatible:
        return {"emulated": True, "emulator": "qemu-system", "reasons": ["devicetree says qemu virt"]}
    if vendor.upper().startswith("QEMU"):
        return {"emulated": False, "emulator": None, "virtual_machine": "qemu",
                "reasons": ["DMI vendor QEMU (virtual machine, assumed hardware-accelerated)"]}
    return {"emulated": False, "emulator": None, "reasons": []}


def _meminfo_mb() -> dict:
    out = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            try:
                out[key] = round(int(rest.split()[0]) / 1024.0, 1)
            except (ValueError, IndexError):
                pass
    return {"ram_total_mb": out.get("MemTotal"), "ram_available_mb": out.get("MemAvailable")}


def _os_release() -> dict:
    """/etc/os-release: which OS generation (e.g. Debian 13 trixie = Pi OS since late 2025)."""
    fields = {}
    for line in (_read("/etc/os-release") or "").splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    return {"os": fields.get("PRETTY_NAME"), "os_id": fields.get("ID"),
            "os_version": fields.get("VERSION_ID"), "os_codename": fields.get("VERSION_CODENAME"),
            "glibc": _glibc()}


def _glibc() -> Optional[str]:
    """"glibc-2.36" (platform.libc_ver's spelling); None on a libc without the confstr name (musl)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").replace(" ", "-") or None
    except (ValueError, OSError):
        return None


def _temperatures() -> dict:
    zones = {}
    for zone in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        temp = _read(os.path.join(zone, "temp"))
        if temp and temp.lstrip("-").isdigit():
            kind = _read(os.path.join(zone, "type")) or os.path.basename(zone)
            zones[kind] = round(int(temp) / 1000.0, 1)
    return zones


def _throttling() -> dict:
    """vcgencmd get_throttled on a Pi (bit 0: under-voltage, 2: throttled now, 16+: since boot)."""
    tool = shutil.which("vcgencmd")
    if not tool:
        return {"source": None, "throttled": None, "raw": None}
    import subprocess
    try:
        out = subprocess.run([tool, "get_throttled"], capture_output=True, text=True, timeout=5).stdout
        value = int(out.strip().split("=", 1)[1], 16)
        return {"source": "vcgencmd", "throttled": bool(value & 0x4), "under_voltage": bool(value & 0x1),
                "since_boot": bool(value & 0xF0000), "raw": hex(value)}
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return {"source": "vcgencmd", "throttled": None, "raw": None}


def _cpufreq() -> dict:
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"

    def mhz(name: str) -> Optional[float]:
        v = _read(base + name)
        return round(int(v) / 1000.0, 1) if v and v.isdigit() else None

    return {"governor": _read(base + "scaling_governor"), "cur_mhz": mhz("scaling_cur_freq"),
            "max_mhz": mhz("cpuinfo_max_freq")}


def _cpu_model(cpu: dict) -> Optional[str]:
    for key in ("model name", "hardware", "processor", "cpu model"):
        value = cpu.get(key)
        if value and not value.isdigit():
            return value
    return None


def collect(requested_runtime: Optional[str] = None) -> dict:
    """The `info` fields (also embedded as `device` in every result)."""
    cpu = _cpuinfo()
    try:
        chosen = runtime.resolve(requested_runtime)
        chosen_rt = {"name": chosen.name, "version": chosen.version}
    except Exception as exc:
        chosen_rt = {"name": None, "version": None, "error": str(exc)}
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    numpy_version = _numpy_version()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    board = (_read("/proc/device-tree/model") or "").replace("\x00", "") or None
    uname = os.uname()
    info = {
        "hostname": uname.nodename,
        "arch": uname.machine,
        "kernel_arch": _read("/proc/sys/kernel/arch"),
        "kernel": uname.release,
        "board_model": board,
        "cpu_model": _cpu_model(cpu),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "python": sys.version.split()[0],
        "python_executable": sys.executable,
        "numpy": numpy_version,
        "runtime": chosen_rt,
        "runtimes_available": runtime.available(),
        "agent_version": __version__,
        "temperature_c": _temperatures(),
        "throttling": _throttling(),
        "cpufreq": _cpufreq(),
        "load_avg": load,
    }
    info.update(_meminfo_mb())
    info.update(_os_release())
    emulation = detect_emulation()
    info["emulated"] = emulation["emulated"]
    info["emulator"] = emulation.get("emulator")
    info["emulation_reasons"] = emulation["reasons"]
    if emulation.get("virtual_machine"):
        info["virtual_machine"] = emulation["virtual_machine"]
    return info
