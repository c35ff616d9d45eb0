"""The booking story: tidings end to end, on the embedded engine.

A booking service writes bookings and their events in one transaction (the
transactional outbox); the relay publishes each booking's full state to the
compacted ``bookings`` topic; email, fraud, loyalty and billing consume it,
each in its own consumer group (the consumer runtime); one handler fails
transiently and recovers, one message is poison and is parked, triaged,
fixed and republished; an analytics service added later bootstraps from the
log; a returns work queue with competing workers and a dead-letter queue
runs alongside. ``tidings demo`` runs it; so does ``python -m
examples.booking`` from a checkout.

Files: bookings.py (the service, its outbox, the relay), services.py (the
consumers), returns.py (the work queue), story.py (the script), checks.py
(the checked summary).
"""

from .checks import summarize
from .story import World, run

__all__ = ["World", "run", "summarize"]
