"""A route's limits across runs: slots and the submit rate in the ledger (SQLite and PostgreSQL),
and the lanes that hold a slot across a run's consecutive clips."""

import contextlib
import json
import subprocess
import sys
import threading
import time

import pytest

from vidbatch.errors import RunStopped
from vidbatch.lanes import Lanes, LanesClosed
from vidbatch.ledger_store import LedgerStore

JOBS = "vidbatch-sora-jobs"


@pytest.fixture
def store(ledger_url) -> LedgerStore:
    return LedgerStore(ledger_url)


def test_slots_are_capped_given_back_and_those_of_a_dead_run_come_back(store):
    with store.running("a"), store.running("b"):
        assert store.take_slot(JOBS, 2, "a", "a:1") and store.take_slot(JOBS, 2, "b", "b:1")
        assert not store.take_slot(JOBS, 2, "b", "b:2")  # both held by live runs
        assert store.take_slot("vidbatch-other-jobs", 2, "b", "b:2")  # another route's limit is its own
        store.give_slot(JOBS, "a:1")
        assert store.slots_held(JOBS) == 1 and store.take_slot(JOBS, 2, "b", "b:3")
    assert store.slots_held(JOBS) == 0  # both runs ended: what they held is free
    with store.running("c"):
        assert store.take_slot(JOBS, 2, "c", "c:1") and store.take_slot(JOBS, 2, "c", "c:2")


