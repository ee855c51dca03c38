"""Boot the kernel-test guest once and check it has what issue 4 needs."""

from __future__ import annotations

import os
import pathlib
import sys
import threading
import time

import testtools
from testtools import content

from tests.functional.kernel import assets
from tests.functional.kernel import harness
from tests.functional.kernel import topology

# Collects facts in the guest; the assertions are made in Python below.
# Each device line: address vendor:device class driver iommu_group.
SMOKE_SCRIPT = r"""
set -u
devices() {
  for d in /sys/bus/pci/devices/*; do
    drv=none; [ -e "$d/driver" ] && drv=$(basename "$(readlink "$d/driver")")
    grp=none
    [ -e "$d/iommu_group" ] && grp=$(basename "$(readlink "$d/iommu_group")")
    echo "${d##*/} $(cat "$d/vendor"):$(cat "$d/device") $(cat "$d/class")" \
         "$drv $grp"
  done | sed 's/0x//g'
}
devices > "$PT_OUT/devices-before.txt"
ls /sys/kernel/iommu_groups > "$PT_OUT/iommu-groups.txt"
ls /sys/class/iommu > "$PT_OUT/iommu-units.txt"
cat /proc/cmdline > "$PT_OUT/cmdline.txt"
dmesg | grep -i 'remapping' > "$PT_OUT/irq-remapping.txt"
for d in /sys/bus/pci/devices/*; do
  [ -e "$d/sriov_totalvfs" ] || continue
  a=${d##*/}
  echo 2 > "$d/sriov_numvfs" || echo "write failed" >> "$PT_OUT/sriov-$a.txt"
  for _ in 1 2 3 4 5 6 7 8 9 10; do [ -e "$d/virtfn1" ] && break; sleep 1; done
  {
    echo "numvfs $(cat "$d/sriov_numvfs") total $(cat "$d/sriov_totalvfs")"
    for v in "$d"/virtfn*; do echo "vf $(basename "$(readlink "$v")")"; done
  } >> "$PT_OUT/sriov-$a.txt"
done
devices > "$PT_OUT/devices-after.txt"
# vfio-pci takes the first igb VF: proves the vfio stack and /dev/vfio.
first=$(ls -d /sys/bus/pci/devices/*/virtfn0 | head -1)
vf=$(basename "$(readlink "$first")")
D=/sys/bus/pci/devices/$vf
echo vfio-pci > "$D/driver_override"
[ -e "$D/driver" ] && echo "$vf" > "$D/driver/unbind"
echo "$vf" > /sys/bus/pci/drivers_probe
g=$(basename "$(readlink "$D/iommu_group")")
echo "$vf $(basename "$(readlink "$D/driver")") $g $(ls /dev/vfio)" \
  > "$PT_OUT/vfio.txt"
python3 -c 'import sys; print(sys.version); print(sys.prefix)' \
  > "$PT_OUT/python.txt"
echo "smoke script done"
"""

_STATE: dict[str, object] = {}
_LOCK = threading.Lock()


def _shared_boot() -> dict[str, object]:
    """Boot once per process; every test reads the same result."""
    with _LOCK:
        if not _STATE:
            try:
                _STATE.update(_boot())
            except BaseException as exc:
                # Remember it: the other tests must not boot again.
                _STATE["error"] = exc
                raise
        return _STATE


def _boot() -> dict[str, object]:
    guest = harness.KernelGuest(python=sys.executable)
    started = time.monotonic()
    try:
        guest.prepare()
    except assets.AssetsUnavailable as exc:
        if os.environ.get(harness.REQUIRED_ENV):
            return {"error": exc}
        return {"skip": f"kernel test assets cannot be fetched: {exc}"}
    except Exception as exc:
        return {"error": exc}
    prepared = time.monotonic() - started
    try:
        result = guest.run(SMOKE_SCRIPT, timeout=600)
        files = {p.name: p.read_text() for p in result.out_dir.iterdir()}
    except Exception as exc:
        return {"error": exc}
    finally:
        guest.close()
    return {"result": result, "files": files, "prepare_seconds": prepared}


def _parse_devices(text: str) -> dict[str, dict[str, str]]:
    devices = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 5:
            raise AssertionError(f"malformed device line {line!r}")
        addr, ids, klass, driver, group = fields
        devices[addr] = {"ids": ids, "class": klass, "driver": driver,
                         "group": group}
    return devices


