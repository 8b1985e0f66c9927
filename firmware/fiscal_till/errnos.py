"""errno values by name, for every OSError the firmware raises or tests (MicroPython's errno module lacks
some of them, and a bare 19 or 28 says nothing to the reader)."""

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):  # type: ignore[misc]
        return x

ENOENT = const(2)  # no such record (overwritten, or never written)
EIO = const(5)  # the media failed or the journal is damaged: appends refused
ENODEV = const(19)  # no journal on the partition (blank, or the header torn)
EINVAL = const(22)  # a bad argument: device id, quotas, record type or length
ENOSPC = const(28)  # a record class, the fiscal area or the ring is full
