"""Where a simulated till meets the bureau: the composition room (docs/ARCHITECTURE.md).

hw_sim is simulated hardware only, gateway is the bureau only, conformance is the vendor-neutral suite;
what needs two of them at once lives here and may import all of them:

    demo_cards   the demo card set and its numbers (TEST keys, NON-FISCAL), issued by gateway.issuance
    bureau       the tax hall's side of a simulated user card: authenticated session, sell a roll, clear
"""
