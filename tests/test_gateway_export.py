"""一户式 export: one taxpayer's whole record in one self-describing JSON document, with no key material."""
from __future__ import annotations

import json

from gateway import stations
from gateway.stations.income import DeclaredIncome
from gateway.verify import verify_declaration
from protocol.crypto import TEST_MASTER_KEYS
from pg import hall, pg_server, pg_url, store  # noqa: F401  (fixtures)


def test_the_export_holds_the_whole_record_and_can_be_checked_on_its_own(hall):
    hall.ready_to_file()
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income - 1), explanation="typo")
    stations.file(hall.st, hall.reader(), hall.taxpayer_no, DeclaredIncome(hall.income))
    hall.rig.ok("CLEAR_UNLOCK")
    stations.audit_till(hall.st, hall.client, hall.machine_no)
    doc = json.loads(json.dumps(stations.export_taxpayer(hall.st, hall.taxpayer_no), ensure_ascii=False))
    assert (doc["format"], doc["version"]) == ("ftk-taxpayer", 1)
    assert doc["taxpayer"]["taxpayer_no"] == hall.taxpayer_no and len(doc["tax_items"]) == 2
    (m,) = doc["machines"]
    assert m["state"] == "initialized" and {c["kind"] for c in m["cards"]} == {"fiscal", "user"}
    (d,) = doc["declarations"]
    assert [c["outcome"] for c in d["comparisons"]] == ["shortfall", "accepted"]
    assert d["clear_unlock"]["state"] == "written" and len(d["surcharges"]) == 1
    assert len(doc["rolls"]) == 1 and len(doc["referrals"]) == 1 and len(doc["audits"]) == 1
    kinds = [e["kind"] for e in doc["events"]]
    for kind in ("taxpayer.registered", "machine.registered", "cards.issued", "till.initialized", "roll.sold",
                 "roll.written", "declaration.received", "filing.compared", "referral.opened", "surcharge.assessed",
                 "clear-unlock.issued", "clear-unlock.written", "audit.stored"):
        assert kind in kinds, kind
    # independently checkable: the signed declaration bytes verify with the key store alone
    assert verify_declaration(hall.st.keystore, bytes.fromhex(d["record_hex"]), m["machine_no"]).ok
    text = json.dumps(doc)
    assert not any(k.key.hex() in text for k in TEST_MASTER_KEYS.values())  # never key material


def test_an_unknown_taxpayer_is_refused(hall):
    import pytest
    from gateway.stations.common import Refused
    with pytest.raises(Refused, match="no taxpayer"):
        stations.export_taxpayer(hall.st, "NOPE")
