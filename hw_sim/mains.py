"""Power cuts across the whole board: the mains counts every HAL action that changes something (a card
command, a flash program or erase, an nvram write) and fails the power before or after a chosen one.

    mains = Mains()
    board.flash = Stepped(flash, mains, {"writeblocks", "ioctl"})   # ioctl: only op 6 (erase) counts
    board.fiscal_slot = Stepped(slot, mains, {"transmit"})
    mains.at, mains.after = 7, True      # the 8th step runs, then the power fails (its answer is lost)

A cut raises hw_sim.nor_flash.PowerLoss (a BaseException: the CPU stops) and every later step raises it
too until `off` is cleared.  Torn writes inside one flash operation are NorFlash's own injection.
"""

from .nor_flash import PowerLoss

_IOCTL_ERASE = 6


class Mains:
    def __init__(self):
        self.steps = 0
        self.at = None  # step number to cut at, or None
        self.after = False  # cut after the step ran (True) or before it (False)
        self.off = False
        self.trace = None  # a list to log (step number, device label, method) of every step, or None
        self.before_step = None  # called with (step number, label) before each step runs, or None

    def step(self, action, label="", method=""):
        if self.off:
            raise PowerLoss("power is off")
        n = self.steps
        self.steps += 1
        if self.trace is not None:
            self.trace.append((n, label, method))
        if self.before_step is not None:
            self.before_step(n, label)  # a tear inside the step: the device raises PowerLoss itself
        if n == self.at and not self.after:
            self.off = True
            raise PowerLoss("cut before step %d" % n)
        result = action()
        if n == self.at and self.after:
            self.off = True
            raise PowerLoss("cut after step %d" % n)
        return result

    def restore(self):
        """Power back, no cut scheduled."""
        self.off = False
        self.at = None


class Stepped:
    """A HAL object whose methods named in `counted` are mains steps; everything else passes through."""

    def __init__(self, obj, mains, counted, label=""):
        self._obj, self._mains, self._counted, self._label = obj, mains, counted, label

    def __getattr__(self, name):
        if name.startswith("__"):  # copy / pickle protocol: not the device's
            raise AttributeError(name)
        attr = getattr(self._obj, name)
        if name not in self._counted:
            return attr

        def stepped(*args):
            if name == "ioctl" and args[0] != _IOCTL_ERASE:  # geometry queries change nothing
                return attr(*args)
            return self._mains.step(lambda: attr(*args), self._label, name)
        return stepped


def stepped_board(mains, flash, fiscal_slot, user_slot, nvram):
    """The four devices whose actions are mains steps, wrapped for `mains` (flash, fiscal slot, user
    slot, nvram, in that order).  The one mechanism for every board: the in-process firmware gets these
    objects as its HAL, the MicroPython firmware reaches them through hw_sim.bus.HalService, so a step
    number means the same action whichever interpreter runs the firmware."""
    return (Stepped(flash, mains, {"writeblocks", "ioctl"}, "flash"),
            Stepped(fiscal_slot, mains, {"transmit"}, "fiscal"),
            Stepped(user_slot, mains, {"transmit"}, "user"),
            Stepped(nvram, mains, {"put", "delete"}, "nvram"))