class TestKernelGuestSmoke(testtools.TestCase):
    """One TCG boot; the device layout issue 4's agent tests rely on."""

    def setUp(self) -> None:
        super().setUp()
        state = _shared_boot()
        if "skip" in state:
            self.skipTest(str(state["skip"]))
        if "error" in state:
            raise state["error"]  # type: ignore[misc]
        self.result: harness.GuestResult = state["result"]  # type: ignore
        self.files: dict[str, str] = state["files"]  # type: ignore
        self.addDetail("serial-log", content.text_content(
            self.result.log))
        self.addDetail("out-files", content.text_content(
            "\n".join(f"== {k}\n{v}" for k, v in sorted(
                self.files.items()))))
        self.before = _parse_devices(self.files["devices-before.txt"])
        self.after = _parse_devices(self.files["devices-after.txt"])

    def _by_ids(self, ids: str) -> list[str]:
        return sorted(a for a, d in self.after.items() if d["ids"] == ids)

    def test_script_ran_and_succeeded(self) -> None:
        self.assertEqual(0, self.result.rc, self.result.output)
        self.assertIn("smoke script done", self.result.output)
        self.assertIn("intel_iommu=on", self.files["cmdline.txt"])

    def test_iommu_on_with_interrupt_remapping(self) -> None:
        groups = self.files["iommu-groups.txt"].split()
        self.assertGreater(len(groups), 5)
        self.assertIn("dmar0", self.files["iommu-units.txt"].split())
        self.assertIn("Enabled IRQ remapping", self.files["irq-remapping.txt"])
        for addr, dev in self.before.items():
            self.assertNotEqual("none", dev["group"], addr)

    def test_igb_pf_gets_two_igbvf_vfs(self) -> None:
        (pf,) = [a for a, d in self.before.items()
                 if d["ids"] == topology.IGB_PF]
        self.assertEqual("igb", self.before[pf]["driver"])
        sriov = self.files[f"sriov-{pf}.txt"].splitlines()
        numvfs, total = sriov[0].split()[1::2]
        self.assertEqual("2", numvfs)
        self.assertGreaterEqual(int(total), 2)
        vfs = [line.split()[1] for line in sriov[1:]]
        self.assertEqual(vfs, self._by_ids(topology.IGB_VF))
        self.assertEqual(2, len(vfs))
        # Each VF has its own group, apart from its PF's.
        groups = {self.after[a]["group"] for a in [pf, *vfs]}
        self.assertEqual(3, len(groups))

    def test_nvme_pf_gets_two_vfs(self) -> None:
        (pf,) = [a for a, d in self.before.items()
                 if d["class"] == topology.NVME_CLASS[2:]]
        self.assertEqual("nvme", self.before[pf]["driver"])
        sriov = self.files[f"sriov-{pf}.txt"].splitlines()
        self.assertEqual("numvfs 2 total 2", sriov[0])
        vfs = [line.split()[1] for line in sriov[1:]]
        self.assertEqual(2, len(vfs))
        for vf in vfs:
            self.assertEqual(topology.NVME_CLASS[2:], self.after[vf]["class"])

    def test_vf_binds_to_vfio_pci(self) -> None:
        vf, driver, group, nodes = self.files["vfio.txt"].split(None, 3)
        self.assertEqual("vfio-pci", driver)
        self.assertEqual(topology.IGB_VF, self.after[vf]["ids"])
        self.assertIn(group, nodes.split())

    def test_devices_behind_pci_bridge_share_a_group(self) -> None:
        (bridge,) = self._by_ids(topology.PCIE_PCI_BRIDGE)
        members = self._by_ids(topology.E1000)
        self.assertEqual(2, len(members))
        group = self.after[bridge]["group"]
        in_group = sorted(a for a, d in self.after.items()
                          if d["group"] == group)
        self.assertEqual(sorted([bridge, *members]), in_group)
        for addr in members:
            self.assertEqual("e1000", self.after[addr]["driver"])

    def test_multifunction_without_acs_shares_a_group(self) -> None:
        functions = self._by_ids(topology.E1000E)
        self.assertEqual(2, len(functions))
        groups = {self.after[a]["group"] for a in functions}
        self.assertEqual(1, len(groups))
        (group,) = groups
        self.assertEqual(functions, sorted(
            a for a, d in self.after.items() if d["group"] == group))

    def test_host_python_runs_in_guest(self) -> None:
        version, prefix = self.files["python.txt"].splitlines()[:2]
        self.assertEqual(sys.version, version)
        self.assertEqual(sys.prefix, prefix)


class TestKernelGuestTimeout(testtools.TestCase):
    """A guest that gives no result in time is killed and reported."""

    def test_timeout_kills_qemu(self) -> None:
        guest = self.useFixture(harness.KernelGuest(python=sys.executable))
        started = time.monotonic()
        error = self.assertRaises(
            harness.GuestError, guest.run, "sleep 600", timeout=4)
        self.assertLess(time.monotonic() - started, 40)
        self.assertIn("no result within 4", str(error))
        assert error.run_dir is not None
        self.assertEqual([], _processes_mentioning(str(error.run_dir)))


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            found.append(int(proc.name))
    return found
