"""Alembic migrations of the twitchwatch database; run them with `twitchwatch db upgrade`.

The package directory is the Alembic script location: `monitor.store.migrate`
builds the Alembic config in code, so no alembic.ini is needed at run time.
"""
