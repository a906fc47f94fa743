"""alembic environment: runs migrations on the engine handed over by ktrdr_api.migrations."""

from alembic import context

from ktrdr_api.models import Base

engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
