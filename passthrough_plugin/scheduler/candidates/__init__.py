"""nova's allocation candidates: keep those that obey the rules, best first.

With PCI in Placement every device nova asks for is its own request group
and nova-compute assigns devices only from the providers of the candidate
nova claims (``allocation_candidates[0]`` of the chosen host). Judging each
candidate against the agent's facts and ordering the survivors by the weigh
strategy makes nova's claim the plugin's choice.

- :mod:`.facts`: the agent's facts of one host, hardware layouts shared;
- :mod:`.view`: nova's providers beside those facts;
- :mod:`.rules`: one candidate judged against every rule;
- :mod:`.order`: a host's candidates judged, the survivors best first;
- :mod:`.moves`: what nova's move operations do to the devices.
"""

from __future__ import annotations

from passthrough_plugin.scheduler.candidates.facts import HostFacts
from passthrough_plugin.scheduler.candidates.moves import follow_pick
from passthrough_plugin.scheduler.candidates.moves import move_claim_breaks
from passthrough_plugin.scheduler.candidates.moves import move_claim_pick
from passthrough_plugin.scheduler.candidates.moves import \
    move_claim_verdict
from passthrough_plugin.scheduler.candidates.order import Ask
from passthrough_plugin.scheduler.candidates.order import Choice
from passthrough_plugin.scheduler.candidates.order import choose
from passthrough_plugin.scheduler.candidates.order import decision
from passthrough_plugin.scheduler.candidates.rules import Verdict
from passthrough_plugin.scheduler.candidates.rules import judge
from passthrough_plugin.scheduler.candidates.view import Group
from passthrough_plugin.scheduler.candidates.view import HostView
from passthrough_plugin.scheduler.candidates.view import Provider

__all__ = ['Ask', 'Choice', 'Group', 'HostFacts', 'HostView', 'Provider',
           'Verdict', 'choose', 'decision', 'follow_pick', 'judge',
           'move_claim_breaks', 'move_claim_pick', 'move_claim_verdict']
