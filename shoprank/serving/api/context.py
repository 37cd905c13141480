"""What the online routes share in one API process: the shoppers (keys, online store, sessions), the
in-memory item table, the live catalogue (the night's catalogue artifacts, the day's stock, items and
rules: `serving.decision.live_catalogue`), the model server's client and the model base path.

Built once and handed to the recommender and to search, so neither reaches into the other.
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pyarrow.parquet as pq

from shoprank.features.definitions import ITEM_STATS_KEY
from shoprank.features.online import LiveItemTable
from shoprank.serving.api.users import FeatureStoreError, Shoppers, Subject, UserContext
from shoprank.serving.decision.live_catalogue import LiveCatalogue
from shoprank.serving.model_server.client import AsyncGrpcClient
from shoprank.settings import Settings
from shoprank.storage import open_for

T = TypeVar("T")


class NotReady(RuntimeError):
    """The online path has not loaded its item features yet."""


def _offline_item_ids(settings: Settings) -> Callable[[], list[str]]:
    """Every item of the item view's offline source: the rows the online store may hold."""
    def read() -> list[str]:
        data = open_for(settings, "offline").get_bytes(ITEM_STATS_KEY)
        return pq.read_table(io.BytesIO(data), columns=["item_id"]).column(0).unique().to_pylist()

    return read


class OnlineContext:
    def __init__(self, settings: Settings, client: AsyncGrpcClient | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.settings = settings
        self.log = log
        self.shoppers = Shoppers(settings, log)
        self.items = LiveItemTable(self.shoppers.online, _offline_item_ids(settings), log=log)
        self.models = open_for(settings, "models")
        self.catalogue = LiveCatalogue(open_for(settings), log, settings.catalogue_poll_s)
        self.client = client or AsyncGrpcClient(settings.model_server_grpc, timeout=settings.model_timeout_s)

    def load(self, refresh_seconds: float | None = 10.0) -> OnlineContext:
        """Read the item table now (blocking), then keep it fresh in the background."""
        self.items.refresh()
        if self.items.table is None:
            raise FeatureStoreError(f"online store has no item features: {self.items.last_error}")
        self.catalogue.follow(self.items.table)
        self.catalogue.refresh()
        if refresh_seconds:
            self.items.start(refresh_seconds)
            self.catalogue.start()
        return self

    def table(self):
        """The item table, or NotReady saying why there is none yet."""
        table = self.items.table
        if table is None:
            raise NotReady(f"item features not loaded yet ({self.items.last_error or 'loading'})")
        self.catalogue.follow(table)  # a new materialisation brings the night's catalogue artifacts
        return table

    def user(self, subject: Subject | None, tolerate_store_errors: bool = False) -> UserContext:
        """The shopper's context, under the key of the materialisation the item table comes from."""
        self.shoppers.follow(self.items.table)
        return self.shoppers.context(subject, tolerate_store_errors)

    def run_blocking(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine of the online path (a recommendation, a search) from a script."""
        import asyncio

        if not hasattr(self, "_loop"):
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(make())

    def close(self) -> None:
        self.items.stop()
        self.catalogue.stop()
        if hasattr(self, "_loop"):
            self._loop.run_until_complete(self.client.close())
            self._loop.close()
