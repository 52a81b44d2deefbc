"""`supactl dev`: an embedded Postgres, the function on the pinned Deno, and a local Realtime peer
(a loopback model that speaks and validates the GA protocol), started and stopped together.
"""
