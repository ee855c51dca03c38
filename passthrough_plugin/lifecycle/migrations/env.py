"""Alembic environment of the ledger: runs on the connection it is given."""

from __future__ import annotations

from alembic import context

from passthrough_plugin.lifecycle import models

# The ledger opens its own engine and hands a connection over, so there is
# no alembic.ini and no URL here (see ledger.upgrade()).
connection = context.config.attributes['connection']
context.configure(connection=connection,
                  target_metadata=models.Base.metadata,
                  render_as_batch=connection.dialect.name == 'sqlite')
with context.begin_transaction():
    context.run_migrations()
