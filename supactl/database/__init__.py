"""The project's Postgres: connections, migrations (and the SQL splitter they use), tenants and
their numbers, the call log, and the SQL that gives a plain Postgres Supabase's roles.
"""
