"""supactl: an AI phone agent on Supabase, per tenant, deployed in one command."""

__version__ = "0.1.0"
