"""Keep memory-mapped Arrow files out of a process's resident set while it scans them.

`datasets` memory-maps its Arrow files, and every page a process reads stays counted in its RSS until the mapping
is closed or the kernel needs the memory. The pages are clean page cache, reclaimable at any time, but a scan of a
256 MB corpus still shows as 256 MB more RSS in each process that made it, so "memory flat in corpus size" looks
broken to anyone watching `top` or a memory limit that counts RSS. No library call drops them (pyarrow exposes no
madvise, and closing the mapping would invalidate the table), so this module does it: madvise(MADV_DONTNEED) on
the read-only mappings of `.arrow` files. For a read-only file mapping that only removes the page-table entries;
the next read faults the page back in from the page cache (or the file), so the data is unchanged and nothing is
lost. Linux only; elsewhere it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import mmap
import os
import sys

_MAPS = "/proc/self/maps"
_SUPPORTED = sys.platform.startswith("linux") and hasattr(mmap, "MADV_DONTNEED") and os.path.exists(_MAPS)


@functools.cache
def _madvise():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return libc.madvise


def release_arrow_pages(suffix: str = ".arrow") -> int:
    """Drop this process's resident pages of read-only mappings whose file name ends with `suffix`.

    Returns the bytes of mapped address space advised (0 where unsupported). Safe while the tables stay in use:
    the pages are read back on the next access. Called once per batch by the data pipeline, so the map listing
    (over a thousand lines once torch is loaded) is filtered by substring before any line is parsed.
    """
    if not _SUPPORTED:
        return 0
    released = 0
    with open(_MAPS, encoding="utf-8", errors="replace") as maps:
        for line in maps:
            if suffix not in line:
                continue
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or "w" in fields[1]:  # writable mappings may hold private data: never touched
                continue
            path = fields[5].rstrip("\n").removesuffix(" (deleted)")
            if not path.endswith(suffix):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if _madvise()(start, end - start, mmap.MADV_DONTNEED) == 0:
                released += end - start
    return released
