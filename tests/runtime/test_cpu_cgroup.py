"""Finding a process's CPU cgroup from /proc/<pid>/cgroup, reading it and weighing it, on
cgroup v1 and v2 trees laid out as the kernel does."""

from __future__ import annotations

from pathlib import Path

from server.runtime.cpu_cgroup import cpu_cgroup


def test_cgroup_v1(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(
        "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    )
    group = root / "cpu,cpuacct" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpuacct.usage").write_text("2500000000\n")
    (group / "cpu.shares").write_text("1024\n")
    found = cpu_cgroup(42, proc, root)
    assert found is not None
    assert not found.v2
    assert found.usage_seconds() == 2.5
    assert found.set_low(True)
    assert (group / "cpu.shares").read_text() == "2"
    assert found.set_low(False)
    assert (group / "cpu.shares").read_text() == "1024"
    (group / "cpuacct.usage").unlink()
    assert found.usage_seconds() is None


def test_cgroup_v1_with_cpu_and_cpuacct_mounted_apart(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "9").mkdir(parents=True)
    (proc / "9" / "cgroup").write_text("2:cpuacct:/docker/x\n1:cpu:/docker/x\n")
    (root / "cpuacct" / "docker" / "x").mkdir(parents=True)
    (root / "cpu" / "docker" / "x").mkdir(parents=True)
    (root / "cpuacct" / "docker" / "x" / "cpuacct.usage").write_text("1000000000\n")
    (root / "cpu" / "docker" / "x" / "cpu.shares").write_text("1024\n")
    found = cpu_cgroup(9, proc, root)
    assert found is not None
    assert found.usage_seconds() == 1.0
    assert found.set_low(True)
    assert (root / "cpu" / "docker" / "x" / "cpu.shares").read_text() == "2"


def test_cgroup_v2(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    group = root / "system.slice" / "docker-abc.scope"
    group.mkdir(parents=True)
    (group / "cpu.stat").write_text("usage_usec 1500000\nuser_usec 1000000\n")
    (group / "cpu.weight").write_text("100\n")
    found = cpu_cgroup(7, proc, root)
    assert found is not None
    assert found.v2
    assert found.usage_seconds() == 1.5
    assert found.set_low(True)
    assert (group / "cpu.weight").read_text() == "1"


def test_nothing_found_where_the_host_does_not_show_it(tmp_path: Path) -> None:
    assert cpu_cgroup(1, tmp_path / "proc", tmp_path / "cgroup") is None
    (tmp_path / "proc" / "1").mkdir(parents=True)
    (tmp_path / "proc" / "1" / "cgroup").write_text("0::/\n")
    assert cpu_cgroup(1, tmp_path / "proc", tmp_path / "cgroup") is None
