"""The state file as a hostile local user and a broken disk would have it:
links swapped in under us, foreign files at the path, forged contents, a
held lock. Real files, real processes; the victim file must never change."""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Iterator

import pytest

from check_fastcgi.fpm.rates import default_state_dir, rates, state_file_name
from check_fastcgi.statefile import MAX_BYTES, StateFileError, open_state
from tests.conftest import assert_plugin_output, run_check
from tests.fpm import wait_until
from tests.pages import OWN, page, serve
from tests.users import LocalUser

COUNTERS = {"accepted_conn": 100, "max_children_reached": 1, "slow_requests": 0}
NOBODY = 65534
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own files as another user")


def soon(seconds: float = 5.0) -> float:
    return time.monotonic() + seconds


def rate(path: Path, counters: dict = COUNTERS, at: float = 1000.0, **kw: object) -> tuple:
    return rates(path, 1700, counters, at, deadline=soon(), **kw)  # type: ignore[arg-type]


def sample_document(**sample: object) -> str:
    base = {"start_time": 1700, "time": 1000.0, "counters": dict(COUNTERS)}
    base.update(sample)
    return json.dumps({"check_fastcgi_state": 1, "sample": base})


@pytest.fixture
def private(tmp_path: Path) -> Path:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    return directory


# --- the directory -------------------------------------------------------------------


def test_a_world_writable_sticky_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    found, why = rate(shared / "s.json")
    assert found == {}
    assert why == (
        f"no rates: state directory {shared} is writable by others (drwxrwxrwt): "
        "use a private directory (chmod go-w, or another --state-file)"
    )
    assert list(shared.iterdir()) == []


def test_a_group_writable_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "g"
    shared.mkdir()
    shared.chmod(0o770)
    assert "is writable by others" in rate(shared / "s.json")[1]


