"""What every part of `Fiscal` shares: `Refused`, the record encoder, the nvram keys and the intent check.

Every operation checks everything it can before its first write, so a refused request (`Refused`)
changes nothing.  A multi-step operation writes its intent to nvram first; recovery.py reads it at boot.
"""

from . import codes, layouts, schema

# nvram keys: the only state the till keeps outside the card and the journal
NV_INTENT = "intent"  # the operation in progress: command u8, request tag (rid u32, digest u32), extra
NV_REQUEST = "req"  # the last executed request when it left no tagged record: rid, digest u32, command u8, reply
NV_PIN = "pin"
NV_ANCHOR = "anchor"  # format id + index of the newest fiscal record + the chain head after it

INTENT_CMDS = (codes.CMD_ISSUE_INVOICE, codes.CMD_DAILY_CLOSE, codes.CMD_INITIALIZE, codes.CMD_DECLARE,
               codes.CMD_CLEAR_UNLOCK, codes.CMD_LOAD_ROLL, codes.CMD_SET_TIME)


class Refused(Exception):
    """An operation refused with a status code; nothing was written."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


_BUF = bytearray(512)  # every record and card command fits; allocated once


def encode(layout, obj):
    n = schema.encode_into(layout, obj, _BUF, 0)
    return bytes(_BUF[:n])


def decode(layout, raw):
    return schema.decode(layout, raw)


def intent_ok(raw):
    """An nvram intent recovery can read: a known command, request tag, and for ISSUE_INVOICE a record."""
    if len(raw) < 9 or raw[0] not in INTENT_CMDS:
        return False
    if raw[0] == codes.CMD_SET_TIME:
        return len(raw) == 21  # new date, new time, old date
    if raw[0] == codes.CMD_ISSUE_INVOICE:
        try:
            decode(layouts.INVOICE_RECORD, raw[9:])
        except Exception:
            return False
    return True
