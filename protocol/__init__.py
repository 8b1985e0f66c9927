"""protocol: the byte-exact definitions of the toolkit, in Construct (one module per concern).

frame (host-link frames), commands (the command set), records (fiscal-memory record bodies), apdu (card
APDUs), cardfiles (card files), errors (the one error-code table), status (states, lock reasons, warnings,
kinds), types (shared field types), crypto (the crypto suite).  The firmware re-implements the layouts with
`struct` (firmware/fiscal_till/layouts.py) and the tests hold both equal byte for byte.

Choices made where the public sources stop ([OPEN] in the domain reference), each behind one definition:
- Invoice code: 10 ASCII digits (`types.INVOICE_CODE_LEN`), as the vendor INPUT_INVOICE_NB carries 10 bytes.
- Taxpayer number: 20 ASCII characters (`types.TAXPAYER_NO_LEN`), room for the 18-character unified code
  and the older 15- and 20-digit ids.
- Names are UTF-8 (cards of the period used GB 2312); fixed fields are NUL-padded.
- Byte order: big-endian everywhere, as on the cards.
- Signatures are 64-byte Ed25519 (docs/CRYPTO.md) where the vendor layouts held 128-byte RSA-1024, so
  DATA_COLLECT carries 161 bytes instead of 220 and every other layout is ours in full.
- The host-link frame, the command set and the exactly-once rule are ours (the standard does not define a
  host link); error categories add `state` for lifecycle-order errors.
"""
