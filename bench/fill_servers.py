"""Fill targets on the database servers: our table on PostgreSQL and MariaDB, DBStore's."""

from __future__ import annotations

import csv
import io
from typing import Any

import zoho_sa_store
from bench import db
from bench.fill import DBAPITarget, placeholders
from bench.rows import SDK_COLUMNS, Row, batches, padded_id, sdk_row, uuid_id

DBSTORE_DDL = (
    "CREATE TABLE IF NOT EXISTS `{table}` (id varchar(10) NOT NULL, user_name varchar(255), "
    "client_id varchar(255), client_secret varchar(255), refresh_token varchar(255), "
    "access_token varchar(255), grant_token varchar(255), expiry_time varchar(20), "
    "redirect_url varchar(255), api_domain varchar(255), PRIMARY KEY (id))"
)
"""The table of the SDK README's DDL for ``DBStore`` (only the primary key is indexed)."""


class OurPostgres(DBAPITarget):
    method = "COPY ... FROM STDIN (csv), 10,000-row chunks, one transaction"

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table, self.name = url, table, "ours/postgresql"
        self.conn: Any = None

    def prepare(self) -> None:
        db.ensure_database("postgresql", self.url)
        zoho_sa_store.upgrade(self.url, table_name=self.table)
        self.conn = self.conn or db.pg_connect(self.url)

    def clear(self) -> None:
        self.conn.cursor().execute(f"TRUNCATE {self.table}")

    def fill(self, n: int) -> None:
        self.conn.autocommit = False
        cur = self.conn.cursor()
        sql = f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN WITH (FORMAT csv)"
        for chunk in batches(n, self.row):
            buffer = io.StringIO()
            csv.writer(buffer).writerows(chunk)
            buffer.seek(0)
            cur.copy_expert(sql, buffer)
        self.conn.commit()
        self.conn.autocommit = True
        cur.execute(f"VACUUM ANALYZE {self.table}")


class _MySQLTarget(DBAPITarget):
    method = "PyMySQL executemany (multi-row INSERT), 2,000 rows per statement and commit"

    def __init__(self, url: str, table: str, database: str | None = None) -> None:
        self.url, self.table, self.database = url, table, database
        self.conn: Any = None

    def prepare(self) -> None:
        db.ensure_database("mariadb", self.url, self.database)
        self.conn = self.conn or db.my_connect(self.url, self.database)

    def clear(self) -> None:
        self.conn.cursor().execute(f"TRUNCATE TABLE {self.table}")

    def order(self, n: int) -> list[int]:
        return list(range(n))

    def fill(self, n: int) -> None:
        order = self.order(n)
        cur = self.conn.cursor()
        cur.execute("SET SESSION unique_checks = 0")
        self.conn.autocommit(False)
        sql = (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"VALUES ({placeholders('%s', len(self.columns))})"
        )
        for chunk in batches(n, lambda k: self.row(order[k]), size=2_000):
            cur.executemany(sql, chunk)
            self.conn.commit()
        self.conn.autocommit(True)
        cur.execute("SET SESSION unique_checks = 1")
        cur.execute(f"ANALYZE TABLE {self.table}")
        cur.fetchall()


class OurMariaDB(_MySQLTarget):
    method = (
        "PyMySQL executemany (multi-row INSERT), 2,000 rows per statement and commit, "
        "in primary-key order, token indexes dropped before and built again after"
    )

    def __init__(self, url: str, table: str) -> None:
        super().__init__(url, table)
        self.name = "ours/mariadb"

    def prepare(self) -> None:
        super().prepare()
        zoho_sa_store.upgrade(self.url, table_name=self.table)

    def order(self, n: int) -> list[int]:
        """Rows sorted by id: InnoDB clusters on the primary key, so appends stay sequential."""
        return sorted(range(n), key=uuid_id)

    def fill(self, n: int) -> None:
        """Insert with the non-unique token indexes off, then build them in one pass each.

        With random UUIDs and long token keys, maintaining these B-trees row by row
        outgrows a small buffer pool; the indexes built afterwards are the model's own
        definitions (:func:`zoho_sa_store.model.token_table`), the same the migration made.
        """
        from sqlalchemy import MetaData, inspect

        from zoho_sa_store.model import NAMING_CONVENTION, token_table

        table = token_table(MetaData(naming_convention=NAMING_CONVENTION), self.table)
        engine = zoho_sa_store.make_engine(self.url)
        try:
            with engine.begin() as conn:
                existing = {ix["name"] for ix in inspect(conn).get_indexes(self.table)}
                deferred = [ix for ix in table.indexes if ix.name in existing and not ix.unique]
                for index in deferred:
                    index.drop(conn)
            super().fill(n)
            with engine.begin() as conn:
                for index in deferred:
                    index.create(conn)
            self.conn.cursor().execute(f"ANALYZE TABLE {self.table}")
        finally:
            engine.dispose()


class DBStoreTable(_MySQLTarget):
    columns = SDK_COLUMNS

    def __init__(self, url: str, table: str) -> None:
        super().__init__(url, table)
        self.name = "DBStore/mariadb"

    def prepare(self) -> None:
        super().prepare()
        self.conn.cursor().execute(DBSTORE_DDL.format(table=self.table))

    def row(self, i: int) -> Row:
        return sdk_row(i, padded_id)
