#!/usr/bin/env python3
"""The local AWS world's pinned "AVML build": a stand-in for Microsoft's AVML that writes a
deterministic memory image of the instance it runs on, in LiME format, instead of reading RAM.

The seed uploads this very file to the evidence bucket as ``tools/avml/<AVML_VERSION>/avml``
and prints its SHA-256 (``forensic.avml_sha256``): forensnap pins that hash, and forensnap's
SSM document (``forensic-vpc/member-role.yaml``, ``ForensnapCaptureMemory``) downloads it,
checks the hash and runs it as it would run the real binary, ``avml [options] <filename>``.
The file is self-contained (standard library only), so it runs wherever the document's script
runs; the world's tests import it to know the image a capture must produce.

What it needs to know about "the hardware" comes from the environment the world's stand-in SSM
agent (``ssm.py``) gives the document's script, as the real agent gives ``AWS_SSM_INSTANCE_ID``:

* ``AWS_SSM_INSTANCE_ID``        the instance (its id is planted in the image);
* ``FORENSNAP_WORLD_MEMORY_MIB`` its RAM in MiB (the world file's ``memory_mib``, default 64);
* ``FORENSNAP_WORLD_AVML_MODE``  ``normal``, or ``hang``: write the first half of the image, then
  never finish (until killed, the world process ``FORENSNAP_WORLD_PID`` is gone, or an hour has
  passed).

The image (:func:`image`): two physical ranges, each a 32-byte LiME header (magic 0x4C694D45
little-endian, version 1, start address, inclusive end address, 8 reserved bytes) followed by
the range's bytes. The first range is a quarter of the RAM from address 0, then a 1 MiB hole,
then the rest. Every MiB of content is SHAKE-256 of (instance id, physical address): random
looking, repeatable. Planted in it (:func:`planted`): ``FORENSNAP-PLANTED-<instance id>-<n>``
for n = 0..7, one in each eighth of the RAM, and once an RSA private key in PEM (a memory-only
secret an investigator would look for).
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time

AVML_VERSION = "v0.14.0-forensnap-world"
"""The version folder of the pinned build in the evidence bucket."""
AVML_KEY = f"tools/avml/{AVML_VERSION}/avml"
"""Where the seed puts this file in the evidence bucket."""

MIB = 1 << 20
LIME_MAGIC = 0x4C694D45
LIME_VERSION = 1
HEADER_SIZE = 32
HOLE = MIB
"""The gap between the two physical ranges (addresses that are not RAM)."""
PLANTED_STRINGS = 8
DEFAULT_MEMORY_MIB = 64
HANG_LIMIT_SECONDS = 3600
"""A ``hang`` image gives up after this long, so that no stand-in outlives a forgotten test."""

PRIVATE_KEY = (
    b"-----BEGIN RSA PRIVATE KEY-----\n"
    b"MIIEowIBAAKCAQEAforensnapWorldMemoryOnlySecretNotARealKey0000000000\n"
    b"c3RhbmQtaW4gQVZNTCBpbWFnZSBvZiB0aGUgbG9jYWwgQVdTIHdvcmxkOyBub3Qga2V5\n"
    b"-----END RSA PRIVATE KEY-----\n"
)


def ranges(memory_mib: int) -> list[tuple[int, int]]:
    """The physical ranges [start, end) of a machine with ``memory_mib`` MiB of RAM."""
    if memory_mib < 1:
        raise ValueError(f"memory_mib must be at least 1, not {memory_mib}")
    if memory_mib == 1:
        return [(0, MIB)]
    first = max(1, memory_mib // 4) * MIB
    second = first + HOLE
    return [(0, first), (second, second + memory_mib * MIB - first)]


def header(start: int, end: int) -> bytes:
    """The LiME header of the range [start, end) (LiME's end address is inclusive)."""
    return struct.pack("<IIQQ8x", LIME_MAGIC, LIME_VERSION, start, end - 1)


def image_size(memory_mib: int) -> int:
    """Bytes of the image of ``memory_mib`` MiB of RAM: the RAM plus one header per range."""
    return memory_mib * MIB + HEADER_SIZE * len(ranges(memory_mib))


def planted(instance_id: str, memory_mib: int) -> list[tuple[int, bytes]]:
    """(physical address, bytes) of every planted string: one per eighth of the RAM, at an
    offset inside its MiB that no MiB boundary crosses, then the private key. Each is written
    with a NUL byte before and after it."""
    spans = ranges(memory_mib)
    total = memory_mib * MIB

    def address(data_offset: int) -> int:
        for start, end in spans:
            if data_offset < end - start:
                return start + data_offset
            data_offset -= end - start
        raise ValueError("offset beyond the RAM")

    out = []
    for n in range(PLANTED_STRINGS):
        offset = (n * total // PLANTED_STRINGS) // MIB * MIB + 0x1000 + 0x40 * n
        out.append((address(offset), f"FORENSNAP-PLANTED-{instance_id}-{n}".encode()))
    out.append((address((total // 2) // MIB * MIB + 0x8000), PRIVATE_KEY))
    return out


def _block(instance_id: str, address: int, strings: list[tuple[int, bytes]]) -> bytes:
    """The MiB of RAM at ``address`` (MiB-aligned), with the strings planted in it."""
    seed = b"forensnap-world-memory\0" + instance_id.encode() + b"\0" + str(address).encode()
    data = bytearray(hashlib.shake_256(seed).digest(MIB))
    for where, text in strings:
        if address <= where < address + MIB:
            offset = where - address  # NUL-terminated on both sides, as a C string in RAM
            data[offset - 1:offset + len(text) + 1] = b"\0" + text + b"\0"
    return bytes(data)


def image(instance_id: str, memory_mib: int):
    """The LiME image, in chunks (a header, then each MiB of its range)."""
    strings = planted(instance_id, memory_mib)
    for start, end in ranges(memory_mib):
        yield header(start, end)
        for address in range(start, end, MIB):
            yield _block(instance_id, address, strings)


USAGE = """\
AVML (forensnap local world stand-in) - writes a deterministic LiME image

Usage: avml [OPTIONS] <FILENAME>

Options:
      --compress       accepted, ignored (the stand-in writes raw LiME)
      --source <SRC>   accepted, ignored
  -h, --help           print help
  -V, --version        print version
"""


def _world_alive() -> bool:
    """Whether the world that started this capture still runs (always, outside a world)."""
    try:
        os.kill(int(os.environ.get("FORENSNAP_WORLD_PID") or os.getppid()), 0)
    except (OSError, ValueError):
        return False
    return True


_VALUE_OPTIONS = ("--source", "--url", "--sas-url", "--max-disk-usage", "--max-disk-usage-percentage")
"""Options of the real AVML that take a value (accepted and ignored)."""


def main(argv: list[str]) -> int:
    if "-V" in argv or "--version" in argv:
        print(f"avml {AVML_VERSION}")
        return 0
    if "-h" in argv or "--help" in argv:
        sys.stdout.write(USAGE)
        return 0
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            args.append(arg)
    if len(args) != 1:
        sys.stderr.write(USAGE)
        return 2
    filename = args[0]
    instance_id = os.environ.get("AWS_SSM_INSTANCE_ID") or "i-00000000000000000"
    try:
        memory_mib = int(os.environ.get("FORENSNAP_WORLD_MEMORY_MIB") or DEFAULT_MEMORY_MIB)
        ranges(memory_mib)
    except ValueError as err:
        sys.stderr.write(f"avml: FORENSNAP_WORLD_MEMORY_MIB: {err}\n")
        return 1
    chunks = image(instance_id, memory_mib)
    hang = os.environ.get("FORENSNAP_WORLD_AVML_MODE") == "hang"
    stop_at = image_size(memory_mib) // 2 if hang else None
    written = 0
    try:
        with open(filename, "wb") as out:
            for chunk in chunks:
                if stop_at is not None and written + len(chunk) > stop_at:
                    out.write(chunk[:stop_at - written])
                    out.flush()
                    deadline = time.monotonic() + HANG_LIMIT_SECONDS
                    while time.monotonic() < deadline and _world_alive():
                        time.sleep(0.5)
                    sys.stderr.write("avml: gave up waiting\n")
                    return 1
                out.write(chunk)
                written += len(chunk)
    except BrokenPipeError:
        sys.stderr.write(f"avml: {filename}: the reader went away after {written} bytes\n")
        return 1
    except OSError as err:
        sys.stderr.write(f"avml: {filename}: {err}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
