"""Clients for the hosted services supactl drives."""
