"""Imported by the runners' fork server only: the parent's main module, once, so children inherit it.

multiprocessing re-runs the parent's main script in every child it starts, unless the fork server has
imported it already ("__main__" in the preload list). Python 3.11 drops the script's path on the way
to the server, so that preload never happens and every runner start re-imported coinfleet's whole CLI:
~240 ms of CPU at the parent's priority, on the cores the other models need. The parent passes the
path in MAIN_PATH_ENV; the server imports the script here as multiprocessing would have. Nothing
else imports this module.
"""

from __future__ import annotations

import os
from multiprocessing import spawn

from coinfleet.runners.process import MAIN_PATH_ENV


def _import_parent_main() -> None:
    path = os.environ.get(MAIN_PATH_ENV)
    if not path:
        return
    try:
        spawn.import_main_path(path)
    except BaseException:  # SystemExit too: a main that fails here fails in each child, as before
        return


_import_parent_main()
