"""Alert channels besides webhooks: DingTalk, WeCom and Feishu group robots, and e-mail.

Every channel is a row of the webhook subscriptions table (``channel:<name>``), so its
messages go through the same durable outbox as webhooks: enqueued in the event's
transaction, claimed, retried with backoff, dead-lettered, counted in ``/metrics``.

The names in ``__init__.pyi`` load on first use (lazy_loader): the outbox imports ``address`` and the
site config imports ``config`` without pulling in HTTP and SMTP clients.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
