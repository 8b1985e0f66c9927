"""conformance: the certification suite for fiscal tills (docs/CONFORMANCE.md).

    dut       devices under test: in-process simulator, MicroPython SimTill, serial port / URL
    model     the reference model (an executable specification; imports nothing from the firmware)
    runner    scenario cases (cases/*.yaml) run against a device with the model in lockstep
    stateful  the model-based random run (hypothesis), shrunk failures written as scenario files
    report    JSON, JUnit XML and the HTML certificate
    mutants   faulty firmware variants the suite must catch
"""

SUITE_VERSION = "1.0.0"
