"""The management card (税务管理卡 / 检查卡, DF CHECK01): an inspector's proof of authority.

It holds its certificate (EF01: card no., inspector, bureau, validity, rights, public key, signed by the
bureau) and the matching Ed25519 private key, which never leaves it.  INTERNAL AUTHENTICATE signs a
challenge from the fiscal card and answers certificate + signature (an InspectorProof), which the till
relays to the fiscal card's EXTERNAL AUTHENTICATE.  Docs: docs/CARDS.md, "Management card".

The inspector's PIN (8 bytes, set at issuance; ASCII digits padded with FF) must be presented with
VERIFY (P2 = 01) before INTERNAL AUTHENTICATE (6982 otherwise); 3 wrong PINs block it (63C2, 63C1,
6983).  VERIFY without data answers 9000 when verified, else 63Cx (tries left).  A card issued without
a PIN (empty) needs no VERIFY: for simulators and tests only.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from protocol import cardauth
from protocol import apdu
from protocol import cardfiles

from .iso import (
    PIN_TRIES, SW_CONDITIONS, SW_PIN_BLOCKED, SW_SECURITY, SW_WRONG_LENGTH, CardState, FileSpec, Refuse,
    Session, SimCard, sw_pin_wrong,
)

PIN_REF = 0x01


@dataclass(kw_only=True)
class ManagementState(CardState):
    card_no: bytes
    certificate: bytes  # EF01, ManagementCertificate
    seed: bytes  # Ed25519 private key seed
    pin: bytes = b""  # empty: no PIN
    pin_tries: int = PIN_TRIES


@dataclass(kw_only=True)
class ManagementSession(Session):
    pin_ok: bool = False


class ManagementCard(SimCard):
    KIND = "management"
    DF_NAME = apdu.DF_MANAGEMENT
    FILES = {cardfiles.MGMT_EF_CERTIFICATE: FileSpec(cardfiles.MGMT_EF_CERTIFICATE, apdu.ManagementCertificate)}
    SESSION = ManagementSession
    state: ManagementState
    session: ManagementSession

    @classmethod
    def issued(cls, data, *, rng=None) -> "ManagementCard":
        """A blank card personalised with protocol.personalisation.ManagementCardData."""
        return cls(ManagementState(card_no=bytes(data.card_no), certificate=bytes(data.certificate),
                                   seed=bytes(data.seed), pin=bytes(data.pin or b"")), rng=rng)

    def _extra_handlers(self):
        return {
            (apdu.CLA_ISO, apdu.INS_VERIFY): self._verify,
            (apdu.CLA_ISO, apdu.INS_INTERNAL_AUTHENTICATE): self._internal_authenticate,
        }

    def read_file(self, fid: int) -> bytes:
        return self.state.certificate

    def _verify(self, cmd) -> None:
        # R-INSPECTION: the inspector proves the card is theirs with its PIN (limited tries)
        self.need_p1p2(cmd, 0, PIN_REF)
        s = self.state
        if not s.pin:
            raise Refuse(SW_CONDITIONS)
        if s.pin_tries == 0:
            raise Refuse(SW_PIN_BLOCKED)
        if not cmd.data:  # status query
            if self.session.pin_ok:
                return
            raise Refuse(sw_pin_wrong(s.pin_tries))
        if len(cmd.data) != len(s.pin):
            raise Refuse(SW_WRONG_LENGTH)
        if not hmac.compare_digest(cmd.data, s.pin):
            s.pin_tries -= 1
            self.session.pin_ok = False
            raise Refuse(sw_pin_wrong(s.pin_tries) if s.pin_tries else SW_PIN_BLOCKED)
        s.pin_tries = PIN_TRIES
        self.session.pin_ok = True

    def _internal_authenticate(self, cmd) -> bytes:
        # R-INSPECTION, R-CLOCK-FORWARD: the till proves the card genuine before it inspects or sets the clock
        self.need_p1p2(cmd)
        challenge = self.need_len(cmd, apdu.CHALLENGE_LEN)
        s = self.state
        if s.pin:
            if s.pin_tries == 0:
                raise Refuse(SW_PIN_BLOCKED)
            if not self.session.pin_ok:
                raise Refuse(SW_SECURITY)
        return s.certificate + cardauth.sign_challenge(s.seed, challenge, s.card_no)
