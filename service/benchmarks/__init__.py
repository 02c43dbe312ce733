"""The benchmarks behind ``anjian bench …``, and the loopback stand-ins they and the tests share.

One module per benchmark: ``decode`` (decode + sample cost next to ffmpeg), ``reconnect``
(a camera's return after its RTSP server), ``pipeline`` (the engine next to a naive
ultralytics loop), ``service`` (webhook burst and ingest), ``ingest``, ``crash`` (kill -9
under load), ``soak`` (RSS under a steady load), ``startup`` (seconds from spawn).

Shared parts, one module each: ``clips`` (synthetic H.264 clips), ``rtsp`` with
``rtsp_server`` (a real RTSP server run under Debian's ``/usr/bin/python3``),
``receiver`` (a loopback webhook receiver), ``ports`` (a free TCP port), ``processes``
(RSS and CPU time of a process), ``events`` (the events the service benchmarks send),
``service_process`` (``anjian serve`` as a child process), ``background_server`` (the
``start``/``stop``/``with`` of the brokers and servers the tests run beside them).

They live under the service because it is the most downstream package: a benchmark
may import from every package (datasets' synthetic footage, ultralytics for the naive
baseline) without a runtime package importing anything it does not run. Nothing here
is imported by ``import anjian.service``.
"""

__all__: list[str] = []
