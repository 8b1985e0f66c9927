"""What a blank card is personalised with: the content and keys a personalisation machine writes.

The bureau makes these (gateway.issuance: it holds the master key and checks every field); a card, real
or simulated (hw_sim.cards: FiscalCard.issued(data) and friends), loads them.  They are the contract
between the two, so they live here and neither side imports the other.

    FiscalCardData      one till's fiscal card (税控卡): identity (EF02), controls and tax items (EF01),
                        the card's keys, the inspection CA public key
    UserCardData        a user card (用户卡) serving 1 to 8 tills: identity, admin key, per-till keys
    TillKeys            one till a user card serves (EF06) and its two registration keys
    ManagementCardData  an inspector's card (税务管理卡): certificate, signing seed, optional PIN

Rules: the values are already valid when made (issuance checks them); these classes are frozen and
their repr never shows a key.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.crypto import FiscalCardKeys


@dataclass(frozen=True, repr=False)
class FiscalCardData:
    identity: dict  # FiscalIdentity fields (EF02)
    keys: FiscalCardKeys
    controls: dict  # Controls fields (EF01)
    tax_items: list  # 6 TaxItem dicts (EF01)
    inspection_ca: bytes  # the bureau's public key for inspector certificates

    @property
    def card_no(self) -> bytes:
        return self.keys.card_no

    @property
    def machine_no(self) -> str:
        return self.identity["machine_no"]

    @property
    def public_key(self) -> bytes:
        return self.keys.public_key

    def __repr__(self) -> str:
        return "FiscalCardData(card_no=%s, machine_no=%s)" % (self.card_no.hex(), self.machine_no)


@dataclass(frozen=True, repr=False)
class TillKeys:
    """One till a user card serves (EF06) and the two registration keys it needs for it."""

    machine_no: str
    fiscal_card_no: bytes
    reg_fc: bytes
    reg_uc: bytes


@dataclass(frozen=True, repr=False)
class UserCardData:
    card_no: bytes
    key_id: int
    identity: dict  # UserIdentity fields (EF02; machine_no empty)
    admin_key: bytes  # K_UC_ADMIN
    tills: tuple  # TillKeys
    tax_items: list  # EF03

    def __repr__(self) -> str:
        return "UserCardData(card_no=%s, tills=%d)" % (self.card_no.hex(), len(self.tills))


@dataclass(frozen=True, repr=False)
class ManagementCardData:
    card_no: bytes
    certificate: bytes  # ManagementCertificate (EF01)
    seed: bytes  # Ed25519 private key seed, kept inside the card
    pin: bytes | None  # 8 bytes, or None: no PIN (simulators and tests only)

    def __repr__(self) -> str:
        return "ManagementCardData(card_no=%s)" % self.card_no.hex()
