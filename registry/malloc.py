"""glibc's malloc told to give large buffers back to the system as soon as they are freed.

Uploads pass through 4 MiB receive buffers and 8 MiB S3 parts, allocated and freed on many
threads. glibc serves blocks over its mmap threshold (128 KiB) with mmap and unmaps them on
free, but the first such free raises the threshold to the freed size (up to 32 MiB): from then
on these buffers come from the per-thread arenas, which keep what was freed. Measured with four
256 MiB pushes on S3: about 115 MB stayed in four arenas and 50 MB in the main heap, the worker's
PSS peaked at 236 MB; with the threshold fixed, 29 MB per upload (its buffers) and back to rest
afterwards. Fixing it (``mallopt``) turns the sliding threshold off. Other C libraries: no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
THRESHOLD = 1024 * 1024
"""Blocks this large or larger are mmapped (and unmapped when freed)."""


def return_large_buffers() -> bool:
    """Fix glibc's mmap threshold at ``THRESHOLD``; False where there is no ``mallopt``."""
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD))
