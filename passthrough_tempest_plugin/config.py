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