def test_a_killed_runs_slots_are_free_at_once_on_its_own_host(ledger_url):
    code = ("import time\nfrom vidbatch.ledger_store import LedgerStore\n"
            f"s = LedgerStore({ledger_url!r})\n"
            "with s.running('doomed'):\n"
            f"    assert s.take_slot({JOBS!r}, 1, 'doomed', 'doomed:1')\n"
            "    print('up', flush=True); time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    store = LedgerStore(ledger_url)
    with store.running("next"):
        assert not store.take_slot(JOBS, 1, "next", "next:1")
        child.kill()
        child.wait()
        assert store.take_slot(JOBS, 1, "next", "next:1")  # nobody gave it back: its run is dead


def test_the_submit_rate_allows_a_minutes_burst_then_drains(store):
    name = "vidbatch-sora-submits"
    assert [store.take_submit(name, 6, now=100.0) for _ in range(6)] == [0.0] * 6  # a minute's worth at once
    assert store.take_submit(name, 6, now=100.0) == pytest.approx(10.0)  # the next fits in 60/6 s
    assert store.take_submit(name, 6, now=105.0) == pytest.approx(5.0)  # nothing counted while refused
    assert store.take_submit(name, 6, now=110.0) == 0.0
    assert store.take_submit(name, 6, now=50.0) == pytest.approx(10.0)  # a clock behind: no time has passed
    slow = "vidbatch-slow-submits"  # under one a minute: a burst of one, then one per 120 s
    assert store.take_submit(slow, 0.5, now=0.0) == 0.0
    assert store.take_submit(slow, 0.5, now=60.0) == pytest.approx(60.0)


HOLDER = """
import json, sys, time
from vidbatch.ledger_store import LedgerStore
url, who, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
store, held = LedgerStore(url), []
with store.running(who):
    for n in range(rounds):
        while not store.take_slot("vidbatch-sora-jobs", 3, who, f"{who}:{n}"):
            time.sleep(0.005)
        start = time.time()
        time.sleep(0.01)
        held.append((start, time.time()))
        store.give_slot("vidbatch-sora-jobs", f"{who}:{n}")
print(json.dumps(held))
"""


def test_processes_at_once_never_hold_more_slots_than_the_limit(ledger_url):
    LedgerStore(ledger_url)  # migrated once, before the crowd
    procs = [subprocess.Popen([sys.executable, "-c", HOLDER, ledger_url, f"p{n}", "25"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for n in range(5)]
    results = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    edges = sorted(edge for out, _ in results for start, end in json.loads(out) for edge in ((start, 1), (end, -1)))
    level = peak = 0
    for _, step in edges:  # each interval lies inside its slot's holding, so this peak is at most the real one
        level += step
        peak = max(peak, level)
    assert 1 <= peak <= 3
    assert LedgerStore(ledger_url).slots_held("vidbatch-sora-jobs") == 0


class Keeper:
    """A shared limit of `capacity` slots (what the ledger is to lanes), counting what it hands out."""

    def __init__(self, capacity: int):
        self.free = threading.Semaphore(capacity)
        self.lock = threading.Lock()
        self.held = self.taken = self.peak = 0
        self.fail_next: Exception | None = None

    @contextlib.contextmanager
    def slot(self):
        if self.fail_next:
            error, self.fail_next = self.fail_next, None
            raise error
        self.free.acquire()
        with self.lock:
            self.held += 1
            self.taken += 1
        try:
            yield
        finally:
            with self.lock:
                self.held -= 1
            self.free.release()


def test_a_lane_serves_a_runs_clips_one_after_another_with_one_slot():
    keeper = Keeper(4)
    lanes = Lanes(keeper.slot, width=4, linger_s=600)
    for _ in range(20):
        with lanes.lane():
            assert keeper.held == 1
    assert keeper.taken == 1  # one hand-off through the shared limit, not twenty
    assert lanes.close() is True
    assert keeper.held == 0 and lanes.held() == 0


def test_two_runs_share_the_limit_and_never_use_more_than_it_together():
    keeper, using, peak, lock = Keeper(3), [0], [0], threading.Lock()
    runs = [Lanes(keeper.slot, width=3, linger_s=0.0), Lanes(keeper.slot, width=3, linger_s=0.0)]

    def clip(lanes: Lanes) -> None:
        with lanes.lane():
            with lock:
                using[0] += 1
                peak[0] = max(peak[0], using[0])
            time.sleep(0.005)
            with lock:
                using[0] -= 1

    threads = [threading.Thread(target=clip, args=(runs[n % 2],)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads)
    assert 1 <= peak[0] <= 3
    for lanes in runs:
        lanes.close()
    assert keeper.held == 0


def test_a_stop_wakes_the_waiting_clips_and_the_lanes_give_their_slots_back():
    keeper = Keeper(1)
    lanes = Lanes(keeper.slot, width=1, linger_s=600)
    inside, release, outcome = threading.Event(), threading.Event(), []

    def first() -> None:
        with lanes.lane():
            inside.set()
            release.wait(60)

    def second() -> None:
        try:
            with lanes.lane():
                outcome.append("ran")
        except RunStopped as err:
            outcome.append(str(err))

    holder, waiter = threading.Thread(target=first), threading.Thread(target=second)
    holder.start()
    assert inside.wait(60)
    waiter.start()
    lanes.halt(lambda: RunStopped("stopped"))
    waiter.join(60)
    assert outcome == ["stopped"]
    release.set()
    holder.join(60)
    lanes.close()
    assert keeper.held == 0


def test_a_limit_that_cannot_be_reached_fails_the_clip_waiting_for_it():
    keeper = Keeper(1)
    keeper.fail_next = ConnectionError("ledger unreachable")
    lanes = Lanes(keeper.slot, width=1)
    with pytest.raises(ConnectionError, match="ledger unreachable"):
        with lanes.lane():
            pass
    with lanes.lane():  # the next clip tries again
        assert keeper.held == 1
    lanes.close()


def test_a_lane_still_waiting_for_a_slot_gives_up_when_the_run_ends():
    keeper, waiting = Keeper(1), threading.Event()
    keeper.free.acquire()  # another run holds the only slot

    def slot_or_give_up():
        @contextlib.contextmanager
        def take():
            waiting.set()
            while not keeper.free.acquire(timeout=0.01):
                if lanes.closed:
                    raise LanesClosed()
            keeper.free.release()
            yield
        return take()

    lanes = Lanes(slot_or_give_up, width=1)
    clip = threading.Thread(target=lambda: pytest.raises(RunStopped, lanes.lane().__enter__))
    clip.start()
    assert waiting.wait(60)
    lanes.halt(lambda: RunStopped("stopped"))  # the clip leaves; its lane is still asking
    clip.join(60)
    assert lanes.close() is True  # the lane asking for a slot has given up
