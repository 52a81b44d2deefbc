"""The cloud path: the HTTP client, Supabase's Management and Auth admin APIs, Twilio's API,
the function's bundle and deploy, `init`'s scaffold, `up` and `doctor`.
"""