def test_a_symlinked_directory_is_refused(tmp_path: Path, private: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(private)
    why = rate(link / "s.json")[1]
    assert why == (
        f"no rates: state directory {link} is a symbolic link; refusing to follow it: "
        "remove the link or choose another --state-file"
    )
    assert list(private.iterdir()) == []


@as_root
def test_a_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    why = rate(theirs / "s.json")[1]
    assert why == f"no rates: state directory {theirs} belongs to uid {NOBODY}: use a directory of your own"


@as_root
def test_a_planted_default_directory_is_refused(tmp_path: Path) -> None:
    """/var/tmp/check_fastcgi-UID made by someone else first."""
    planted = tmp_path / "var-tmp" / "check_fastcgi-0"
    planted.mkdir(parents=True, mode=0o700)
    os.chown(planted, NOBODY, NOBODY)
    assert "belongs to uid 65534" in rate(planted / "s.json", private_dir=True)[1]


# --- the file at the path --------------------------------------------------------------


def test_a_symlinked_state_file_is_refused(private: Path) -> None:
    victim = private.parent / "victim"
    victim.write_text("precious")
    state = private / "s.json"
    state.symlink_to(victim)
    for private_dir in (False, True):
        why = rate(state, private_dir=private_dir)[1]
        assert why == f"no rates: state file {state} is a symbolic link; refusing it"
    assert victim.read_text() == "precious"


def test_a_hard_link_is_refused(private: Path) -> None:
    victim = private / "victim"
    victim.write_text(sample_document())
    os.link(victim, private / "s.json")
    why = rate(private / "s.json", private_dir=True)[1]
    assert (
        why
        == f"no rates: state file {private / 's.json'} has 2 hard links; refusing a file that may be another's"
    )
    assert victim.read_text() == sample_document()


@as_root
def test_a_file_of_another_user_is_refused(private: Path) -> None:
    state = private / "s.json"
    state.write_text(sample_document())
    os.chown(state, NOBODY, NOBODY)
    why = rate(state, private_dir=True)[1]
    assert why == f"no rates: state file {state} belongs to uid {NOBODY}, not to us (uid 0)"


def test_a_fifo_does_not_hang_and_is_refused(private: Path) -> None:
    state = private / "s.json"
    os.mkfifo(state)
    started = time.monotonic()
    why = rate(state)[1]
    assert time.monotonic() - started < 2
    assert why == f"no rates: state file {state} is not a regular file; refusing it"


def test_a_file_that_is_not_ours_is_never_truncated(private: Path) -> None:
    """--state-file naming a file of other content (the field report: 49
    bytes became 0)."""
    state = private / "notes.txt"
    state.write_text("an operator's notes, 49 bytes long, to be kept..\n")
    why = rate(state)[1]
    assert why == (
        f"no rates: state file {state} holds something else (49 bytes, not a check_fastcgi state file); "
        "refusing to overwrite it: remove it or choose another --state-file"
    )
    assert state.read_text() == "an operator's notes, 49 bytes long, to be kept..\n"


def test_an_empty_file_is_taken_over(private: Path) -> None:
    state = private / "s.json"
    state.touch(mode=0o600)
    assert rate(state) == ({}, "no rates yet: first run")
    assert json.loads(state.read_text())["sample"]["counters"] == COUNTERS


def test_a_state_file_from_the_previous_release_is_read(private: Path) -> None:
    state = private / "s.json"
    state.write_text(json.dumps({"sample": {"start_time": 1700, "time": 990.0, "counters": COUNTERS}}))
    found, why = rate(state, {**COUNTERS, "accepted_conn": 120})
    assert why is None and found["accepted_conn_rate"] == 2.0


def test_new_samples_are_renamed_into_place_and_private(private: Path) -> None:
    state = private / "s.json"
    rate(state)
    first = state.stat().st_ino
    rate(state, at=1010.0)
    assert state.stat().st_ino != first  # a new file each time, never rewritten in place
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert sorted(p.name for p in private.iterdir()) == ["s.json", "s.json.lock"]


# --- forged or corrupt contents ------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param("[" * 100_000, "was larger than 65536 bytes; replaced", id="deep-nesting"),
        pytest.param("[" * 60_000, "was not valid JSON; replaced", id="deep-nesting-under-cap"),
        pytest.param(
            sample_document(counters={**COUNTERS, "accepted_conn": 1e308}),
            "held no valid sample; replaced",
            id="huge-float",
        ),
        pytest.param(sample_document(time=float("nan")), "was not valid JSON; replaced", id="nan"),
        pytest.param(sample_document(time=float("inf")), "was not valid JSON; replaced", id="infinity"),
        pytest.param(sample_document(start_time=True), "held no valid sample; replaced", id="bool"),
        pytest.param(
            sample_document(counters={**COUNTERS, "accepted_conn": 10**30}),
            "held no valid sample; replaced",
            id="past-64-bits",
        ),
        pytest.param(sample_document(counters=[1, 2]), "held no valid sample; replaced", id="wrong-type"),
        pytest.param(
            '{"sample": "' + "x" * 70_000 + '"}', "was larger than 65536 bytes; replaced", id="padding"
        ),
        pytest.param("\xff\xfe garbage", "was not valid JSON; replaced", id="binary"),
    ],
)
def test_bad_content_is_no_sample_and_is_replaced(private: Path, content: str, why: str) -> None:
    state = private / "s.json"
    state.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert rate(state, private_dir=True) == ({}, f"no rates: state file {state} {why}")
    assert rate(state, {**COUNTERS, "accepted_conn": 120}, at=1010.0, private_dir=True) == (
        {"accepted_conn_rate": 2.0, "max_children_reached_rate": 0.0, "slow_requests_rate": 0.0},
        None,
    )


def test_a_huge_file_is_not_read_whole(private: Path) -> None:
    """200 MB of padding: at most MAX_BYTES + 1 are read, and it is replaced."""
    state = private / "s.json"
    with state.open("wb") as out:
        out.write(b'{"sample": "')
        out.truncate(200 * 1024 * 1024)  # sparse: cheap to make
    assert (
        rate(state, private_dir=True)[1]
        == f"no rates: state file {state} was larger than {MAX_BYTES} bytes; replaced"
    )
    assert state.stat().st_size < 1000


