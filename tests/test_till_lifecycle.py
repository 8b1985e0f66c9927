"""The till enforces the whole lifecycle itself (in-process firmware on CPython)."""

import lifecycle
from testbed.rigs import TillRig


def test_full_lifecycle_in_process():
    lifecycle.run(TillRig())


def test_full_lifecycle_survives_a_reboot_at_every_step():
    rig = TillRig()
    real_ok = rig.ok

    def ok_then_reboot(name, **fields):
        reply = real_ok(name, **fields)
        if name != "GET_STATUS":
            rig.reboot()
        return reply
    rig.ok = ok_then_reboot
    lifecycle.run(rig)
