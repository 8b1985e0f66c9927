"""Card files (domain §2, "Card files"): the elementary files of the fiscal and user cards.

File ids are two bytes under each card's DF (`TSAM01`, `TID01`, `CHECK01`).  Transparent files are read
with READ BINARY; record files (one record per till, declaration, roll...) with READ RECORD.  The cards
issue may extend these; every layout lives here.
"""

from __future__ import annotations

import construct as cs

from .apdu import CONTROL_CIPHERTEXT_LEN, DataCollectData, ManagementCertificate, RollData
from .types import (
    BUREAU_CODE_LEN, CARD_NO_LEN, FISCAL_CODE_LEN, INVOICE_CODE_LEN, MAC_LEN, MACHINE_NO_LEN, SIGNATURE_LEN,
    TAX_ITEMS, TAXPAYER_NAME_LEN, TAXPAYER_NO_LEN, Amount, BcdDate, Controls, Digits, TaxItem, Text, Totals,
)

# ---- fiscal card (税控卡), DF TSAM01 ---------------------------------------------------------------
FISCAL_EF_CONTROLS = 0xEF01
FISCAL_EF_IDENTITY = 0xEF02
FISCAL_EF_TODAY = 0xEF03
FISCAL_EF_DECLARATION = 0xEF04
FISCAL_EF_ROLL = 0xEF05

FiscalControls = cs.Struct(
    "controls" / Controls,
    "tax_items" / cs.Array(TAX_ITEMS, TaxItem),
    "period_end" / BcdDate,  # end of the declared period the last UPDATE_CONTROLS cleared (0: none yet)
    "sequence" / cs.Int32ub,  # sequence number of that control data (0: as issued)
)

FILING_MONTHLY = 1
FILING_QUARTERLY = 2
FiscalIdentity = cs.Struct(
    "card_no" / cs.Bytes(CARD_NO_LEN),
    "machine_no" / Digits(MACHINE_NO_LEN),
    "taxpayer_no" / Digits(TAXPAYER_NO_LEN),  # 纳税人识别号
    "taxpayer_id" / Digits(TAXPAYER_NO_LEN),  # registration / identification number
    "taxpayer_name" / Text(TAXPAYER_NAME_LEN),
    "bureau_code" / Digits(BUREAU_CODE_LEN),
    "filing_mode" / cs.Int8ub,  # FILING_*
    "valid_from" / BcdDate,
    "valid_to" / BcdDate,
)

FiscalToday = cs.Struct(
    "date" / BcdDate,
    "normal_count" / cs.Int32ub,
    "return_count" / cs.Int32ub,
    "void_count" / cs.Int32ub,
    "normal_total" / Amount,
    "return_total" / Amount,
    "last_number" / cs.Int32ub,
    "last_fiscal_code" / cs.Bytes(FISCAL_CODE_LEN),
    "closed_date" / BcdDate,  # last day signed by DAILY_COLLECT_SIGN (0: none)
    "cumulative_normal" / Amount,  # since the last clear-unlock: what the cumulative limit applies to
    "cumulative_return" / Amount,  # ... and the return limit
)

DECL_NONE = 0
DECL_SIGNED = 1  # DECLARE_DUTY done, waiting for the bureau's clear-unlock
DECL_CLEARED = 2
FiscalDeclaration = cs.Struct(
    "status" / cs.Int8ub,  # DECL_*
    "start" / BcdDate,
    "end" / BcdDate,
    "totals" / Totals,
    "mac" / cs.Bytes(MAC_LEN),
    "signature" / cs.Bytes(SIGNATURE_LEN),
)

FiscalRoll = cs.Struct(
    "code" / Digits(INVOICE_CODE_LEN),  # empty: no roll loaded
    "start" / cs.Int32ub,
    "end" / cs.Int32ub,
    "next" / cs.Int32ub,
)

# ---- user card (用户卡), DF TID01 ------------------------------------------------------------------
USER_EF_CONTROLS = 0xEF01  # record file: one record per till served
USER_EF_IDENTITY = 0xEF02  # card no. and taxpayer (machine_no empty: a user card may serve several tills)
USER_EF_TAX_ITEMS = 0xEF03
USER_EF_DECLARATIONS = 0xEF04  # record file
USER_EF_ROLLS = 0xEF05  # record file: rolls bought, not yet distributed
USER_EF_TILLS = 0xEF06  # record file
USER_EF_LAST_ROLL = 0xEF07  # the last distributed roll, for power-fail recovery

UserControls = cs.Struct(
    "machine_no" / Digits(MACHINE_NO_LEN),
    "key_id" / cs.Int8ub,
    "ciphertext" / cs.Bytes(CONTROL_CIPHERTEXT_LEN),
    "mac2" / cs.Bytes(MAC_LEN),
)
UserIdentity = FiscalIdentity
UserTaxItems = cs.Struct("tax_items" / cs.Array(TAX_ITEMS, TaxItem))
UserDeclaration = cs.Struct("status" / cs.Int8ub, "record" / DataCollectData)  # DECL_* as on the fiscal card
UserRoll = cs.Struct("machine_no" / Digits(MACHINE_NO_LEN), "roll" / RollData)  # the till the roll's MAC is for
UserTill = cs.Struct("machine_no" / Digits(MACHINE_NO_LEN), "card_no" / cs.Bytes(CARD_NO_LEN))
UserLastRoll = UserRoll  # empty (all zero) until the first DISTRIBUTE_INVOICE_NB

# ---- management card (税务管理卡), DF CHECK01 ------------------------------------------------------
MGMT_EF_CERTIFICATE = 0xEF01

FILES = {
    "fiscal": {
        FISCAL_EF_CONTROLS: ("CONTROLS", FiscalControls),
        FISCAL_EF_IDENTITY: ("IDENTITY", FiscalIdentity),
        FISCAL_EF_TODAY: ("TODAY", FiscalToday),
        FISCAL_EF_DECLARATION: ("DECLARATION", FiscalDeclaration),
        FISCAL_EF_ROLL: ("ROLL", FiscalRoll),
    },
    "user": {
        USER_EF_CONTROLS: ("CONTROLS", UserControls),
        USER_EF_IDENTITY: ("IDENTITY", UserIdentity),
        USER_EF_TAX_ITEMS: ("TAX_ITEMS", UserTaxItems),
        USER_EF_DECLARATIONS: ("DECLARATIONS", UserDeclaration),
        USER_EF_ROLLS: ("ROLLS", UserRoll),
        USER_EF_TILLS: ("TILLS", UserTill),
        USER_EF_LAST_ROLL: ("LAST_ROLL", UserLastRoll),
    },
    "management": {
        MGMT_EF_CERTIFICATE: ("CERTIFICATE", ManagementCertificate),
    },
}
