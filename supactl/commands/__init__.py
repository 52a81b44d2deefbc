"""Typer commands: a few lines each, over the library modules in supactl/."""
