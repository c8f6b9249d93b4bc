"""Tiny x86 boot-sector guests that make real QEMU produce each lifecycle event.

Each variant is a 512-byte real-mode boot sector, assembled here by hand into deterministic
bytes and padded to a 1 MiB raw disk image (q35's AHCI path refuses a one-sector disk). Every
variant first prints ``BOOT <variant>\\n`` to COM1, so a test can wait for "the guest is up" on
the serial log instead of guessing with sleeps, and then does one thing:

* ``idle``: ``cli; hlt`` forever, ignoring the ACPI power button (no events until the host acts).
* ``poweroff``: ACPI S5 at once (SHUTDOWN guest-shutdown, STOP).
* ``acpi``: arms the power button and sleeps in ``sti; hlt``; a press powers off (after
  ``system_powerdown``: POWERDOWN, SHUTDOWN guest-shutdown, STOP).
* ``panic``: pvpanic "panicked" (GUEST_PANICKED action=pause, STOP).
* ``crashloaded``: pvpanic "crash loaded" (GUEST_CRASHLOADED action=run; keeps running).
* ``triplefault``: triple fault at every boot (RESET guest-reset forever; with ``-no-reboot``:
  SHUTDOWN guest-reset, STOP).
* ``reboot`` and its explicit alias ``reboot-once``: keyboard-controller reset on the first boot,
  then idle (RESET guest-reset x2-3: the guest's own and SeaBIOS' re-resets).
* ``reboot-poweroff``: keyboard-controller reset on the first boot, S5 on the next.
* ``suspend``: ACPI S3 on the first boot, then idle (SUSPEND; after ``system_wakeup``: WAKEUP,
  RESET, second boot).
* ``poweroff-once`` / ``panic-once``: S5 / pvpanic on the first boot only, then idle.
* ``pm-probe``: prints the PM I/O base read from PCI config space (diagnostic; pc and q35).

"First boot" is remembered in CMOS byte 0x4F, which survives guest and host resets but not a new
QEMU process, so the "once" variants behave again after a restart of the process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["IMAGE_SIZE", "VARIANTS", "boot_marker", "build_image", "write_images"]

IMAGE_SIZE: Final = 1 << 20
_SECTOR_SIZE: Final = 512
_ORIGIN: Final = 0x7C00  # where the BIOS loads the boot sector
_CMOS_FLAG_INDEX: Final = 0x4F  # a CMOS byte no firmware here uses
_CMOS_FLAG_VALUE: Final = 0xA5  # fresh CMOS reads 0 there


@dataclass(frozen=True)
class _Plan:
    """What a variant does: ``first`` on every boot, or, with ``later`` set, ``first`` only on the
    first boot of the process and ``later`` on every boot after it. Both end in the idle loop."""

    first: tuple[str, ...]
    later: tuple[str, ...] | None = None


_PLANS: Final[dict[str, _Plan]] = {
    "idle": _Plan(()),
    "poweroff": _Plan(("poweroff",)),
    "acpi": _Plan(("wait-power-button", "poweroff")),
    "panic": _Plan(("panic",)),
    "crashloaded": _Plan(("crashloaded",)),
    "triplefault": _Plan(("triplefault",)),
    "reboot": _Plan(("kbc-reset",), later=()),
    "reboot-once": _Plan(("kbc-reset",), later=()),
    "reboot-poweroff": _Plan(("kbc-reset",), later=("poweroff",)),
    "suspend": _Plan(("s3",), later=()),
    "poweroff-once": _Plan(("poweroff",), later=()),
    "panic-once": _Plan(("panic",), later=()),
    "pm-probe": _Plan(("print-pm-base",)),
}

VARIANTS: Final[tuple[str, ...]] = tuple(_PLANS)


def boot_marker(variant: str) -> str:
    """The line a variant prints to COM1 at every boot."""
    return f"BOOT {variant}\n"


class _Asm:
    """Collects hand-encoded 16-bit machine code and resolves label references at the end."""

    def __init__(self) -> None:
        self._code = bytearray()
        self._labels: dict[str, int] = {}
        # (position, size, target label, kind): kind "rel" is relative to the end of the field,
        # "abs" is the absolute address of the label once loaded at _ORIGIN.
        self._fixups: list[tuple[int, int, str, str]] = []

    def op(self, *octets: int) -> None:
        self._code.extend(octets)

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name!r} defined twice")
        self._labels[name] = len(self._code)

    def rel8(self, opcode: int, target: str) -> None:
        """A short jump or conditional jump (``opcode rel8``)."""
        self._code.append(opcode)
        self._fixups.append((len(self._code), 1, target, "rel"))
        self._code.append(0)

    def call(self, target: str) -> None:
        """``call near target`` (E8 rel16)."""
        self._code.append(0xE8)
        self._fixups.append((len(self._code), 2, target, "rel"))
        self._code.extend(b"\0\0")

    def abs16(self, prefix: bytes, target: str, suffix: bytes = b"") -> None:
        """An instruction whose 16-bit immediate or displacement is the address of ``target``."""
        self._code.extend(prefix)
        self._fixups.append((len(self._code), 2, target, "abs"))
        self._code.extend(b"\0\0")
        self._code.extend(suffix)

    def assemble(self) -> bytes:
        code = bytearray(self._code)
        for position, size, target, kind in self._fixups:
            address = self._labels[target]
            value = _ORIGIN + address if kind == "abs" else address - (position + size)
            if size == 1 and not -128 <= value <= 127:
                raise ValueError(f"short jump to {target!r} out of range ({value})")
            field = value & ((1 << (8 * size)) - 1)
            code[position : position + size] = field.to_bytes(size, "little")
        return bytes(code)


def _prologue(a: _Asm) -> None:
    a.op(0xFA)  #                     cli
    a.abs16(b"\xea", "start", b"\0\0")  # jmp 0x0000:start  (BIOSes differ: 07C0:0000 vs 0000:7C00)
    a.label("start")
    a.op(0x31, 0xC0)  #               xor ax, ax
    a.op(0x8E, 0xD8)  #               mov ds, ax
    a.op(0x8E, 0xC0)  #               mov es, ax
    a.op(0x8E, 0xD0)  #               mov ss, ax
    a.op(0xBC, 0x00, 0x7C)  #         mov sp, 0x7C00      (stack grows down below the sector)
    a.op(0xFC)  #                     cld
    a.abs16(b"\xbe", "marker")  #     mov si, marker
    a.call("print")  #                call print


def _once_guard(a: _Asm) -> None:
    """Jump to ``later`` if the CMOS flag is set; otherwise set it and fall through."""
    a.op(0xB0, _CMOS_FLAG_INDEX)  #   mov al, 0x4F
    a.op(0xE6, 0x70)  #               out 0x70, al        (CMOS index; bit 7 clear keeps NMI on)
    a.op(0xE4, 0x71)  #               in al, 0x71
    a.op(0x3C, _CMOS_FLAG_VALUE)  #   cmp al, 0xA5
    a.rel8(0x74, "later")  #          je later
    a.op(0xB0, _CMOS_FLAG_INDEX)  #   mov al, 0x4F
    a.op(0xE6, 0x70)  #               out 0x70, al
    a.op(0xB0, _CMOS_FLAG_VALUE)  #   mov al, 0xA5
    a.op(0xE6, 0x71)  #               out 0x71, al


def _action(a: _Asm, name: str) -> None:
    if name == "poweroff":
        a.op(0xBA, 0x04, 0x06)  #     mov dx, 0x604       (PM1a_CNT on pc and q35)
        a.op(0xB8, 0x00, 0x20)  #     mov ax, 0x2000      (SLP_EN, SLP_TYP=0: S5)
        a.op(0xEF)  #                 out dx, ax
    elif name == "s3":
        a.op(0xBA, 0x04, 0x06)  #     mov dx, 0x604
        a.op(0xB8, 0x00, 0x24)  #     mov ax, 0x2400      (SLP_EN, SLP_TYP=1: S3)
        a.op(0xEF)  #                 out dx, ax
    elif name in ("panic", "crashloaded"):
        a.op(0xBA, 0x05, 0x05)  #     mov dx, 0x505       (ISA pvpanic)
        a.op(0xB0, 1 if name == "panic" else 2)  # mov al, 1 (PANICKED) / 2 (CRASH_LOADED)
        a.op(0xEE)  #                 out dx, al
    elif name == "kbc-reset":
        a.op(0xB0, 0xFE)  #           mov al, 0xFE        (pulse the CPU reset line)
        a.op(0xE6, 0x64)  #           out 0x64, al
    elif name == "triplefault":
        a.abs16(b"\x0f\x01\x1e", "null_idt")  # lidt [null_idt]  (limit 0: no vector is valid)
        a.op(0xCC)  #                 int3                (-> #GP -> #DF -> triple fault)
    elif name == "wait-power-button":
        a.op(0xBA, 0x02, 0x06)  #     mov dx, 0x602       (PM1a_EN)
        a.op(0xB8, 0x00, 0x01)  #     mov ax, 0x0100      (PWRBTN_EN)
        a.op(0xEF)  #                 out dx, ax
        a.op(0xB2, 0x00)  #           mov dl, 0x00        (dx = 0x600, PM1a_STS)
        a.label("button_wait")
        a.op(0xFB)  #                 sti                 (the 18.2 Hz PIT tick wakes the hlt)
        a.op(0xF4)  #                 hlt
        a.op(0xED)  #                 in ax, dx
        a.op(0xF6, 0xC4, 0x01)  #     test ah, 0x01       (PWRBTN_STS, bit 8)
        a.rel8(0x74, "button_wait")  # jz button_wait
        a.op(0xFA)  #                 cli
        a.op(0xEF)  #                 out dx, ax          (write-1-to-clear what we saw)
    elif name == "print-pm-base":
        # pc: PIIX4 PM function 00:01.3, register 0x40 (PMBA)
        a.op(0x66, 0xB8, 0x40, 0x0B, 0x00, 0x80)  # mov eax, 0x80000B40
        a.call("pci_read")  #         call pci_read
        a.op(0x66, 0x83, 0xF8, 0xFF)  # cmp eax, -1       (no such function: not a pc)
        a.rel8(0x75, "pm_found")  #   jne pm_found
        # q35: ICH9 LPC bridge 00:1f.0, register 0x40 (PMBASE)
        a.op(0x66, 0xB8, 0x40, 0xF8, 0x00, 0x80)  # mov eax, 0x8000F840
        a.call("pci_read")  #         call pci_read
        a.label("pm_found")
        a.op(0x89, 0xC3)  #           mov bx, ax
        a.op(0x83, 0xE3, 0xFE)  #     and bx, 0xFFFE      (bit 0 only flags I/O space)
        a.call("print_hex16")  #      call print_hex16
        a.abs16(b"\xbe", "newline")  # mov si, newline
        a.call("print")  #            call print
    else:
        raise ValueError(f"unknown action {name!r}")


def _idle(a: _Asm) -> None:
    a.label("idle")
    a.op(0xFA)  #                     cli
    a.label("idle_hlt")
    a.op(0xF4)  #                     hlt                 (only an NMI or reset gets past this)
    a.rel8(0xEB, "idle_hlt")  #       jmp idle_hlt


def _subroutines(a: _Asm, variant: str) -> None:
    # putc: al = character; clobbers ah, dx.
    a.label("putc")
    a.op(0xBA, 0xFD, 0x03)  #         mov dx, 0x3FD       (COM1 line status)
    a.op(0x88, 0xC4)  #               mov ah, al
    a.label("putc_wait")
    a.op(0xEC)  #                     in al, dx
    a.op(0xA8, 0x20)  #               test al, 0x20       (transmit holding register empty)
    a.rel8(0x74, "putc_wait")  #      jz putc_wait
    a.op(0x88, 0xE0)  #               mov al, ah
    a.op(0xB2, 0xF8)  #               mov dl, 0xF8        (dx = 0x3F8, COM1 data)
    a.op(0xEE)  #                     out dx, al
    a.op(0xC3)  #                     ret
    # print: si = NUL-terminated string.
    a.label("print")
    a.op(0xAC)  #                     lodsb
    a.op(0x84, 0xC0)  #               test al, al
    a.rel8(0x74, "print_done")  #     jz print_done
    a.call("putc")  #                 call putc
    a.rel8(0xEB, "print")  #          jmp print
    a.label("print_done")
    a.op(0xC3)  #                     ret
    if variant == "pm-probe":
        # pci_read: eax = config address; returns the dword in eax.
        a.label("pci_read")
        a.op(0xBA, 0xF8, 0x0C)  #     mov dx, 0xCF8
        a.op(0x66, 0xEF)  #           out dx, eax
        a.op(0xB2, 0xFC)  #           mov dl, 0xFC        (dx = 0xCFC)
        a.op(0x66, 0xED)  #           in eax, dx
        a.op(0xC3)  #                 ret
        # print_hex16: bx = value, printed as four upper-case hex digits.
        a.label("print_hex16")
        a.op(0xB9, 0x04, 0x00)  #     mov cx, 4
        a.label("hex_next")
        a.op(0xC1, 0xC3, 0x04)  #     rol bx, 4
        a.op(0x88, 0xD8)  #           mov al, bl
        a.op(0x24, 0x0F)  #           and al, 0x0F
        a.op(0x04, 0x30)  #           add al, '0'
        a.op(0x3C, 0x39)  #           cmp al, '9'
        a.rel8(0x76, "hex_digit")  #  jbe hex_digit
        a.op(0x04, 0x07)  #           add al, 'A' - '9' - 1
        a.label("hex_digit")
        a.call("putc")  #             call putc
        a.rel8(0xE2, "hex_next")  #   loop hex_next
        a.op(0xC3)  #                 ret


def _boot_sector(variant: str) -> bytes:
    try:
        plan = _PLANS[variant]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown guest variant {variant!r}; expected one of {known}") from None
    a = _Asm()
    _prologue(a)
    if plan.later is not None:
        _once_guard(a)
    for name in plan.first:
        _action(a, name)
    if plan.later is not None:
        a.rel8(0xEB, "idle")  #       jmp idle
        a.label("later")
        for name in plan.later:
            _action(a, name)
    _idle(a)
    _subroutines(a, variant)
    a.label("marker")
    a.op(*boot_marker(variant).encode("ascii"), 0)
    a.label("newline")
    a.op(0x0A, 0)
    a.label("null_idt")
    a.op(0, 0, 0, 0, 0, 0)  # IDTR image: limit 0, base 0
    code = a.assemble()
    if len(code) > _SECTOR_SIZE - 2:
        raise ValueError(f"variant {variant!r} needs {len(code)} bytes, more than one sector")
    return code.ljust(_SECTOR_SIZE - 2, b"\0") + b"\x55\xaa"


def build_image(variant: str) -> bytes:
    """Return the 1 MiB raw disk image for ``variant`` (boot sector, then zeros)."""
    return _boot_sector(variant).ljust(IMAGE_SIZE, b"\0")


def write_images(
    directory: str | os.PathLike[str], variants: tuple[str, ...] = VARIANTS
) -> dict[str, Path]:
    """Write ``<variant>.img`` for each variant into ``directory`` (created if needed).

    The files are sparse: only the boot sector is written and the rest is a hole of zeros.
    """
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for variant in variants:
        path = root / f"{variant}.img"
        with path.open("wb") as handle:
            handle.write(_boot_sector(variant))
            handle.truncate(IMAGE_SIZE)
        paths[variant] = path
    return paths
