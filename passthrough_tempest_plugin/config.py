"""Tempest options of the plugin: ``[passthrough]`` and its service flag."""

from __future__ import annotations

from oslo_config import cfg

service_option = cfg.BoolOpt(
    'passthrough',
    default=False,
    help="Whether the cloud runs passthrough-plugin (its placement "
         "providers, scheduler filter or agent); the plugin's tests skip "
         "when False.")

passthrough_group = cfg.OptGroup(
    name='passthrough',
    title='passthrough-plugin test options',
    help='What the PCI passthrough tests may use and should expect.')

PassthroughGroup = [
    cfg.StrOpt(
        'flavor_ref',
        help="A flavor whose pci_passthrough:alias some compute host can "
             "satisfy; the scenario tests boot it. Unset: they skip."),
    cfg.StrOpt(
        'flavor_ref_over',
        help="A flavor asking more PCI devices than any host has; booting "
             "it must end in NoValidHost. Unset: that test skips."),
    cfg.StrOpt(
        'flavor_ref_plugin_reject',
        help="A flavor Placement can satisfy but the plugin's PciPoolFilter "
             "must refuse (e.g. an IOMMU group or VF anti-affinity it "
             "cannot meet); the test finds the filter's reason for it in "
             "scheduler_log. Unset: that test skips."),
    cfg.StrOpt(
        'flavor_ref_pf',
        help="A flavor asking one whole PF (pci_passthrough:alias only) that "
             "every compute host has exactly one of: two servers of it must "
             "land on two hosts, each holding its own host's PF provider. "
             "Unset: that test skips."),
    cfg.StrOpt(
        'flavor_ref_anti_affinity',
        help="A flavor asking two VFs with passthrough:vf_anti_affinity = "
             "true (pci_passthrough:alias and passthrough:* keys only); the "
             "server must hold them on two distinct PF providers. Unset: "
             "that test skips."),
    cfg.ListOpt(
        'aliases',
        default=[],
        help="The [pci] alias names configured in nova, e.g. "
             "'fake-vf,fake-pf'."),
    cfg.ListOpt(
        'resource_classes',
        default=[],
        help="Resource classes of the PCI devices that must appear in "
             "Placement as inventories of providers nested under a compute "
             "node, e.g. 'CUSTOM_PCI_8086_10CA'. Empty: the API tests skip."),
    cfg.ListOpt(
        'traits',
        default=[],
        help="Traits every PCI provider of the resource_classes above must "
             "carry, e.g. 'CUSTOM_FAKE_PCI'."),
    cfg.BoolOpt(
        'agent_enabled',
        default=False,
        help="Whether passthrough-agent runs on the compute hosts and "
             "publishes their devices to Placement ([report_store] driver "
             "= placement, or a second agent configured so); the tests of "
             "its providers skip when False."),
    cfg.StrOpt(
        'inventory',
        default='own',
        choices=['own', 'nova'],
        help="The agents' [placement_store] inventory: 'own' (they write "
             "<host>:passthrough:<address> providers; no nova PCI in "
             "Placement) or 'nova' (nova reports PCI in Placement, the "
             "agents write no provider: the tests then check that none of "
             "theirs exists and that servers hold nova's providers)."),
    cfg.StrOpt(
        'map_command',
        help="A command run where tempest runs, with two more arguments, a "
             "compute host and a server uuid, that prints `passthrough-agent "
             "map --format json` of that server on that host (e.g. a "
             "wrapper running 'ssh root@HOST passthrough-agent map "
             "--instance UUID --format json'). The scenario tests check "
             "that it names the host devices of the providers holding the "
             "server's allocations. Unset: those checks skip."),
    cfg.StrOpt(
        'report_command',
        help="A command run where tempest runs, with one more argument, a "
             "compute host, that prints the host's report as the report "
             "store holds it (HostReport JSON, e.g. 'openstack pci host "
             "show HOST -f json'). The tests read each VF's parent PF from "
             "it, and with inventory = nova wait on it to see the agent "
             "publish a device change. Unset: those tests skip."),
    cfg.BoolOpt(
        'plugin_scheduler_enabled',
        default=False,
        help="Whether nova-scheduler runs the plugin's PciPoolFilter and "
             "PciPoolWeigher; the tests of its reasons skip when False."),
    cfg.StrOpt(
        'scheduler_log',
        help="Path of the nova-scheduler log on this machine, to find the "
             "plugin's rejection reasons in; unset: those checks skip."),
    cfg.StrOpt(
        'device_change_command',
        help="A command run where tempest runs, with one more argument, "
             "'remove' or 'restore'. 'remove' must take at least one device "
             "of the resource_classes away from a compute host (e.g. lower "
             "a PF's sriov_numvfs over ssh), 'restore' must bring the host "
             "back as it was. The test checks that passthrough-agent's "
             "providers in Placement follow both changes. Unset: that test "
             "skips. Example: 'ssh root@cn1 /usr/local/bin/vf-toggle'."),
    cfg.IntOpt(
        'device_change_timeout',
        default=120,
        min=1,
        help="Seconds to wait for Placement to show a device change: the "
             "agent's [agent] scan_interval plus a publish."),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opt(service_option, group='service_available')
    conf.register_group(passthrough_group)
    conf.register_opts(PassthroughGroup, group=passthrough_group)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    return [(passthrough_group.name, PassthroughGroup),
            ('service_available', [service_option])]
