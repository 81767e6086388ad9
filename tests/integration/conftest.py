"""Integration tests run as root against real kernel objects.

Without root they skip loudly and the run exits 77, which CTest reports as
skipped; with SONIC_REQUIRE_ROOT=1 (set by .ci/run) a missing root is a
failure instead.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

import sonictest  # noqa: E402

ROOT_MESSAGE = "SKIPPED: sonic's integration tests need root (BPF programs, cgroups, network namespaces)"


def pytest_configure(config):
    config.addinivalue_line("markers", "refuses_fw: the test refuses fw_xdp itself, so runs where fw cannot load")
    config.sonic_no_root = os.geteuid() != 0
    if config.sonic_no_root:
        if os.environ.get("SONIC_REQUIRE_ROOT") == "1":
            raise pytest.UsageError(ROOT_MESSAGE + "; SONIC_REQUIRE_ROOT=1 makes this a failure")
        sys.stderr.write("\n*** " + ROOT_MESSAGE + " ***\n\n")
    if not os.access(sonictest.SONIC, os.X_OK):
        raise pytest.UsageError("sonic binary not found at %s (set SONIC_BIN)" % sonictest.SONIC)


def pytest_collection_modifyitems(config, items):
    if config.sonic_no_root:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=ROOT_MESSAGE))


def pytest_sessionfinish(session, exitstatus):
    if session.config.sonic_no_root and exitstatus in (0, 5):
        session.exitstatus = 77


@pytest.fixture
def bpffs():
    """A bpffs root of this test's own, removed with everything in it."""
    root = "/sys/fs/bpf/" + sonictest.unique("bpffs")
    yield root
    sonictest.remove_bpffs_root(root)


@pytest.fixture
def sonic(bpffs):
    return sonictest.Sonic(bpffs)


@pytest.fixture
def cgroup():
    """A fresh cgroup v2 directory; its processes are killed and it is removed."""
    path = sonictest.make_cgroup("cg")
    yield path
    sonictest.remove_cgroup(path)


@pytest.fixture
def cgroup_factory():
    made = []

    def make(name="cg", parent=None):
        path = sonictest.make_cgroup(name, parent)
        made.append(path)
        return path
    yield make
    for path in reversed(made):
        sonictest.remove_cgroup(path)


@pytest.fixture
def accel_family():
    """Skips the test, with prog probe's reason, where accel cannot load."""
    sonictest.require_families("accel")
