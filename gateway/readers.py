"""Card readers for the bureau station: one API over backends named in one registry (python-can style).

    reader = open_reader("sim", card=card)            # an in-process simulated card (or a CardSlot)
    reader = open_reader("pcsc")                      # the first PC/SC reader (pyscard + pcscd)
    reader = open_reader("pcsc", name="Virtual PCD 00 01")
    reader = open_reader("simfile", path="user.json") # a simulator card file (testbed.cardfile)
    with reader:
        atr = reader.atr
        data = reader.send(0x00, 0xA4, 0x04, 0x00, b"TID01")   # CardStatusError unless SW 9000

`Reader.transmit(apdu) -> response` is the backend hook (raw bytes both ways); `send()` builds the APDU
with protocol.apdu, splits the status word, and raises CardStatusError (with the error-table row) on any
status word not in `ok`.  Faults (no reader, no card, mute card, PC/SC errors) raise ReaderError.  The
PC/SC backend needs pyscard (the `dev` extra; it builds against libpcsclite) and a running pcscd.

The registry is the entry point group `fiscal_toolkit.card_readers` (pyproject.toml): name = a Reader
class, imported only when a reader of that name is opened, so a third party adds a backend by declaring
one and the bureau never imports the simulator.  open_reader(name, **options) makes `cls(**options)`; an
unknown or uninstalled name is a ReaderError listing the known ones.  A backend that can also write blank
cards (the card-file one) answers `personaliser(target)` with issue_cards' `personalise` callable.
"""

from __future__ import annotations

from importlib.metadata import entry_points

from protocol import apdu as apdu_layouts

from .bureau_errors import CardStatusError, ReaderError

ENTRY_POINT_GROUP = "fiscal_toolkit.card_readers"
CARD_FILE = "simfile"  # the backend of simulator card files (--card FILE, issue-cards --out)


class Reader:
    """A connected card.  Subclasses implement _connect, _disconnect and transmit."""

    name = "reader"

    def __init__(self) -> None:
        self.atr: bytes | None = None

    def connect(self) -> bytes:
        self.atr = self._connect()
        return self.atr

    def disconnect(self) -> None:
        self._disconnect()
        self.atr = None

    def __enter__(self) -> "Reader":
        if self.atr is None:
            self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    @classmethod
    def personaliser(cls, target, **options):
        """`personalise(fiscal_data, user_data)` writing blank cards at `target`, for backends that can."""
        raise ReaderError("the %s reader cannot personalise blank cards" % cls.name)

    def _connect(self) -> bytes:
        raise NotImplementedError

    def _disconnect(self) -> None:
        raise NotImplementedError

    def transmit(self, apdu: bytes) -> bytes:
        raise NotImplementedError

    def send(self, cla: int, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"", le: int | None = None, *,
             ok: tuple[int, ...] = (apdu_layouts.SW_OK,), what: str = "") -> bytes:
        """Send one command; the response data, or CardStatusError if the status word is not in `ok`."""
        raw = self.transmit(apdu_layouts.Command.build(dict(cla=cla, ins=ins, p1=p1, p2=p2, data=bytes(data), le=le)))
        if len(raw) < 2:
            raise ReaderError("%s: response of %d bytes has no status word" % (self.name, len(raw)))
        sw = raw[-2] << 8 | raw[-1]
        if sw not in ok:
            raise CardStatusError(sw, ins, what)
        return raw[:-2]

    # ISO conveniences
    def select(self, df_name: bytes) -> None:
        self.send(apdu_layouts.CLA_ISO, apdu_layouts.INS_SELECT, 0x04, 0x00, df_name, what="SELECT %s" % df_name.decode(errors="replace"))

    def read_binary(self, fid: int, length: int | None = None) -> bytes:
        return self.send(apdu_layouts.CLA_ISO, apdu_layouts.INS_READ_BINARY, 0x80 | (fid & 0x1F), 0, le=length or 256,
                         what="READ BINARY %04X" % fid)

    def read_records(self, fid: int) -> list[bytes]:
        """Every record of a record file, from 1 until the card answers 6A82."""
        out = []
        while True:
            raw = self.transmit(apdu_layouts.Command.build(dict(cla=apdu_layouts.CLA_ISO, ins=apdu_layouts.INS_READ_RECORD, p1=len(out) + 1,
                                                     p2=(fid & 0x1F) << 3 | 4, data=b"", le=256)))
            sw = raw[-2] << 8 | raw[-1]
            if sw == 0x6A82:
                return out
            if sw != apdu_layouts.SW_OK:
                raise CardStatusError(sw, apdu_layouts.INS_READ_RECORD, "READ RECORD %04X/%d" % (fid, len(out) + 1))
            out.append(raw[:-2])

    def update_record(self, fid: int, number: int, data: bytes) -> None:
        self.send(apdu_layouts.CLA_ISO, apdu_layouts.INS_UPDATE_RECORD, number, (fid & 0x1F) << 3 | 4, data,
                  what="UPDATE RECORD %04X/%d" % (fid, number))