def test_a_timestamp_in_the_future_does_not_turn_rates_off_for_good(private: Path) -> None:
    state = private / "s.json"
    now = time.time()
    state.write_text(sample_document(time=now + 10 * 365 * 86400))
    first = rates(state, 1700, COUNTERS, now, deadline=soon())
    assert first == ({}, "no rates: the stored sample was from the future (clock went back?); replaced")
    later = rates(state, 1700, {**COUNTERS, "accepted_conn": 130}, now + 10, deadline=soon())
    assert later[1] is None and later[0]["accepted_conn_rate"] == 3.0


def test_rates_are_always_finite_numbers(private: Path) -> None:
    state = private / "s.json"
    for content in (sample_document(time=1e-300), sample_document(time=-5.0), sample_document(time=1e308)):
        state.write_text(content)
        found, _ = rate(state, {**COUNTERS, "accepted_conn": 2**63}, at=time.time(), private_dir=True)
        assert all(isinstance(v, float) and math.isfinite(v) for v in found.values()), found


# --- the lock ------------------------------------------------------------------------------------


def test_a_held_lock_costs_the_rates_within_the_deadline(private: Path) -> None:
    state = private / "s.json"
    rate(state)
    with open(private / "s.json.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        started = time.monotonic()
        found, why = rates(state, 1700, COUNTERS, 1010.0, deadline=started + 1.0)
        waited = time.monotonic() - started
    assert found == {}
    assert why == f"no rates: state file {state} is locked by another process (a run still going?)"
    assert 0.5 < waited < 1.0


def test_a_symlinked_lock_file_is_refused(private: Path) -> None:
    victim = private.parent / "victim"
    victim.write_text("precious")
    (private / "s.json.lock").symlink_to(victim)
    assert (
        rate(private / "s.json")[1]
        == f"no rates: lock file {private}/s.json.lock is a symbolic link; refusing it"
    )
    assert victim.read_text() == "precious"


# --- the race ---------------------------------------------------------------------------------------

SWAPPER = textwrap.dedent(
    """
    import os, sys, time
    state, victim, stop = sys.argv[1:4]
    spare = state + ".spare"
    deadline = time.monotonic() + 20
    swaps = 0
    while not os.path.exists(stop) and time.monotonic() < deadline:
        for make in (lambda p: os.symlink(victim, p), lambda p: open(p, "w").write("garbage")):
            try:
                make(spare)
                os.replace(spare, state)
                swaps += 1
            except OSError:
                pass
    print(swaps)
    """
)


@pytest.mark.parametrize("private_dir", [False, True], ids=["explicit", "default-dir"])
def test_a_symlink_swapped_in_a_loop_never_reaches_the_victim(private: Path, private_dir: bool) -> None:
    """A second process swaps the state path between a symlink to a victim
    file and a regular file as fast as it can, while the store runs 300
    times or for 2 s. The victim never changes; every run ends in rates or a note."""
    victim = private.parent / "victim"
    victim.write_text("precious, root-owned, 0600")
    victim.chmod(0o600)
    state, stop = private / "s.json", private.parent / "stop"
    swapper = subprocess.Popen(
        [sys.executable, "-c", SWAPPER, str(state), str(victim), str(stop)], stdout=subprocess.PIPE, text=True
    )
    try:
        wait_until(state.exists, 10, "the swapper's first swap")
        outcomes = set()
        runs, until = 0, time.monotonic() + 2
        while time.monotonic() < until or runs < 300:
            _, why = rates(state, 1700, COUNTERS, 1000.0 + 2 * runs, deadline=soon(), private_dir=private_dir)
            outcomes.add((why or "rates").split(state.name)[-1][:40])
            runs += 1
    finally:
        stop.touch()
        swaps = int(swapper.communicate(timeout=30)[0])
    assert swaps >= 10, "the swapper barely ran: the race was not exercised"
    assert victim.read_text() == "precious, root-owned, 0600"
    assert any("symbolic link" in outcome for outcome in outcomes), outcomes


# --- the directory chain, as a real second user would plant it ---------------------------------
#
# The second user's files live in its home (0755) or in a sticky directory
# shared with its group (1770): tmp_path is root's alone. The shared one is
# not world-writable, so fs.protected_symlinks (on in most kernels) does not
# stop the old code from following the user's links: what is tested is the
# store, not a kernel setting.


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """Where the user's links point: a directory of root's that root may
    write to. Nothing may ever appear in it."""
    directory = tmp_path / "target"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def shared(local_user: LocalUser) -> Iterator[Path]:
    """Root's sticky directory that the user's group may write to: like
    /tmp, but not world-writable."""
    directory = Path(tempfile.mkdtemp(prefix="cfcgi-shared-", dir="/tmp"))
    os.chown(directory, 0, local_user.gid)
    directory.chmod(0o1770)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def as_user(user: LocalUser, *command: str) -> None:
    done = user.run(list(command))
    assert done.returncode == 0, done.stderr


def user_link(user: LocalUser, link: Path, to: Path) -> Path:
    as_user(user, "ln", "-s", "--", str(to), str(link))
    assert link.is_symlink() and link.lstat().st_uid == user.uid
    return link


def test_a_users_link_two_levels_below_a_shared_directory_is_refused(
    local_user: LocalUser, target: Path
) -> None:
    """The finding: the user's link in its home under /tmp; root's check ran
    with a --state-file through it and made target/b/s.json. Now the chain
    is refused at the user's home, and nothing is made anywhere."""
    link = user_link(local_user, local_user.home / f"link-{os.urandom(4).hex()}", target)
    state = link / "b" / "s.json"
    try:
        with serve(page(OWN)) as server:
            outcome = run_check("status", *server.args, "--state-file", str(state), "-v")
    finally:
        link.unlink()
    assert_plugin_output(outcome)
    assert outcome.code == 0
    assert (
        f"note: no rates: {local_user.home} (on the path to state directory {link / 'b'}) "
        f"belongs to uid {local_user.uid}: choose another --state-file, in directories of your own or root's"
    ) in outcome.stdout.splitlines()
    assert list(target.iterdir()) == []


@pytest.mark.parametrize("level", ["first", "second", "last"])
def test_a_users_link_anywhere_in_the_chain_is_refused(
    local_user: LocalUser, shared: Path, target: Path, level: str
) -> None:
    """The user's link at each level below a shared sticky directory: refused
    with the link named, whether it is an ancestor or the state directory."""
    above = shared
    if level == "second":
        above = shared / "sub"  # root's, shared like its parent
        above.mkdir()
        os.chown(above, 0, local_user.gid)
        above.chmod(0o1770)
    link = user_link(local_user, above / "link", target)
    state = link / "s.json" if level == "last" else link / "b" / "s.json"
    directory = state.parent
    for private_dir in (False, True):
        why = rate(state, private_dir=private_dir)[1]
        if level == "last":
            assert why == (
                f"no rates: state directory {link} is a symbolic link; refusing to follow it: "
                "remove the link or choose another --state-file"
            )
        else:
            assert why == (
                f"no rates: {link} (on the path to state directory {directory}) is a symbolic link; "
                "refusing to follow it: remove the link or choose another --state-file"
            )
        with pytest.raises(StateFileError, match="symbolic link"):
            open_state(state, deadline=soon(), private_dir=private_dir).__enter__()
    assert list(target.iterdir()) == []


def test_a_users_directory_in_the_chain_is_refused(local_user: LocalUser, shared: Path) -> None:
    """Below a directory of the user's, the user could rename and replace
    whatever root makes: refused before anything is made there."""
    theirs = shared / "theirs"
    as_user(local_user, "mkdir", "-m", "755", str(theirs))
    state = theirs / "a" / "b" / "s.json"
    assert rate(state)[1] == (
        f"no rates: {theirs} (on the path to state directory {state.parent}) belongs to uid "
        f"{local_user.uid}: choose another --state-file, in directories of your own or root's"
    )
    assert list(theirs.iterdir()) == []


def test_a_directory_planted_as_we_make_it_is_refused(
    local_user: LocalUser, shared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user creates the directory between our look and our mkdir (EEXIST):
    it is checked like any other, not taken as ours. The window is a few
    instructions wide, so the user's real mkdir is run from inside ours to
    land in it every time."""
    planted = shared / "new"
    real_mkdir = os.mkdir

    def mkdir_after_the_user(path, mode=0o777, *, dir_fd=None):  # type: ignore[no-untyped-def]
        if os.fspath(path) in ("new", str(planted)):
            as_user(local_user, "mkdir", "-m", "777", str(planted))
        return real_mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir_after_the_user)
    state = planted / "last" / "s.json"
    why = rate(state)[1]
    monkeypatch.undo()
    assert why == (
        f"no rates: {planted} (on the path to state directory {state.parent}) belongs to uid "
        f"{local_user.uid}: use a directory of your own"
    )
    assert list(planted.iterdir()) == []


def test_an_ancestor_others_may_write_to_is_refused_unless_sticky(tmp_path: Path) -> None:
    """Anyone could swap what lies below a world-writable directory; in a
    sticky one (like /tmp) only the owner of an entry may."""
    open_to_all = tmp_path / "open"
    open_to_all.mkdir()
    open_to_all.chmod(0o777)
    state = open_to_all / "mine" / "s.json"
    assert rate(state)[1] == (
        f"no rates: {open_to_all} (on the path to state directory {state.parent}) is writable by others "
        "(drwxrwxrwx) and not sticky: choose another --state-file, or chmod go-w (or +t) it"
    )
    assert list(open_to_all.iterdir()) == []
    open_to_all.chmod(0o1777)
    assert rate(state) == ({}, "no rates yet: first run")


def test_a_file_in_the_chain_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    state = tmp_path / "file" / "d" / "s.json"
    assert rate(state)[1] == (
        f"no rates: {tmp_path / 'file'} (on the path to state directory {state.parent}) "
        "is not a directory: choose another --state-file"
    )
    assert rate(tmp_path / "file" / "s.json")[1] == (
        f"no rates: state directory {tmp_path / 'file'} is not a directory: choose another --state-file"
    )


def test_a_missing_chain_is_made_private_step_by_step(tmp_path: Path) -> None:
    """Three missing directories: each made by us, 0700, a real directory."""
    state = tmp_path / "one" / "two" / "three" / "s.json"
    assert rate(state) == ({}, "no rates yet: first run")
    for directory in (tmp_path / "one", tmp_path / "one" / "two", state.parent):
        info = directory.lstat()
        assert stat.S_ISDIR(info.st_mode), directory
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (os.geteuid(), 0o700), directory
    assert sorted(p.name for p in state.parent.iterdir()) == ["s.json", "s.json.lock"]


def test_dots_and_doubled_slashes_are_normalised_first(tmp_path: Path, target: Path) -> None:
    """ ".." is taken from the name as written, never from a link's target."""
    (tmp_path / "link").symlink_to(target)
    written = f"/{tmp_path}//link/../made/./s.json"
    assert rate(Path(written)) == ({}, "no rates yet: first run")
    assert (tmp_path / "made" / "s.json").is_file()
    assert list(target.iterdir()) == []
    for name in ("", ".", "..", f"{tmp_path}/", f"{tmp_path}/.", f"{tmp_path}/.."):
        with pytest.raises(StateFileError, match="names no file"):
            open_state(name, deadline=soon()).__enter__()


EXCHANGER = textwrap.dedent(
    """
    import ctypes, os, sys, time
    here, there, stop = sys.argv[1:4]
    libc = ctypes.CDLL(None, use_errno=True)
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    deadline = time.monotonic() + 20
    swaps = 0
    while not os.path.exists(stop) and time.monotonic() < deadline:
        if libc.renameat2(AT_FDCWD, here.encode(), AT_FDCWD, there.encode(), RENAME_EXCHANGE) != 0:
            sys.exit("renameat2: " + os.strerror(ctypes.get_errno()))
        swaps += 1
    print(swaps)
    """
)


def test_a_directory_swapped_for_a_link_in_a_loop_never_leads_out(
    local_user: LocalUser, shared: Path, target: Path
) -> None:
    """The user swaps its directory and its link to the target, atomically
    and as fast as it can, while root runs the store for at least 2 s.
    Every run is refused (the link, the user's directory, or a name that
    changed under the open), and nothing is ever made in the target."""
    swapped, spare, stop = shared / "a", shared / "a.spare", shared / "stop"
    as_user(local_user, "mkdir", "-m", "755", str(swapped))
    user_link(local_user, spare, target)
    exchanger = local_user.popen(
        ["/usr/bin/python3", "-c", EXCHANGER, str(spare), str(swapped), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state = swapped / "b" / "s.json"
    step = f"no rates: {swapped} (on the path to state directory {state.parent})"
    kinds = {
        "link": f"{step} is a symbolic link;",
        "theirs": f"{step} belongs to uid {local_user.uid}:",
        "changed": f"{step} changed as it was opened",  # a link when opened, a directory when looked at
    }
    outcomes: dict = {}
    try:
        wait_until(swapped.is_symlink, 10, "the user's first swap")
        runs, started = 0, time.monotonic()
        # 2 s, and on until both sides of the swap were met; a hard stop at 15 s.
        while time.monotonic() - started < 15 and (
            time.monotonic() - started < 2 or not {"link", "theirs"} <= set(outcomes)
        ):
            why = rate(state, at=1000.0 + 2 * runs, private_dir=runs % 2 == 1)[1]
            kind = next((k for k, start in kinds.items() if why.startswith(start)), why)
            outcomes[kind] = outcomes.get(kind, 0) + 1
            runs += 1
            assert list(target.iterdir()) == [], (runs, outcomes)
    finally:
        stop.touch()
        out, err = exchanger.communicate(timeout=30)
    assert exchanger.returncode == 0, err
    assert int(out) >= 10, "the user barely swapped: the race was not exercised"
    assert {"link", "theirs"} <= set(outcomes) <= set(kinds), outcomes
    assert list(target.iterdir()) == []


def test_the_store_raises_only_its_own_error_on_a_bad_path(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="names no file"):
        open_state(tmp_path / "..", deadline=soon()).__enter__()


# --- names and places -----------------------------------------------------------------------------


def test_state_file_names_never_collide() -> None:
    """The field report: a_b.sock and a/b.sock shared one file."""
    one = state_file_name("/run/a_b.sock", "/status", "www")
    other = state_file_name("/run/a/b.sock", "/status", "www")
    assert one != other
    assert one == "status-_2frun_2fa_5fb.sock-_2fstatus-www.json"
    assert other == "status-_2frun_2fa_2fb.sock-_2fstatus-www.json"
    assert state_file_name("127.0.0.1:9000", "/status", "www") == "status-127.0.0.1:9000-_2fstatus-www.json"
    assert "/" not in state_file_name("h:9000", "/../../etc", "../x")
    long = state_file_name("/" + "x" * 300, "/status", "www")
    assert len(long) < 255 and long.endswith(".json") and "/" not in long
    assert long != state_file_name("/" + "x" * 301, "/status", "www")


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert default_state_dir() == f"{tmp_path}/check_fastcgi"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # ignored, as the XDG spec says
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_state_dir() == f"{tmp_path}/.local/state/check_fastcgi"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", "/")
    assert default_state_dir() == f"/var/tmp/check_fastcgi-{os.geteuid()}"
