"""gateway.link.TillClient picks request ids the till accepts: before its first mutating request it
resumes from max(its stored counter, GET_STATUS.last_rid) + 1, keeps the counter in a state file per
till machine number across restarts, survives a folder it cannot write, resumes again after
LINK_RID_STALE, and waits through keep-alives."""

import os
from pathlib import Path

import pytest

from gateway.link import TillClient, default_rid_dir
from testbed.simtill import SimTill

MACHINE = "1234567890123456"


@pytest.fixture
def sim(tmp_path):
    with SimTill(tmp_path / "till", "cpython") as s:
        s.rtc.set(20260105, 90000)
        yield s


def test_a_fresh_client_resumes_above_the_tills_last_executed_id(sim, tmp_path):
    with TillClient(sim.port, rid_dir=tmp_path / "a", first_rid=500_000) as a:
        a.call_ok("INITIALIZE", dict(date=20260105, time=90000))
        used = a._rid
    with TillClient(sim.port, rid_dir=tmp_path / "b", first_rid=1) as b:  # lost its counter
        assert b.call_ok("GET_STATUS").last_rid == used  # read-only calls need no resuming
        assert b.call("DAILY_CLOSE")[0] == 0  # not LINK_RID_STALE
        assert b._rid > used
        assert b.call_ok("GET_STATUS").last_rid == b._rid - 1  # the GET_STATUS took the next id


def test_the_counter_is_kept_per_till_in_a_state_file_across_restarts(sim, tmp_path):
    folder = tmp_path / "rids"
    with TillClient(sim.port, rid_dir=folder, first_rid=1) as a:
        a.call_ok("INITIALIZE", dict(date=20260105, time=90000))
    stored = int((folder / ("%s.rid" % MACHINE)).read_text())
    (folder / ("%s.rid" % MACHINE)).write_text("%d\n" % (stored + 1000))  # ahead of the till
    with TillClient(sim.port, rid_dir=folder, first_rid=1) as b:
        b.call_ok("DAILY_CLOSE")
        assert b.call_ok("GET_STATUS").last_rid == stored + 1001
    assert int((folder / ("%s.rid" % MACHINE)).read_text()) == stored + 1001
    assert [p.name for p in folder.iterdir()] == ["%s.rid" % MACHINE]  # no temporary file left


def test_a_damaged_state_file_is_ignored_and_the_till_still_resumes_the_counter(sim, tmp_path):
    folder = tmp_path / "rids"
    folder.mkdir()
    (folder / ("%s.rid" % MACHINE)).write_text("not a number")
    with TillClient(sim.port, rid_dir=folder, first_rid=1) as c:
        c.call_ok("INITIALIZE", dict(date=20260105, time=90000))
        c.call_ok("DAILY_CLOSE")


def test_a_folder_that_cannot_be_written_is_no_error(sim, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with TillClient(sim.port, rid_dir=blocker / "rids") as c:  # mkdir under a file fails
        c.call_ok("INITIALIZE", dict(date=20260105, time=90000))
        c.call_ok("DAILY_CLOSE")
        assert c.rid_problem and "in memory" in c.rid_problem


def test_after_stale_the_client_resumes_and_sends_once_more_with_a_fresh_id(sim, tmp_path):
    with TillClient(sim.port, rid_dir=False, first_rid=100) as a, \
            TillClient(sim.port, rid_dir=False, first_rid=100) as b:
        a.call_ok("INITIALIZE", dict(date=20260105, time=90000))
        b.call_ok("GET_STATUS")
        b.resumed = True  # b believes its counter is current; a moves the till's id on
        a._rid += 50
        a.call_ok("DAILY_CLOSE")
        assert b.call("DAILY_CLOSE")[0] == 0  # refused as stale, resumed, sent again: done
        assert b._rid > a._rid


def test_the_default_folder_is_documented_and_chosen_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FISCAL_RID_DIR", str(tmp_path / "x"))
    assert default_rid_dir() == tmp_path / "x"
    monkeypatch.delenv("FISCAL_RID_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert default_rid_dir() == tmp_path / "state" / "fiscal-toolkit" / "request-ids"
    monkeypatch.delenv("XDG_STATE_HOME")
    assert default_rid_dir() == Path(os.path.expanduser("~")) / ".local/state/fiscal-toolkit/request-ids"


def test_keepalives_of_the_pending_request_restart_the_timer_and_others_are_ignored(monkeypatch):
    """A scripted loopback line: a keep-alive of another request, one of ours, then our reply.  Neither
    keep-alive is taken for the reply; ours is counted (it restarted the reply timer)."""
    from protocol import frame
    with TillClient("loop://", rid_dir=False, first_rid=10, timeout=5.0) as c:
        rid = 11
        c.port.write(frame.build_frame(frame.KIND_KEEPALIVE, 0x01, 999, 0, b""))
        c.port.write(frame.build_frame(frame.KIND_KEEPALIVE, 0x01, rid, 0, b""))
        c.port.write(frame.reply(0x01, rid, 0x0101, b""))  # status: not OK, no payload to parse
        status, _ = c.call(0x01, payload=b"")  # the loopback also echoes our request: skipped
        assert status == 0x0101 and c.keepalives == 1


def test_keepalives_then_silence_is_explained_in_one_sentence():
    from gateway.link import NoReplyError
    from protocol import frame

    class Line:
        """A port that delivers one keep-alive of the pending request and then nothing."""

        def __init__(self, port):
            self.port, self.sent = port, False
            self.in_waiting = 0

        def write(self, data):
            return len(data)

        def flush(self):
            pass

        def read(self, n):
            if not self.sent:
                self.sent = True
                return frame.build_frame(frame.KIND_KEEPALIVE, 0x01, 11, 0, b"")
            return self.port.read(n)

        def close(self):
            self.port.close()

    c = TillClient("loop://", rid_dir=False, first_rid=10, timeout=0.2, retries=0)
    c.port = Line(c.port)
    with c, pytest.raises(NoReplyError, match="1 keep-alive"):
        c.call("GET_INFO")