class SimReader(Reader):
    """An in-process card: anything with power_on() -> ATR, transmit(), power_off() (a hw_sim card or slot)."""

    name = "sim"

    def __init__(self, card=None) -> None:
        super().__init__()
        if card is None:
            raise ReaderError("the sim reader needs a card")
        self.card = card

    def _connect(self) -> bytes:
        try:
            atr = self.card.power_on()
        except OSError as e:
            raise ReaderError("sim: %s" % e) from None
        if atr is None:
            raise ReaderError("sim: no card or no ATR")
        return atr

    def _disconnect(self) -> None:
        self.card.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        try:
            return self.card.transmit(apdu)
        except OSError as e:
            raise ReaderError("sim: %s" % e) from None


def pcsc_readers() -> list[str]:
    """Names of the PC/SC readers (ReaderError when pyscard or pcscd is missing)."""
    try:
        from smartcard.System import readers
    except ImportError:
        raise ReaderError("pyscard is not installed (pip install pyscard; needs libpcsclite-dev and swig)") from None
    try:
        return [str(r) for r in readers()]
    except Exception as e:  # pyscard raises its own hierarchy; pcscd absent is one of them
        raise ReaderError("PC/SC unavailable: %s" % e) from None


class PcscReader(Reader):
    """A card in a PC/SC reader, through pyscard (T=1 or T=0, as the card's ATR offers)."""

    def __init__(self, name: str | None = None) -> None:
        super().__init__()
        names = pcsc_readers()
        if not names:
            raise ReaderError("no PC/SC reader")
        if name is None:
            name = names[0]
        elif name not in names:
            raise ReaderError("no PC/SC reader %r (have %s)" % (name, ", ".join(names)))
        self.name = name
        self._connection = None

    def _connect(self) -> bytes:
        from smartcard.System import readers
        try:
            reader = next(r for r in readers() if str(r) == self.name)
            self._connection = reader.createConnection()
            self._connection.connect()
            return bytes(self._connection.getATR())
        except Exception as e:
            raise ReaderError("%s: %s" % (self.name, e)) from None

    def _disconnect(self) -> None:
        if self._connection is not None:
            try:
                self._connection.disconnect()
                self._connection.release()
            except Exception:
                pass
            self._connection = None

    def transmit(self, apdu: bytes) -> bytes:
        if self._connection is None:
            raise ReaderError("%s: not connected" % self.name)
        try:
            data, sw1, sw2 = self._connection.transmit(list(apdu))
        except Exception as e:
            raise ReaderError("%s: %s" % (self.name, e)) from None
        return bytes(data) + bytes((sw1, sw2))


def reader_names() -> list[str]:
    """The names of the registered reader backends."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def reader_class(kind: str) -> type[Reader]:
    """The Reader class registered as `kind`, imported now; ReaderError if there is none or it is not
    installed."""
    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == kind]
    if not found:
        raise ReaderError("no card reader named %r: the known ones are %s" % (
            kind, ", ".join(reader_names()) or "none (is fiscal-toolkit installed? pip install -e .)"))
    try:
        return found[0].load()
    except (ImportError, AttributeError) as e:
        raise ReaderError("the card reader %r is declared but cannot be loaded (%s): install the package that "
                          "provides it" % (kind, e)) from None


def open_reader(kind: str, **options) -> Reader:
    """A reader of the backend `kind` ("sim" with `card`, "pcsc" with an optional reader `name`,
    "simfile" with `path` ...); not yet connected."""
    return reader_class(kind)(**options)


def personaliser(kind: str, target, **options):
    """The `personalise(fiscal_data, user_data)` callable of backend `kind`, writing blank cards at
    `target` (for "simfile": a folder that gets fiscal.json and user.json)."""
    return reader_class(kind).personaliser(target, **options)
