"""Helpers the test folders share, imported by their real names:
``from tests.support.stack import ApiServer``.

- ``ci``: a missing service fails the run under CI=true and skips elsewhere.
- ``ports``: free loopback ports, and free slots for `ktrdr local up`.
- ``processes``: the environment of every child process (its own KTRDR_HOME), log tails.
- ``waiting``: ``wait_until``, the one bounded poll.
- ``home``: HOME moved to a temporary folder for the run, tool configs and caches kept.
- ``leftovers``: the end-of-run check that nothing the run started is still alive.
- ``postgres``: a real PostgreSQL server on loopback.
- ``stack``: `ktrdr-api serve` (ApiServer) and `ktrdr-worker` (WorkerProcess) as processes.
- ``cli``: `ktrdr` itself as a process (``run_ktrdr``).
- ``proxy``: a TCP relay between a worker and the backend whose gate holds one transfer part-way.
- ``load``: the load drill's scenario and its timing table (shared with bench/scheduling.py).
- ``api``: calls the backend tests make as a worker would, and a fake clock.
- ``bundles``: model bundles, honest and malicious.
- ``market_data``: OHLCV files and rows, bar-open calendars.
- ``bars``, ``targets``: OHLCV frames and target positions for the frame and backtest tests.
- ``training_data``: samples and a market with a planted signal for the model tests.
- ``strategies``: strategy texts and issue helpers for the strategy tests.
- ``indicator_reference``: independent indicator implementations (tests and bench/).
- ``fake_binance`` (+ ``binance/``): a local server speaking Binance's klines protocol.
- ``hostile_corpus``: the hostile-input files of tests/hostile and their expected errors.
- ``docker``: Docker set up for the image tests.
- ``workspace``: the workspace root, its members and its tools.
"""
