"""Which localbox a database belongs to: the data directory (by its instance id) that first
used it. A server with another data directory refuses to start on it, since each server's
reconcile would take the other's containers for its own leftovers: expire them and remove their
sandboxes."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from server.store.tables import DeploymentRecord

log = logging.getLogger("localbox.store")

ROW = 1
_TABLE = DeploymentRecord.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Deployment:
    """A server's claim on the database: its data directory's id, path and host."""

    instance_id: str
    data_dir: str
    host: str
    created_at: int


class DatabaseInUse(Exception):
    """The database belongs to a server with another data directory."""


def claim(conn: Connection, me: Deployment) -> None:
    """Record me as the database's deployment on its first start; refuse another's database.

    The data directory is known by its instance id, so one moved to another path (or mounted
    on another host) keeps its database; the path and host recorded follow it.
    """
    row = conn.execute(select(_TABLE).where(_TABLE.c.id == ROW)).mappings().first()
    if row is None:
        conn.execute(insert(_TABLE).values(id=ROW, **vars(me)))
        return
    if row["instance_id"] != me.instance_id:
        raise DatabaseInUse(
            f"the database is in use by the localbox whose data dir is {row['data_dir']} on host "
            f"{row['host']} (instance {row['instance_id']}); this server's data dir is "
            f"{me.data_dir} on host {me.host} (instance {me.instance_id}). Two servers with "
            "different data dirs on one database would expire each other's containers and "
            "remove their sandboxes. Start this server with that data dir "
            f"(LOCALBOX_DATA_DIR={row['data_dir']}), or point LOCALBOX_DATABASE_URL at another "
            "database. If that data dir is gone for good, run `DELETE FROM deployment` on the "
            "database: this server then takes it over, and the containers whose sandboxes went "
            "with the old data dir are expired at its start."
        )
    if (row["data_dir"], row["host"]) != (me.data_dir, me.host):
        log.info(
            "the data dir moved from %s on %s to %s on %s",
            row["data_dir"],
            row["host"],
            me.data_dir,
            me.host,
        )
        conn.execute(
            update(_TABLE).where(_TABLE.c.id == ROW).values(data_dir=me.data_dir, host=me.host)
        )
