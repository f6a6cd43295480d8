"""The store service: the platform's data with revisions and a change feed (store.v1.Store)."""

from store.client import StoreClient as StoreClient
from store.database import Database as Database
from store.database import open_database as open_database
from store.server import StoreConfig as StoreConfig
from store.server import create_server as create_server

__all__ = ["Database", "StoreClient", "StoreConfig", "create_server", "open_database"]
