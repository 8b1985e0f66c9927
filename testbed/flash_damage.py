"""Fiscal-memory damage a case inflicts on a device it can reach the flash of (capability `flash`).

    flash: {flip_init: true}           one bit of the INIT record's body
    flash: {truncate: 300}             the journal's last 300 bytes erased (where its newest record ends)
    flash: {erase_last_sector: true}   the journal's newest sector (ring if it holds detail) erased
    flash: {format_cut: 512, tear: prefix}
                                       blank flash and nvram, the first-boot format cut after that many
                                       operations (tear: nothing | prefix | random), then power back

The device is off while its flash is changed and boots after (`Dut.damage_flash`).  Locations come from
mounting the journal with the firmware's own reader, read-only.
"""

from __future__ import annotations

from hw_sim.nor_flash import TEAR_NAMES

INIT_BIT = (136 + 44 + 10, 0)  # fiscal sector 0: header, record envelope head, 10 bytes into the body


def _journal(flash):
    from fiscal_till.journal import Journal
    return Journal(flash, None)


def _end(flash):
    """((sector, offset) just past the journal's newest record, sector size)."""
    j = _journal(flash)
    newest = j.read(j.next_index - 1)[0] if j.next_index else None
    if newest == 7 and j.r_run and j.r_off >= 0:  # INVOICE: the detail ring ends the journal
        return (j.F + j.r_run[-1], j.r_off), j.bs
    return (j.f_tail, j.f_off if j.f_off >= 0 else j.bs), j.bs


def apply(flash, nvram_clear, spec: dict) -> tuple[int, int] | None:
    """Damage `flash` per `spec`; returns (cut, tear) when the next boot must be cut (format_cut)."""
    if spec.get("flip_init"):
        flash.flip_bit(*INIT_BIT)
    elif "truncate" in spec:
        (s, off), bs = _end(flash)
        n = min(int(spec["truncate"]), off)
        flash.erase_bytes(s * bs + off - n, n)
    elif spec.get("erase_last_sector"):
        (s, _), bs = _end(flash)
        flash.erase_bytes(s * bs, bs)
    elif "format_cut" in spec:
        flash.erase_bytes(0, flash.size)
        nvram_clear()
        return int(spec["format_cut"]), TEAR_NAMES.index(spec.get("tear", "nothing"))
    else:
        raise ValueError("unknown flash damage %r" % (spec,))
    return None
