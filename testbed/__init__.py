"""Where a simulated till meets the bureau: the composition of the simulator (hw_sim), the firmware
(fiscal_till), the bureau (gateway) and the suite (conformance) that none of them may import from each
other: the test rigs, the simulator DUT backends, the till-side reference APDU sequences and the mutants
(docs/ARCHITECTURE.md)."""
