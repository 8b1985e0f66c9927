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

    def step(self, action):
        if self.off:
            raise PowerLoss("power is off")
        n = self.steps
        self.steps += 1
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

    def __init__(self, obj, mains, counted):
        self._obj, self._mains, self._counted = obj, mains, counted

    def __getattr__(self, name):
        attr = getattr(self._obj, name)
        if name not in self._counted:
            return attr

        def stepped(*args):
            if name == "ioctl" and args[0] != _IOCTL_ERASE:  # geometry queries change nothing
                return attr(*args)
            return self._mains.step(lambda: attr(*args))
        return stepped
