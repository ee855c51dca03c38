"""The guest's PCI topology: the devices issue 4's real-kernel test needs.

Layout (q35, an emulated Intel VT-d with interrupt remapping)::

  00:00.0 host bridge              00:01.0 VGA (boot_vga=1)
  00:1f.* ICH9 LPC/SATA/SMBus      virtio-9p (host root, out dir)
  rp1 -> igb       Intel 82576 PF 8086:10c9, SR-IOV, 8 VFs 8086:10ca
  rp2 -> nvme      NVMe 1b36:0010 class 010802, SR-IOV, sriov_max_vfs=2
  rp3 -> pcie-pci-bridge 1b36:000e
           -> e1000 8086:100e (slot 1)   } one IOMMU group: the bridge and
           -> e1000 8086:100e (slot 2)   } both endpoints behind it
  rp4 -> e1000e 8086:10d3 function 0, multifunction  } one IOMMU group:
         e1000e 8086:10d3 function 1                 } no ACS between them

Why these share a group: a conventional PCI device behind a PCIe-to-PCI
bridge issues DMA with the bridge's requester ID, so the IOMMU cannot tell
the devices apart and Linux puts the bridge and everything behind it in one
group (``pci_device_group`` follows the DMA alias).  Functions of one
multifunction device without an ACS capability can do peer-to-peer, so they
are grouped too.  Either pair is "a group that is not viable": binding one
e1000 to vfio-pci while its sibling stays on e1000 must be refused.  Each
root port on its own (QEMU root ports have ACS) keeps igb and nvme, and each
of their VFs, in separate groups.
"""

from __future__ import annotations

# Modules /init loads at boot, in this order.
LOAD_MODULES: tuple[str, ...] = (
    "virtio_pci", "9pnet_virtio", "9p", "overlay",
    "igb", "igbvf", "nvme", "e1000", "e1000e",
    "vfio", "vfio_pci", "vfio_iommu_type1",
)
# Shipped in the image for modprobe, not loaded: the pci-stub binder.
EXTRA_MODULES: tuple[str, ...] = ("pci_stub",)

# Vendor:device ids a test can look for.
IGB_PF = "8086:10c9"
IGB_VF = "8086:10ca"
NVME_CLASS = "0x010802"
E1000 = "8086:100e"
E1000E = "8086:10d3"
PCIE_PCI_BRIDGE = "1b36:000e"


def device_args() -> list[str]:
    """QEMU arguments of the devices above (the 9p shares come apart)."""
    return [
        "-device", "intel-iommu,intremap=on,caching-mode=on",
        "-device", "VGA,bus=pcie.0,addr=01.0",
        "-device", "pcie-root-port,id=rp1,chassis=1,slot=1",
        "-device", "igb,bus=rp1,romfile=",
        "-device", "pcie-root-port,id=rp2,chassis=2,slot=2",
        "-device", "nvme-subsys,id=nvmes0",
        "-device", ("nvme,bus=rp2,serial=deadbeef,subsys=nvmes0,"
                    "sriov_max_vfs=2,sriov_vq_flexible=8,sriov_vi_flexible=4,"
                    "max_ioqpairs=12,msix_qsize=5"),
        "-device", "pcie-root-port,id=rp3,chassis=3,slot=3",
        "-device", "pcie-pci-bridge,id=pbr0,bus=rp3",
        "-device", "e1000,bus=pbr0,addr=1.0,romfile=",
        "-device", "e1000,bus=pbr0,addr=2.0,romfile=",
        "-device", "pcie-root-port,id=rp4,chassis=4,slot=4",
        "-device", "e1000e,bus=rp4,addr=0.0,multifunction=on,romfile=",
        "-device", "e1000e,bus=rp4,addr=0.1,romfile=",
    ]
