"""Optional oslo.messaging notifications of device attach and detach."""

from __future__ import annotations

from typing import Any, Protocol

from oslo_config import cfg
from oslo_log import log as logging

from passthrough_plugin.lifecycle import records

LOG = logging.getLogger(__name__)

EVENT_ATTACH = 'passthrough.device.attach'
EVENT_DETACH = 'passthrough.device.detach'
PUBLISHER_ID = 'passthrough-plugin'


class Notifier(Protocol):
    """Told about every interval that starts or ends, after it is stored."""

    def attach(self, interval: records.Interval) -> None: ...

    def detach(self, interval: records.Interval) -> None: ...


class NullNotifier:
    """Notifications off: does nothing."""

    def attach(self, interval: records.Interval) -> None:
        pass

    def detach(self, interval: records.Interval) -> None:
        pass


def payload(interval: records.Interval) -> dict[str, Any]:
    """The notification body: the interval, timestamps in ISO 8601 UTC."""
    return interval.to_dict()


class MessagingNotifier:
    """Sends the events through an oslo.messaging notification transport."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        # Imported here: oslo.messaging is optional and heavy.
        import oslo_messaging

        transport = oslo_messaging.get_notification_transport(conf)
        # oslo.messaging's own default driver drops everything; an operator
        # who turned notifications on wants them sent unless
        # [oslo_messaging_notifications] driver says otherwise.
        driver = None if conf.oslo_messaging_notifications.driver \
            else 'messagingv2'
        self._notifier = oslo_messaging.Notifier(
            transport, publisher_id=PUBLISHER_ID, driver=driver,
            topics=[conf.lifecycle.notification_topic])

    def attach(self, interval: records.Interval) -> None:
        self._notifier.info({}, EVENT_ATTACH, payload(interval))

    def detach(self, interval: records.Interval) -> None:
        self._notifier.info({}, EVENT_DETACH, payload(interval))


def from_conf(conf: cfg.ConfigOpts) -> Notifier:
    """The notifier ``[lifecycle] notifications`` asks for."""
    if not conf.lifecycle.notifications:
        return NullNotifier()
    try:
        return MessagingNotifier(conf)
    except ImportError:
        LOG.warning('[lifecycle] notifications is on but oslo.messaging is '
                    'not installed; device notifications are not sent')
        return NullNotifier()
