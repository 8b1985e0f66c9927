"""Tax-hall stations over the bureau database (gateway.db): registration, the filing window, invoice sales,
audit read-outs, referrals, the 一户式 export.  docs/GATEWAY.md describes them and their order.

    st = Station(open_store(), keystore, name="window-3")
    register_taxpayer(st, ...); register_machine(st, ...); issue_cards(st, ...); initialize_till(st, till, ...)
    read_card(st, reader, taxpayer_no); file(st, reader, taxpayer_no, typed("1234.50"))
    check_old(st, reader, taxpayer_no, machine_no); sell_roll(st, reader, taxpayer_no, machine_no, code=..., ...)
    audit_till(st, till, machine_no); export_taxpayer(st, taxpayer_no)
"""

from .audit import AuditResult, analyse, audit_till, read_journal
from .common import Refused, Station
from .export import export_taxpayer
from .filing import CardReading, Outcome, decide, decide_batch, file, read_card
from .income import DeclaredIncome, load as load_income, typed
from .referrals import assign, close, list_referrals
from .registry import initialize_till, issue_cards, register_machine, register_taxpayer, sim_personaliser
from .sales import RollAccount, check_old, sell_roll

__all__ = [
    "AuditResult", "CardReading", "DeclaredIncome", "Outcome", "Refused", "RollAccount", "Station", "analyse",
    "assign", "audit_till", "check_old", "close", "decide", "decide_batch", "export_taxpayer", "file", "initialize_till",
    "issue_cards", "list_referrals", "load_income", "read_card", "read_journal", "register_machine",
    "register_taxpayer", "sell_roll", "sim_personaliser", "typed",
]
