"""hw_sim: the software board, simulated hardware only (docs/ARCHITECTURE.md).

    board       SimBoard: one board assembly (flash, card slots, clock, nvram, printer, power steps)
    sim         SimTill: a whole till on a pty; its firmware backends (backends), config (sim_config),
                image (sim_image), card files (persistent_slot), control side (control), pump thread (pump)
    nor_flash, rtc, nvram, printer, uart, mains, bus, cards/    the devices

It takes card personalisation data from protocol, never from the bureau; testbed composes it with the
bureau (demo cards, the bureau's side of the user card, fiscal-sim, the demo).
"""
